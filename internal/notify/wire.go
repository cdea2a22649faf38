package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Request headers of every delivery.
const (
	HeaderEvent     = "X-Qbroker-Event"     // the event type
	HeaderDelivery  = "X-Qbroker-Delivery"  // the event id, the same on every attempt
	HeaderTimestamp = "X-Qbroker-Timestamp" // unix seconds of this attempt, signed
	HeaderSignature = "X-Qbroker-Signature" // "v1=" + hex HMAC-SHA256; see Sign
	UserAgent       = "qbroker-webhook/1"
)

// maxSectionText is Slack's limit on a section block's text; longer text
// makes Slack refuse the whole message.
const maxSectionText = 3000

// maxToken bounds an event id or type.
const maxToken = 128

// delivery is an event as the worker sends it: encoded once, at Notify.
type delivery struct {
	id, typ string
	body    []byte
}

// wireBody is the JSON body. "text" and "blocks" are what Slack's
// incoming webhooks read; Slack ignores "qbroker".
type wireBody struct {
	Text    string      `json:"text"`
	Blocks  []wireBlock `json:"blocks"`
	Qbroker wireMeta    `json:"qbroker"`
}

type wireBlock struct {
	Type string   `json:"type"`
	Text wireText `json:"text"`
}

type wireText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type wireMeta struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	At   string `json:"at"` // RFC 3339 with nanoseconds, UTC
	Data any    `json:"data"`
}

// encode validates e and renders its body.
func encode(e Event) (delivery, error) {
	if !validToken(e.ID) {
		return delivery{}, errors.New("bad event id: want 1-128 of [A-Za-z0-9._:-]")
	}
	if !validToken(e.Type) {
		return delivery{}, errors.New("bad event type: want 1-128 of [A-Za-z0-9._:-]")
	}
	text := strings.ToValidUTF8(e.Text, "\uFFFD")
	if strings.TrimSpace(text) == "" {
		text = e.Type // Slack refuses an empty section
	}
	body, err := json.Marshal(wireBody{
		Text:    text,
		Blocks:  []wireBlock{{Type: "section", Text: wireText{Type: "mrkdwn", Text: truncate(text, maxSectionText)}}},
		Qbroker: wireMeta{ID: e.ID, Type: e.Type, At: e.At.UTC().Format(time.RFC3339Nano), Data: e.Data},
	})
	if err != nil {
		return delivery{}, fmt.Errorf("encode event data: %w", err)
	}
	return delivery{id: e.ID, typ: e.Type, body: body}, nil
}

// truncate cuts s to at most max characters, marking the cut with "…".
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// Escape makes s safe to embed in Text as literal words: it escapes the
// three characters Slack's mrkdwn gives meaning to (&, <, >), so a value
// a requester chose — an agent name, a reason — cannot become a link,
// a mention or a @channel ping. Formatting marks (*, _, ~, `) are left.
func Escape(s string) string {
	return mrkdwnEscaper.Replace(s)
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func validToken(s string) bool {
	if s == "" || len(s) > maxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == ':' || c == '-':
		default:
			return false
		}
	}
	return true
}

// safeToken is s for logging if it is empty or a valid id or type, else
// a marker: a malformed value is never echoed into logs.
func safeToken(s string) string {
	if s == "" || validToken(s) {
		return s
	}
	return "(invalid)"
}
