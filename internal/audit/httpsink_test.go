package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "s3cr3t-hec-token-0123456789"

// hecServer is an in-process Splunk HTTP Event Collector. It answers 503
// while down is set and 403 to a wrong token.
type hecServer struct {
	*httptest.Server
	down   atomic.Bool
	mu     sync.Mutex
	events []json.RawMessage // the "event" values, in arrival order
	errs   []string
	posts  atomic.Int64
}

func startHEC(t *testing.T) *hecServer {
	t.Helper()
	h := &hecServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.posts.Add(1)
		if h.down.Load() {
			http.Error(w, `{"text":"Server is busy","code":9}`, http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" {
			h.fail("bad request line " + r.Method + " " + r.URL.Path)
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Splunk "+testToken {
			http.Error(w, `{"text":"Invalid token","code":4}`, http.StatusForbidden)
			return
		}
		dec := json.NewDecoder(r.Body)
		var got []json.RawMessage
		for {
			var ev struct {
				Event      json.RawMessage `json:"event"`
				Sourcetype string          `json:"sourcetype"`
				Time       json.Number     `json:"time"`
			}
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				h.fail("bad body: " + err.Error())
				http.Error(w, "bad", 400)
				return
			}
			var inner struct {
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(ev.Event, &inner); err != nil {
				h.fail("event is not the JSON line: " + err.Error())
			}
			if ev.Sourcetype != SplunkSourcetype {
				h.fail("sourcetype " + ev.Sourcetype)
			}
			if want := fmt.Sprintf("%d.%03d", inner.Time.Unix(), inner.Time.Nanosecond()/1e6); ev.Time.String() != want {
				h.fail("time " + ev.Time.String() + " is not the event's " + want)
			}
			got = append(got, ev.Event)
		}
		h.mu.Lock()
		h.events = append(h.events, got...)
		h.mu.Unlock()
		_, _ = w.Write([]byte(`{"text":"Success","code":0}`))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hecServer) fail(s string) {
	h.mu.Lock()
	h.errs = append(h.errs, s)
	h.mu.Unlock()
}

func (h *hecServer) received(t *testing.T) []string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) > 0 {
		t.Fatalf("HEC server saw: %v", h.errs)
	}
	out := make([]string, len(h.events))
	for i, e := range h.events {
		out[i] = string(e)
	}
	return out
}

func TestSplunkHEC(t *testing.T) {
	h := startHEC(t)
	e, err := NewHTTPExporter(HTTPOptions{Format: FormatSplunkHEC, URL: h.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	lines := [][]byte{testLine(1, "issue", "allow"), testLine(2, "submit", "deny")}
	if err := e.Export(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	got := h.received(t)
	if len(got) != 2 || got[0] != string(lines[0]) || got[1] != string(lines[1]) {
		t.Fatalf("events:\n%v\nwant the exact lines\n%s\n%s", got, lines[0], lines[1])
	}
}

func TestSplunkHECWrongTokenFailsWithoutLeakingIt(t *testing.T) {
	h := startHEC(t)
	wrong := "wrong-token-ABCDEFGHIJ"
	e, _ := NewHTTPExporter(HTTPOptions{Format: FormatSplunkHEC, URL: h.URL + "/services/collector/event", Token: wrong})
	err := e.Export(context.Background(), [][]byte{testLine(1, "issue", "")})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error leaks the token: %v", err)
	}
	if len(h.received(t)) != 0 {
		t.Fatal("events accepted with a wrong token")
	}
}

func TestHTTPExporterDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Value
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") + "|" + r.URL.Path)
	}))
	defer evil.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	e, _ := NewHTTPExporter(HTTPOptions{Format: FormatSplunkHEC, URL: redir.URL, Token: testToken})
	if err := e.Export(context.Background(), [][]byte{testLine(1, "issue", "")}); err == nil {
		t.Fatal("a redirect counted as delivery")
	}
	if v := leaked.Load(); v != nil {
		t.Fatalf("request followed the redirect: %v", v)
	}
}

func TestHTTPExporterTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	e, _ := NewHTTPExporter(HTTPOptions{Format: FormatSplunkHEC, URL: slow.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	if err := e.Export(context.Background(), [][]byte{testLine(1, "issue", "")}); err == nil {
		t.Fatal("hung collector counted as delivery")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestHTTPExporterOptions(t *testing.T) {
	for _, o := range []HTTPOptions{
		{Format: "syslog", URL: "http://127.0.0.1:1"},
		{Format: FormatSplunkHEC, URL: "127.0.0.1:8088"},
		{Format: FormatSplunkHEC, URL: "ftp://127.0.0.1/"},
		{Format: FormatSplunkHEC, URL: "https://user:pw@127.0.0.1/"},
		{Format: FormatElasticBulk, URL: "http://127.0.0.1:9200"}, // no index
	} {
		if _, err := NewHTTPExporter(o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}

// bulkServer is an in-process Elastic _bulk endpoint. With reject set it
// answers 200 with errors:true, as Elastic does for item failures.
type bulkServer struct {
	*httptest.Server
	reject atomic.Bool
	mu     sync.Mutex
	docs   []string
	errs   []string
}

func startBulk(t *testing.T) *bulkServer {
	t.Helper()
	b := &bulkServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(s string) { b.mu.Lock(); b.errs = append(b.errs, s); b.mu.Unlock() }
		if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
			fail("bad request line " + r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			fail("content type " + ct)
		}
		if a := r.Header.Get("Authorization"); a != "ApiKey "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !bytes.HasSuffix(body, []byte("\n")) {
			fail("body does not end in a newline")
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		var docs []string
		for sc.Scan() {
			if sc.Text() != `{"index":{"_index":"qbroker-audit"}}` {
				fail("action line " + sc.Text())
			}
			if !sc.Scan() {
				fail("action without document")
				break
			}
			docs = append(docs, sc.Text())
		}
		w.Header().Set("Content-Type", "application/json")
		if b.reject.Load() {
			_, _ = w.Write([]byte(`{"took":3,"errors":true,"items":[{"index":{"_index":"qbroker-audit","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}]}`))
			return
		}
		b.mu.Lock()
		b.docs = append(b.docs, docs...)
		b.mu.Unlock()
		_, _ = w.Write([]byte(`{"took":3,"errors":false,"items":[]}`))
	}))
	t.Cleanup(b.Close)
	return b
}

func TestElasticBulk(t *testing.T) {
	b := startBulk(t)
	e, err := NewHTTPExporter(HTTPOptions{Format: FormatElasticBulk, URL: b.URL, Token: testToken, Index: "qbroker-audit"})
	if err != nil {
		t.Fatal(err)
	}
	lines := [][]byte{testLine(1, "issue", "allow"), testLine(2, "checkpoint", "")}
	if err := e.Export(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		t.Fatalf("bulk server saw: %v", b.errs)
	}
	if len(b.docs) != 2 || b.docs[0] != string(lines[0]) || b.docs[1] != string(lines[1]) {
		t.Fatalf("docs %v", b.docs)
	}
}

func TestElasticBulkErrorsFlagIsFailure(t *testing.T) {
	b := startBulk(t)
	b.reject.Store(true)
	e, _ := NewHTTPExporter(HTTPOptions{Format: FormatElasticBulk, URL: b.URL, Token: testToken, Index: "qbroker-audit"})
	err := e.Export(context.Background(), [][]byte{testLine(1, "issue", "")})
	if err == nil || !strings.Contains(err.Error(), "es_rejected_execution_exception") {
		t.Fatalf("errors:true answer: %v", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Fatal("error leaks the token")
	}
	// Wrong credentials: 401 is a failure too.
	e2, _ := NewHTTPExporter(HTTPOptions{Format: FormatElasticBulk, URL: b.URL, Token: "nope", Index: "qbroker-audit"})
	b.reject.Store(false)
	if err := e2.Export(context.Background(), [][]byte{testLine(1, "issue", "")}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong API key: %v", err)
	}
}
