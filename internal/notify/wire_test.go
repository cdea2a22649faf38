package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEncodeTruncatesSectionAndFillsEmptyText(t *testing.T) {
	long := strings.Repeat("é", 5000)
	d, err := encode(Event{ID: "e1", Type: "anomaly.finding", At: time.Unix(0, 0), Text: long})
	if err != nil {
		t.Fatal(err)
	}
	var b wireBody
	if err := json.Unmarshal(d.body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Text != long {
		t.Error("top-level text was changed")
	}
	sec := b.Blocks[0].Text.Text
	if n := utf8.RuneCountInString(sec); n != maxSectionText || !strings.HasSuffix(sec, "…") {
		t.Errorf("section text: %d runes, want %d ending in …", n, maxSectionText)
	}

	d, err = encode(Event{ID: "e2", Type: "budget.threshold", At: time.Unix(0, 0), Text: "  "})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d.body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Text != "budget.threshold" || b.Blocks[0].Text.Text != "budget.threshold" {
		t.Errorf("empty text became %q / %q, want the type", b.Text, b.Blocks[0].Text.Text)
	}
}

func TestEncodeRefusesBadTokens(t *testing.T) {
	for _, e := range []Event{
		{ID: "ok", Type: "approval.requested\r\nX-Injected: 1"},
		{ID: "a b", Type: "approval.requested"},
		{ID: "ok", Type: ""},
		{ID: strings.Repeat("x", maxToken+1), Type: "approval.requested"},
	} {
		if _, err := encode(e); err == nil {
			t.Errorf("encode(%q, %q) accepted", e.ID, e.Type)
		}
	}
}

func TestEscape(t *testing.T) {
	got := Escape("<!channel> R&D <https://evil.example|approve here>")
	want := "&lt;!channel&gt; R&amp;D &lt;https://evil.example|approve here&gt;"
	if got != want {
		t.Fatalf("Escape = %q, want %q", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"99999999999999999":             24 * time.Hour,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:04:00 GMT": 0,
	}
	for in, want := range tests {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	n := &Notifier{cfg: Config{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for attempt, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		for range 50 {
			if w := n.backoff(attempt, 0); w < base/2 || w > base {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, w, base/2, base)
			}
		}
	}
	if w := n.backoff(1, 700*time.Millisecond); w != 700*time.Millisecond {
		t.Errorf("Retry-After 700ms: waited %s", w)
	}
	if w := n.backoff(1, time.Hour); w != time.Second {
		t.Errorf("Retry-After 1h: waited %s, want MaxBackoff", w)
	}
}
