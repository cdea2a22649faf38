package anomaly

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

// ErrMalformed is wrapped by Replay's error for a line that is not an audit
// event.
var ErrMalformed = errors.New("anomaly: malformed audit line")

// maxLine bounds one audit line (events are far smaller).
const maxLine = 16 << 20

// Replay runs a fresh engine built from cfg over a JSON-lines audit trail
// and returns every finding, in trail order.
func Replay(r io.Reader, cfg Config) ([]Finding, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return e.Replay(r)
}

// Replay feeds a JSON-lines audit trail to e (keeping e's state, so several
// files can be replayed in order) and returns the findings. Blank lines and
// checkpoint lines are skipped; any other line that is not a JSON object
// is an error naming its line number (wrapping ErrMalformed), with the
// findings up to it.
func (e *Engine) Replay(r io.Reader) ([]Finding, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []Finding
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ev audit.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return out, fmt.Errorf("%w: line %d: %w", ErrMalformed, line, err)
		}
		if ev.Type == audit.TypeCheckpoint {
			continue
		}
		if ev.Type == "" {
			return out, fmt.Errorf("%w: line %d: no type", ErrMalformed, line)
		}
		out = append(out, e.Observe(ev)...)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("anomaly: reading line %d: %w", line+1, err)
	}
	return out, nil
}

// WriteTable prints findings as an aligned table, one per line.
func WriteTable(w io.Writer, fs []Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEQ\tAGENT\tRULE\tSEVERITY\tACTIONS\tDETAIL")
	for _, f := range fs {
		acts := make([]string, len(f.Actions))
		for i, a := range f.Actions {
			acts[i] = string(a)
		}
		agent := f.Agent
		if agent == "" {
			agent = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", f.Time.UTC().Format(time.RFC3339), f.Seq,
			oneLine(agent), f.Rule, f.Severity, strings.Join(acts, ","), oneLine(f.Detail))
	}
	return tw.Flush()
}

// WriteJSON prints findings as one JSON array.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(fs)
}

// oneLine keeps a value from breaking the table (agent names come from
// identities and are not trusted to be tidy).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
