package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddress rewrites r.RemoteAddr to the client's address when the
// request came through one of the trusted proxies, so that everything
// after it — per-source rate limits, failed-login lockouts, the audit
// trail's remote_addr, the anomaly rules' new-source check — sees the
// client, not the load balancer.
//
// Only a TCP peer inside trusted is believed, and only about the hops it
// and the other trusted proxies added: X-Forwarded-For is read from the
// right, trusted addresses are skipped, and the first other address is
// the client. Anything a client wrote into the header itself sits to the
// left of that and is never reached. An unparsable entry on the way
// stops the walk, and the request keeps the proxy's own address.
// With no trusted proxies, next is returned as it is and the header is
// ignored everywhere.
func ClientAddress(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := addrOf(r.RemoteAddr)
		if !ok || !isTrusted(peer) {
			next.ServeHTTP(w, r)
			return
		}
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(v, ",")...)
		}
		client := ""
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			if !isTrusted(a) {
				client = a.Unmap().String()
				break
			}
		}
		if client != "" {
			r = r.WithContext(r.Context()) // a shallow copy: the caller's request stays as it was
			r.RemoteAddr = net.JoinHostPort(client, "0")
		}
		next.ServeHTTP(w, r)
	})
}

// addrOf parses the host of a host:port (or a bare address).
func addrOf(hostport string) (netip.Addr, bool) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}
