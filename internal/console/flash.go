package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// flash is a one-shot message shown once after a decision. It is signed and
// bound to the session and the approval, so a flash cannot be forged or
// shown elsewhere; the template escapes it like any other text.
type flash struct {
	SID      string `json:"s"`
	Approval string `json:"a"`
	Msg      string `json:"m"`
	Expires  int64  `json:"e"`
}

func (c *Console) setFlash(w http.ResponseWriter, s session, approvalID, msg string) {
	exp := c.now().Add(flashTTL)
	v, err := seal(c.keys.flash, flash{SID: s.ID, Approval: approvalID, Msg: msg, Expires: exp.Unix()})
	if err != nil {
		return // the decision stands; only the message is lost
	}
	c.setCookie(w, "flash", v, exp)
}

// takeFlash returns the flash for this session and approval, and clears it.
func (c *Console) takeFlash(w http.ResponseWriter, r *http.Request, s session, approvalID string) string {
	raw := c.readCookie(r, "flash")
	if raw == "" {
		return ""
	}
	c.clearCookie(w, "flash")
	var f flash
	if open(c.keys.flash, raw, &f) != nil || f.SID != s.ID || f.Approval != approvalID || !c.now().Before(time.Unix(f.Expires, 0)) {
		return ""
	}
	return f.Msg
}

const maxProgramShown = 256 << 10

// programText is the program as people read it: a JSON string (OpenQASM
// text) unquoted, other JSON indented.
func programText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var out string
	var s string
	var buf bytes.Buffer
	switch {
	case json.Unmarshal(raw, &s) == nil:
		out = s
	case json.Indent(&buf, raw, "", "  ") == nil:
		out = buf.String()
	default:
		out = string(raw)
	}
	out = strings.ToValidUTF8(out, "\uFFFD")
	if len(out) > maxProgramShown {
		cut := maxProgramShown
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "\n… (truncated)"
	}
	return out
}
