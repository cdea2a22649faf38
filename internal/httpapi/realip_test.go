package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddressBelievesOnlyTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy: the header is ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9:4000"},
		{"one trusted proxy", "192.0.2.7:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"a client's own entry is left of the proxy's", "192.0.2.7:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1:0"},
		{"a chain of trusted proxies", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1:0"},
		{"header split over lines", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.1, 10.9.9.9"}, "198.51.100.1:0"},
		{"only trusted hops: the proxy stays", "10.1.2.3:4000", []string{"10.9.9.9"}, "10.1.2.3:4000"},
		{"garbage on the way: the proxy stays", "10.1.2.3:4000", []string{"198.51.100.1, unknown"}, "10.1.2.3:4000"},
		{"no header: the proxy stays", "10.1.2.3:4000", nil, "10.1.2.3:4000"},
		{"IPv6 proxy and client", "[2001:db8::1]:443", []string{"2a00:1450::5, 2001:db8::9"}, "[2a00:1450::5]:0"},
		{"IPv4-mapped peer is the same proxy", "[::ffff:10.1.2.3]:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := ClientAddress(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
			if r.RemoteAddr != tc.peer {
				t.Fatal("the caller's request was changed")
			}
		})
	}
	// No trusted proxies: the handler is next itself.
	called := false
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	ClientAddress(nil, next).ServeHTTP(httptest.NewRecorder(), r)
	if !called || r.RemoteAddr != "10.1.2.3:4000" {
		t.Fatal("without trusted proxies the header must change nothing")
	}
}
