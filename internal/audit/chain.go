package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ZeroHash is the prev of the first line of a brand-new trail.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Defaults for the checkpoint cadence of FileOptions.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// checkpointDomain begins the signed encoding of every checkpoint, so a
// checkpoint signature can never be mistaken for a signature over anything
// else made with the same key.
const checkpointDomain = "qbroker-audit-checkpoint/v2\n"

// LineHash returns the hex SHA-256 of one line's exact bytes, without its
// terminating newline: the value the next line carries in "prev".
func LineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// KeyID names an audit signing key: "ed25519:" and the first 16 hex digits
// of the SHA-256 of the raw 32-byte public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// Checkpoint is a signed line that seals the chain up to the line before it.
// Since every line carries the hash of its predecessor, a valid signature on
// ChainHead vouches for every line from the start of the trail to it.
type Checkpoint struct {
	Type          string    `json:"type"` // always TypeCheckpoint
	Seq           uint64    `json:"seq"`
	Prev          string    `json:"prev"`
	Time          time.Time `json:"time"`
	CoversFromSeq uint64    `json:"covers_from_seq"` // first seq after the previous checkpoint
	CoversToSeq   uint64    `json:"covers_to_seq"`   // seq of the line before this one
	ChainHead     string    `json:"chain_head"`      // hash of the line before this one (= Prev)
	KeyID         string    `json:"key_id"`
	Sig           string    `json:"sig"` // base64 (std) Ed25519 over SignedBytes
	Version       int       `json:"v"`
}

// SignedBytes is the canonical encoding the signature covers: a domain line
// then one "name=value" line per field, in a fixed order, with the time in
// RFC 3339 UTC with nanoseconds as written in the line.
func (c *Checkpoint) SignedBytes() []byte {
	b := make([]byte, 0, 320)
	b = append(b, checkpointDomain...)
	b = appendField(b, "type", c.Type)
	b = appendField(b, "seq", strconv.FormatUint(c.Seq, 10))
	b = appendField(b, "prev", c.Prev)
	b = appendField(b, "time", c.Time.UTC().Format(time.RFC3339Nano))
	b = appendField(b, "covers_from_seq", strconv.FormatUint(c.CoversFromSeq, 10))
	b = appendField(b, "covers_to_seq", strconv.FormatUint(c.CoversToSeq, 10))
	b = appendField(b, "chain_head", c.ChainHead)
	b = appendField(b, "key_id", c.KeyID)
	b = appendField(b, "v", strconv.Itoa(c.Version))
	return b
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendQuote(b, value) // quoted: no value can forge a line break
	return append(b, '\n')
}

// Verify checks c's signature with pub. It checks nothing else.
func (c *Checkpoint) verifySig(pub ed25519.PublicKey) bool {
	sig, err := base64.StdEncoding.Strict().DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, c.SignedBytes(), sig)
}

// appendChained appends the event line body (as made by encodeLine, starting
// with '{' and ending with '\n') with the chain fields put in front:
// {"seq":N,"prev":"<hex>",<the rest of body>.
func appendChained(dst []byte, seq uint64, prev string, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = append(dst, prev...)
	dst = append(dst, `",`...)
	return append(dst, body[1:]...)
}

// signCheckpoint builds and signs the checkpoint line (with '\n').
func signCheckpoint(key ed25519.PrivateKey, keyID string, seq uint64, prev string, from uint64, now time.Time) ([]byte, error) {
	c := Checkpoint{
		Type: TypeCheckpoint, Seq: seq, Prev: prev, Time: now.UTC(),
		CoversFromSeq: from, CoversToSeq: seq - 1, ChainHead: prev,
		KeyID: keyID, Version: SchemaVersion,
	}
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.SignedBytes()))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

// lineInfo is what the reader of a trail needs from any line.
type lineInfo struct {
	Seq           *uint64 `json:"seq"`
	Prev          *string `json:"prev"`
	Type          string  `json:"type"`
	Time          string  `json:"time"`
	CoversFromSeq *uint64 `json:"covers_from_seq"`
	CoversToSeq   *uint64 `json:"covers_to_seq"`
	ChainHead     string  `json:"chain_head"`
	KeyID         string  `json:"key_id"`
	Sig           string  `json:"sig"`
	Version       int     `json:"v"`
}

var errNotChained = errors.New("not a chained audit line")

// parseLine parses a line and checks the chain fields' shape.
func parseLine(line []byte) (lineInfo, error) {
	var li lineInfo
	if err := json.Unmarshal(line, &li); err != nil {
		return li, fmt.Errorf("does not parse as JSON: %w", err)
	}
	switch {
	case li.Seq == nil || li.Prev == nil:
		return li, fmt.Errorf("%w: no seq/prev", errNotChained)
	case *li.Seq == 0:
		return li, fmt.Errorf("%w: seq 0", errNotChained)
	case !isHex64(*li.Prev):
		return li, fmt.Errorf("%w: prev is not 64 lowercase hex digits", errNotChained)
	case li.Type == "":
		return li, fmt.Errorf("%w: no type", errNotChained)
	}
	return li, nil
}

// checkpoint returns li as a Checkpoint, or an error naming what is missing.
func (li *lineInfo) checkpoint() (Checkpoint, error) {
	if li.CoversFromSeq == nil || li.CoversToSeq == nil || li.ChainHead == "" || li.KeyID == "" || li.Sig == "" {
		return Checkpoint{}, errors.New("checkpoint lacks covers_from_seq, covers_to_seq, chain_head, key_id or sig")
	}
	t, err := time.Parse(time.RFC3339Nano, li.Time)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint time: %w", err)
	}
	return Checkpoint{
		Type: li.Type, Seq: *li.Seq, Prev: *li.Prev, Time: t,
		CoversFromSeq: *li.CoversFromSeq, CoversToSeq: *li.CoversToSeq,
		ChainHead: li.ChainHead, KeyID: li.KeyID, Sig: li.Sig, Version: li.Version,
	}, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
