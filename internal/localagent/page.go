package localagent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Page asks through a local web page: each question gets a one-time URL on
// 127.0.0.1 (a 256-bit random path). The URL is shown to the person through
// Notify; notify-send, when present, only says that a question waits (its
// command line is visible to other users, so it never carries the URL).
type Page struct {
	ln   net.Listener
	srv  *http.Server
	host string
	log  *slog.Logger
	// Notify tells the person where to answer.
	notify func(url string, r Request)

	mu      sync.Mutex
	pending map[string]*pendingAsk
}

type pendingAsk struct {
	r  Request
	ch chan Answer // buffered: the answer never blocks
}

// NewPage listens on addr (a loopback address; "127.0.0.1:0" picks a port).
// notify is called with each question's URL.
func NewPage(addr string, log *slog.Logger, notify func(url string, r Request)) (*Page, error) {
	ln, err := listenLoopback(addr)
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	p := &Page{ln: ln, host: ln.Addr().String(), log: log, notify: notify, pending: map[string]*pendingAsk{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /consent/{id}", p.show)
	mux.HandleFunc("POST /consent/{id}", p.answer)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// listenLoopback refuses anything but a loopback address.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("address %q is not a loopback IP address", addr)
	}
	return net.Listen("tcp", addr)
}

// Addr is the page server's host:port.
func (p *Page) Addr() string { return p.host }

// Close stops the page server; pending questions are denied by their callers' contexts.
func (p *Page) Close() error { return p.srv.Close() }

// Ask implements Asker.
func (p *Page) Ask(ctx context.Context, r Request) (Answer, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Deny, fmt.Errorf("consent page: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	pa := &pendingAsk{r: r, ch: make(chan Answer, 1)}
	p.mu.Lock()
	p.pending[id] = pa
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	url := "http://" + p.host + "/consent/" + id
	if p.notify != nil {
		p.notify(url, r)
	}
	select {
	case a := <-pa.ch:
		return a, nil
	case <-ctx.Done():
		return Deny, ctx.Err()
	}
}

// checkRequest refuses requests that did not come to our own host name
// (DNS rebinding) or, for POSTs, from another origin.
func (p *Page) checkRequest(w http.ResponseWriter, r *http.Request) bool {
	if r.Host != p.host {
		http.Error(w, "wrong host", http.StatusForbidden)
		return false
	}
	if r.Method == http.MethodPost {
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+p.host {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return false
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make browsers send "Origin: null" on the form POST
	return true
}

func (p *Page) lookup(id string) *pendingAsk {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending[id]
}

var pageTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qbroker: consent</title>
<style>body{font-family:sans-serif;max-width:42em;margin:2em auto}dt{font-weight:bold}button{font-size:1.1em;margin-right:1em}</style></head>
<body><h1>A program asks for quantum credentials</h1>
{{with .R}}<dl>
<dt>Program</dt><dd id="program">pid {{.Program.PID}}, <code>{{.Program.Exe}}</code></dd>
<dt>Command line</dt><dd><code id="cmdline">{{range .Program.Cmdline}}{{.}} {{end}}</code></dd>
{{if .Client}}<dt>On behalf of (as it names itself)</dt><dd id="client">{{.Client}}</dd>
{{end}}<dt>Asks for</dt><dd id="what">{{.What}}, role {{.Role}}{{if .Provider}}, {{.Provider}}{{end}}{{if .Device}}/{{.Device}}{{end}}{{if .Kind}} ({{.Kind}}){{end}}{{if .Shots}}, {{.Shots}} shots{{end}}</dd>
<dt>Estimated cost</dt><dd id="cost">{{if ge .CostUSD 0.0}}${{printf "%.2f" .CostUSD}}{{else}}unknown{{end}}</dd>
<dt>Why you are asked</dt><dd id="reasons">{{range .Reasons}}{{.}}; {{end}}</dd>
</dl>{{end}}
<form method="post">
<button id="allow" name="answer" value="allow">Allow once</button>
<button id="allow10" name="answer" value="allow10">Allow for 10 minutes for this program</button>
<button id="deny" name="answer" value="deny">Deny</button>
</form></body></html>`))

var doneTmpl = template.Must(template.New("done").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qbroker: consent</title></head>
<body><p id="result">{{.}}</p></body></html>`))

func (p *Page) show(w http.ResponseWriter, r *http.Request) {
	if !p.checkRequest(w, r) {
		return
	}
	pa := p.lookup(r.PathValue("id"))
	if pa == nil {
		http.Error(w, "this consent link was already used or has expired", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, map[string]any{"R": pa.r})
}

func (p *Page) answer(w http.ResponseWriter, r *http.Request) {
	if !p.checkRequest(w, r) {
		return
	}
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var a Answer
	var msg string
	switch r.PostForm.Get("answer") {
	case "allow":
		a, msg = Allow, "Allowed once."
	case "allow10":
		a, msg = AllowFor, "Allowed for 10 minutes for this program."
	case "deny":
		a, msg = Deny, "Denied."
	default:
		http.Error(w, "answer must be allow, allow10 or deny", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	pa := p.pending[id]
	delete(p.pending, id) // one time
	p.mu.Unlock()
	if pa == nil {
		http.Error(w, "this consent link was already used or has expired", http.StatusNotFound)
		return
	}
	pa.ch <- a
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = doneTmpl.Execute(w, msg)
}

var _ Asker = (*Page)(nil)

// NotifySend tells the desktop that a question waits, through notify-send
// when it is installed. The URL is never on its command line.
func NotifySend(ctx context.Context, r Request) {
	path, err := exec.LookPath("notify-send")
	if err != nil {
		return
	}
	what := strings.TrimSpace(r.What + " for role " + r.Role)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, path, "--app-name=qbroker", "qbroker: consent needed",
		fmt.Sprintf("pid %d asks for %s. Open the link in the qbroker agent's output.", r.Program.PID, what)).Run()
}
