package notify

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInLogsOrErrors drives every failure path the worker logs —
// retries, give-up, refusal, redirect, dead port, timeout, abandonment at
// Close — with a URL whose path and query are credentials (as Slack's
// are), and checks the log and Close's error for the secret, the body
// and the URL beyond its host.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	const (
		pathSecret  = "pathsecretT0B0XX"
		querySecret = "querysecret42"
		bodyMarker  = "body-marker-7f3a"
	)
	secret := []byte("hmac-secret-never-logged-9c1d")
	leaks := []string{string(secret), pathSecret, querySecret, bodyMarker, "approve-data-marker"}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		switch r.Header.Get(HeaderEvent) {
		case "case.retry":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("echo " + bodyMarker))
		case "case.refused":
			w.WriteHeader(http.StatusBadRequest)
		case "case.redirect":
			http.Redirect(w, r, "/elsewhere?"+querySecret, http.StatusFound)
		case "case.hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	var all []string
	for _, base := range []string{srv.URL, "http://" + dead} {
		n, logs := newNotifier(t, base+"/services/"+pathSecret+"?token="+querySecret, func(c *Config) {
			c.Secret = secret
			c.MaxAttempts = 2
			c.Timeout = 100 * time.Millisecond
			c.QueueSize = 6
		})
		// Six fit the queue; of the ten after them, at least nine are
		// dropped. The hangs time out twice each until Close abandons them.
		for _, typ := range []string{"case.retry", "case.refused", "case.redirect", "case.hang", "case.hang", "case.hang"} {
			n.Notify(Event{Type: typ, Text: bodyMarker, Data: map[string]string{"k": "approve-data-marker"}})
		}
		for range 10 {
			n.Notify(Event{Type: "case.hang", Text: bodyMarker})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		err := n.Close(ctx)
		cancel()
		if err != nil {
			all = append(all, err.Error())
		}
		all = append(all, logs.String())
		if !strings.Contains(logs.String(), "127.0.0.1") {
			t.Errorf("the log does not name the receiver's host: %s", logs)
		}
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"giving up", "retrying", "dropped", "redirect", "refused", "connection refused", "deadline", "abandoned", "undelivered"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the log: the path was not exercised\n%s", want, text)
		}
	}
	for _, leak := range leaks {
		if strings.Contains(text, leak) {
			t.Errorf("%q leaked into the log or errors:\n%s", leak, text)
		}
	}
}
