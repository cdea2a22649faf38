package ionq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// RewriteResultURLs prefixes the relative result URLs of job (for example
// "/v0.4/jobs/{id}/results/probabilities") with prefix (for example
// "/ionq"), because the gateway serves IonQ's API below that prefix.
// Absolute URLs, protocol-relative URLs ("//host/...") and URLs that already
// carry the prefix are left alone, so the call is idempotent.
func RewriteResultURLs(job *Job, prefix string) {
	if job == nil || job.Results == nil {
		return
	}
	for _, u := range []*URL{job.Results.Probabilities, job.Results.Histogram, job.Results.Shots} {
		if u != nil {
			u.URL = prefixURL(u.URL, prefix)
		}
	}
}

func prefixURL(u, prefix string) string {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" || !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
		return u
	}
	if u == prefix || strings.HasPrefix(u, prefix+"/") {
		return u
	}
	return prefix + u
}

// RewriteResultURLsJSON applies the same rewrite to a raw job (or job list)
// body without dropping fields the Job type does not know: every string value
// of a "url" key anywhere in the document is prefixed. Numbers are preserved
// exactly.
func RewriteResultURLsJSON(body []byte, prefix string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("ionq: rewrite result URLs: %w", err)
	}
	rewriteURLs(v, prefix)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("ionq: rewrite result URLs: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func rewriteURLs(v any, prefix string) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if s, ok := e.(string); ok && k == "url" {
				t[k] = prefixURL(s, prefix)
				continue
			}
			rewriteURLs(e, prefix)
		}
	case []any:
		for _, e := range t {
			rewriteURLs(e, prefix)
		}
	}
}
