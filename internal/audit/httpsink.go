package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTP exporter formats.
const (
	FormatSplunkHEC   = "splunk-hec"   // POST <url>/services/collector/event
	FormatElasticBulk = "elastic-bulk" // POST <url>/_bulk
)

// SplunkSourcetype is the sourcetype of events sent to Splunk HEC.
const SplunkSourcetype = "qbroker:audit"

// HTTPOptions configure NewHTTPExporter.
type HTTPOptions struct {
	// Format is FormatSplunkHEC or FormatElasticBulk.
	Format string
	// URL is the collector's base URL (scheme, host, optional path prefix);
	// the format's path is appended unless URL already ends with it.
	URL string
	// Token authenticates: "Authorization: Splunk <Token>" for HEC,
	// "Authorization: <AuthScheme> <Token>" for Elastic (AuthScheme
	// defaults to "ApiKey"). Empty sends no Authorization header. Never
	// logged or put in errors; the caller reads it from the environment.
	Token      string
	AuthScheme string
	// Index is the Elastic index (required for elastic-bulk); for HEC, an
	// optional "index" field.
	Index string
	// TLS configures HTTPS (nil means the system roots, TLS 1.2+).
	TLS *tls.Config
	// Timeout bounds one request. Zero means 10 s.
	Timeout time.Duration
}

// HTTPExporter posts batches to a SIEM collector. Every 2xx answer is a
// success, except an Elastic bulk answer whose "errors" flag is true;
// redirects are not followed (they count as failures), so the token is only
// ever sent to the configured URL.
type HTTPExporter struct {
	format string
	url    string
	auth   string // the Authorization header value; secret
	index  string
	client *http.Client
}

// NewHTTPExporter checks opts.
func NewHTTPExporter(opts HTTPOptions) (*HTTPExporter, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("audit: http exporter: URL must be an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("audit: http exporter: put credentials in the token, not the URL")
	}
	e := &HTTPExporter{format: opts.Format, index: opts.Index}
	var path string
	switch opts.Format {
	case FormatSplunkHEC:
		path = "/services/collector/event"
		if opts.Token != "" {
			e.auth = "Splunk " + opts.Token
		}
	case FormatElasticBulk:
		path = "/_bulk"
		if opts.Index == "" {
			return nil, errors.New("audit: http exporter: elastic-bulk needs an index")
		}
		scheme := opts.AuthScheme
		if scheme == "" {
			scheme = "ApiKey"
		}
		if opts.Token != "" {
			e.auth = scheme + " " + opts.Token
		}
	default:
		return nil, fmt.Errorf("audit: http exporter: format %q: want %q or %q", opts.Format, FormatSplunkHEC, FormatElasticBulk)
	}
	if !strings.HasSuffix(u.Path, path) {
		u.Path = strings.TrimSuffix(u.Path, "/") + path
	}
	e.url = u.String()
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // audit data goes straight to the collector
	if opts.TLS != nil {
		tr.TLSClientConfig = opts.TLS.Clone()
	} else {
		tr.TLSClientConfig = &tls.Config{}
	}
	if tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	}
	e.client = &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// Export posts lines as one request.
func (e *HTTPExporter) Export(ctx context.Context, lines [][]byte) error {
	if len(lines) == 0 {
		return nil
	}
	var body []byte
	ctype := "application/json"
	if e.format == FormatSplunkHEC {
		body = e.splunkBody(lines)
	} else {
		body = e.elasticBody(lines)
		ctype = "application/x-ndjson"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit: %s: %w", e.format, err)
	}
	req.Header.Set("Content-Type", ctype)
	if e.auth != "" {
		req.Header.Set("Authorization", e.auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// *url.Error names the URL (no credentials in it) and the cause.
		return fmt.Errorf("audit: %s: %w", e.format, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("audit: %s: %s answered %s", e.format, e.url, resp.Status)
	}
	if e.format == FormatElasticBulk {
		return elasticResult(data)
	}
	return nil
}

// splunkBody is the HEC batch: concatenated event objects.
func (e *HTTPExporter) splunkBody(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		m := parseMeta(l)
		b = append(b, `{"event":`...)
		b = appendJSONValue(b, l)
		b = append(b, `,"sourcetype":"`+SplunkSourcetype+`","time":`...)
		t := m.Time.UTC()
		b = strconv.AppendInt(b, t.Unix(), 10)
		b = append(b, '.')
		b = append(b, fmt.Sprintf("%03d", t.Nanosecond()/1e6)...)
		if e.index != "" {
			b = append(b, `,"index":`...)
			b, _ = appendJSONString(b, e.index)
		}
		b = append(b, "}\n"...)
	}
	return b
}

// elasticBody is the bulk NDJSON: an index action and the document per line.
func (e *HTTPExporter) elasticBody(lines [][]byte) []byte {
	action := []byte(`{"index":{"_index":`)
	action, _ = appendJSONString(action, e.index)
	action = append(action, "}}\n"...)
	var b []byte
	for _, l := range lines {
		b = append(b, action...)
		if json.Valid(l) && bytes.HasPrefix(bytes.TrimSpace(l), []byte{'{'}) {
			b = append(b, l...)
		} else {
			b = append(b, `{"message":`...)
			b, _ = appendJSONString(b, string(l))
			b = append(b, '}')
		}
		b = append(b, '\n')
	}
	return b
}

// appendJSONValue appends l if it is valid JSON, else l as a JSON string.
func appendJSONValue(b, l []byte) []byte {
	if json.Valid(l) {
		return append(b, l...)
	}
	b, _ = appendJSONString(b, string(l))
	return b
}

func appendJSONString(b []byte, s string) ([]byte, error) {
	q, err := json.Marshal(s)
	return append(b, q...), err
}

// elasticResult fails a bulk answer that reports item errors.
func elasticResult(data []byte) error {
	var r struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
			Error  struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("audit: elastic-bulk: unreadable answer: %w", err)
	}
	if !r.Errors {
		return nil
	}
	failed, first := 0, ""
	for _, it := range r.Items {
		for _, res := range it {
			if res.Status >= 300 || res.Error.Type != "" {
				if failed == 0 {
					first = res.Error.Type
				}
				failed++
			}
		}
	}
	return fmt.Errorf("audit: elastic-bulk: %d of %d item(s) rejected (first: %s)", failed, len(r.Items), first)
}

var _ Exporter = (*HTTPExporter)(nil)
