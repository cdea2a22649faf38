// Package httpapi serves the broker's /v1 API in Vault's shape: one file per
// path family, and one place (fail) that turns errors into status codes and
// {"errors":[...]} bodies. Handlers decode strictly: unknown fields, trailing
// data and bodies over the limit are refused before anything changes.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

// MaxBody is the default request body limit.
const MaxBody = 1 << 20

// Config configures the API server.
type Config struct {
	Broker  *broker.Broker
	Metrics http.Handler // served at GET /metrics when set
	Logger  *slog.Logger
	MaxBody int64
	Version string
	// Limits are the API rate limits (nil: none). Per source before
	// anything else on every /v1 route but health; per identity when a
	// request's broker token is resolved (Server.caller).
	Limits *broker.APIGuard
}

// Server is the /v1 API as an http.Handler.
type Server struct {
	b       *broker.Broker
	log     *slog.Logger
	maxBody int64
	version string
	mux     *http.ServeMux
	limits  *broker.APIGuard
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = MaxBody
	}
	s := &Server{b: cfg.Broker, log: cfg.Logger, maxBody: cfg.MaxBody, version: cfg.Version, mux: http.NewServeMux(), limits: cfg.Limits}
	s.routes()
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handler is a /v1 handler: it returns the response or an error.
type handler func(r *http.Request, c broker.Caller) (*api.Response, int, error)

// writes registers h for POST and PUT (the Vault client writes with PUT).
func (s *Server) writes(path string, h handler) {
	s.mux.Handle("POST "+path, s.wrap(h))
	s.mux.Handle("PUT "+path, s.wrap(h))
}

func (s *Server) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := broker.Caller{RequestID: newRequestID(), RemoteAddr: r.RemoteAddr, Path: r.URL.Path, ApprovalID: r.Header.Get(api.ApprovalHeader), Client: core.CleanClientName(r.Header.Get(api.ClientHeader))}
		if s.limits != nil && r.Pattern != healthPattern {
			if err := s.limits.AdmitSource(r.Context(), c); err != nil {
				s.fail(w, r, c, err)
				return
			}
			// For the per-identity limit in caller, which audits as c.
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
		}
		resp, status, err := h(r, c)
		var pending *broker.PendingError
		if errors.As(err, &pending) {
			// Held for a human: nothing done. 202 with the held request.
			resp, status, err = data(pending.Approval), http.StatusAccepted, nil
			resp.Warnings = []string{"approval required: " + strings.Join(pending.Approval.Reasons, "; ") + "; review at " + pending.Approval.ConsoleURL}
		}
		if err != nil {
			s.fail(w, r, c, err)
			return
		}
		if resp == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		resp.RequestID = c.RequestID
		if status == 0 {
			status = http.StatusOK
		}
		writeJSON(w, status, resp)
	})
}

// statusOf is the one mapping from error kinds to HTTP status at the broker
// API. An invalid token is 403 here, as in Vault.
func statusOf(err error) int {
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return http.StatusRequestEntityTooLarge
	}
	switch core.KindOf(err) {
	case core.KindBadRequest:
		return http.StatusBadRequest
	case core.KindPermissionDenied, core.KindUnauthenticated:
		return http.StatusForbidden
	case core.KindNotFound:
		return http.StatusNotFound
	case core.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case core.KindConflict:
		return http.StatusConflict
	case core.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case core.KindRateLimited:
		return http.StatusTooManyRequests
	case core.KindUnavailable:
		return http.StatusServiceUnavailable
	case core.KindGone:
		return http.StatusGone
	default:
		return http.StatusInternalServerError
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, c broker.Caller, err error) {
	var se statusError
	if errors.As(err, &se) {
		s.failStatus(w, r, c, err, se.status)
		return
	}
	s.failStatus(w, r, c, err, statusOf(err))
}

func (s *Server) failStatus(w http.ResponseWriter, r *http.Request, c broker.Caller, err error, status int) {
	msg := core.UserMessage(err)
	var rl interface{ RetryAfterSeconds() string } // API limits, login limits, budgets' job rates
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", rl.RetryAfterSeconds())
	}
	if status == http.StatusRequestEntityTooLarge {
		msg = fmt.Sprintf("request body larger than %d bytes", s.maxBody)
	}
	if status >= 500 {
		s.log.Error("request failed", "request_id", c.RequestID, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "request_id", c.RequestID, "path", r.URL.Path, "status", status, "msg", msg)
	}
	writeJSON(w, status, api.ErrorResponse{Errors: []string{msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"errors":["internal error"]}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decode reads a JSON body strictly into v. An empty body is allowed only
// when optional is true.
func (s *Server) decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return core.Wrap(core.KindTooLarge, err, fmt.Sprintf("request body larger than %d bytes", s.maxBody))
		}
		return core.Wrap(core.KindBadRequest, err, "could not read request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return core.Errorf(core.KindBadRequest, "request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return core.Errorf(core.KindBadRequest, "invalid JSON body: %s", jsonProblem(err))
	}
	if dec.More() {
		return core.Errorf(core.KindBadRequest, "invalid JSON body: unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return core.Errorf(core.KindBadRequest, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// jsonProblem describes a decode error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te) && te.Field == "":
		return "the body must be a JSON object"
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a JSON %s", te.Field, jsonKind(te.Type.Kind()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	default:
		// Custom unmarshalers (api.Duration) write safe messages.
		return err.Error()
	}
}

// jsonKind names a Go kind the way a JSON author would.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "value of another type"
}

// rawToken returns the caller's token from X-Vault-Token or a Bearer header.
func rawToken(r *http.Request) string {
	if t := r.Header.Get(api.TokenHeader); t != "" {
		return t
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (s *Server) caller(ctx context.Context, r *http.Request) (string, core.Token, error) {
	raw := rawToken(r)
	t, err := s.b.Authenticate(ctx, raw)
	if err == nil && s.limits != nil {
		c, _ := ctx.Value(callerKey{}).(broker.Caller)
		if err = s.limits.AdmitIdentity(ctx, c, t); err != nil {
			return "", core.Token{}, err
		}
	}
	return raw, t, err
}

// callerKey carries a request's broker.Caller in its context (only when
// limits are on) so that caller can audit a per-identity refusal as it.
type callerKey struct{}

// healthPattern is never rate limited: load balancers poll it.
const healthPattern = "GET /v1/sys/health"

// LimitSource applies the per-source limit to next (the console, served
// beside the API), refusing as the API does.
func (s *Server) LimitSource(next http.Handler) http.Handler {
	if s.limits == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := broker.Caller{RequestID: newRequestID(), RemoteAddr: r.RemoteAddr, Path: r.URL.Path}
		if err := s.limits.AdmitSource(r.Context(), c); err != nil {
			s.fail(w, r, c, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

func data(v any) *api.Response { return &api.Response{Data: v} }
