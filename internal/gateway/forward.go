package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/qbroker/qbroker/internal/provider/ionq"
)

// writeError writes an IonQ-shaped error.
func writeError(w http.ResponseWriter, status int, msg string) {
	ionq.WriteError(w, status, msg)
}

// credential returns the cached upstream key, fetching it from the broker
// when absent or older than credTTL. The key lives only in memory.
func (g *Gateway) credential(ctx context.Context) (string, error) {
	if c := g.cred.Load(); c != nil && g.now().Sub(c.fetched) < g.credTTL {
		return c.key, nil
	}
	g.credMu.Lock()
	defer g.credMu.Unlock()
	if c := g.cred.Load(); c != nil && g.now().Sub(c.fetched) < g.credTTL {
		return c.key, nil // fetched while we waited
	}
	key, err := g.broker.Credential(ctx, providerIonQ)
	if err != nil {
		return "", fmt.Errorf("gateway: fetch %s credential: %w", providerIonQ, err)
	}
	if key == "" {
		return "", fmt.Errorf("gateway: broker returned an empty %s credential", providerIonQ)
	}
	g.cred.Store(&cachedCred{key: key, fetched: g.now()})
	return key, nil
}

// dropCredential forgets key (if it is still the cached one) and tells the
// broker client to forget it too.
func (g *Gateway) dropCredential(key string) {
	g.credMu.Lock()
	if c := g.cred.Load(); c != nil && c.key == key {
		g.cred.Store(nil)
	}
	g.credMu.Unlock()
	if inv, ok := g.broker.(CredentialInvalidator); ok {
		inv.InvalidateCredential(providerIonQ)
	}
}

// upstreamReq describes one request to the IonQ upstream. path is relative
// to the upstream base and is built only from constants and validated
// pieces.
type upstreamReq struct {
	method string
	path   string // e.g. "/v0.4/jobs/<id>"
	query  string // already re-encoded
	body   []byte // nil for none
	auth   bool   // inject the real key
	in     http.Header
}

// send performs req against the upstream. With auth, an upstream 401 makes
// the gateway drop its cached key, fetch it again and retry once (a 401
// means IonQ did not act on the request, so the retry is safe for POST).
func (g *Gateway) send(ctx context.Context, req upstreamReq) (*http.Response, error) {
	var key string
	if req.auth {
		k, err := g.credential(ctx)
		if err != nil {
			return nil, err
		}
		key = k
	}
	resp, err := g.sendOnce(ctx, req, key)
	if err != nil || !req.auth || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	drain(resp)
	g.log.WarnContext(ctx, "upstream refused the provider credential; refetching", "provider", providerIonQ)
	g.dropCredential(key)
	k, err := g.credential(ctx)
	if err != nil {
		return nil, err
	}
	return g.sendOnce(ctx, req, k)
}

func (g *Gateway) sendOnce(ctx context.Context, req upstreamReq, key string) (*http.Response, error) {
	target := g.upstream + req.path
	if req.query != "" {
		target += "?" + req.query
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	out, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("gateway: build upstream request: %w", err)
	}
	// Only Accept and User-Agent pass through; nothing else the client sent
	// (least of all its Authorization) reaches the upstream.
	if v := req.in.Get("Accept"); v != "" {
		out.Header.Set("Accept", v)
	}
	if v := req.in.Get("User-Agent"); v != "" {
		out.Header.Set("User-Agent", v)
	} else {
		out.Header.Set("User-Agent", "qbroker-gateway")
	}
	if req.body != nil {
		out.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		ionq.SetAPIKey(out.Header, key)
	}
	if g.timeout > 0 {
		tctx, cancel := context.WithTimeout(ctx, g.timeout)
		out = out.WithContext(tctx)
		start := time.Now()
		resp, err := g.rt.RoundTrip(out)
		g.observe(providerIonQ, time.Since(start))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("gateway: upstream %s %s: %w", req.method, req.path, err)
		}
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	start := time.Now()
	resp, err := g.rt.RoundTrip(out)
	g.observe(providerIonQ, time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %s %s: %w", req.method, req.path, err)
	}
	return resp, nil
}

// cancelOnClose releases a per-request timeout when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// drain discards the rest of a body so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

// readBody reads an upstream body up to maxUpstreamBody.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b []byte
	if n := resp.ContentLength; n >= 0 && n <= maxUpstreamBody {
		b = make([]byte, 0, n+1) // +1: ReadAll needs room to see EOF
	}
	b, err := readAllInto(b, io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return nil, fmt.Errorf("gateway: read upstream body: %w", err)
	}
	if len(b) > maxUpstreamBody {
		return nil, errors.New("gateway: upstream body too large")
	}
	return b, nil
}

// copyHeaders copies the upstream response headers an agent gets. All others
// (hop-by-hop, Set-Cookie, auth, Location, anything naming upstream
// internals) are dropped.
func copyHeaders(dst, src http.Header) {
	for _, k := range [...]string{"Content-Type", "Retry-After", "Cache-Control", "Etag", "Last-Modified"} {
		if v, ok := src[k]; ok {
			dst[k] = v
		}
	}
}

// redact replaces every occurrence of the real key in an upstream body the
// gateway has buffered, as a last line of defence for invariant 1.
func (g *Gateway) redact(b []byte) []byte {
	c := g.cred.Load()
	if c == nil || !bytes.Contains(b, []byte(c.key)) {
		return b
	}
	return bytes.ReplaceAll(b, []byte(c.key), []byte("[redacted]"))
}

// writeBuffered answers with an upstream status, filtered headers and a
// buffered body.
func (g *Gateway) writeBuffered(w http.ResponseWriter, resp *http.Response, body []byte) {
	body = g.redact(body)
	copyHeaders(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// readAllInto is io.ReadAll appending to b.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	if b == nil {
		b = make([]byte, 0, 512)
	}
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				return b, nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// passThrough answers with the upstream response. Success bodies are
// streamed; other bodies are buffered so they can be redacted.
func (g *Gateway) passThrough(w http.ResponseWriter, resp *http.Response) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, err := readBody(resp)
		if err != nil {
			writeError(w, http.StatusBadGateway, "upstream answer could not be read")
			return
		}
		g.writeBuffered(w, resp, body)
		return
	}
	defer resp.Body.Close()
	copyHeaders(w.Header(), resp.Header)
	if resp.ContentLength >= 0 && !resp.Uncompressed {
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// forwardQuery re-encodes a client query so only well-formed key=value pairs
// reach the upstream.
func forwardQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	return q.Encode()
}
