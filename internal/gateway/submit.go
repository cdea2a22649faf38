package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/provider/ionq"
	"github.com/qbroker/qbroker/internal/token"
)

const (
	// afterRedeemTimeout bounds the work done once a token is redeemed. That
	// work runs detached from the client's cancellation so a disconnect
	// cannot leave a forwarded job unrecorded.
	afterRedeemTimeout = 2 * time.Minute
	// cancelTimeout bounds the best-effort upstream cancel of a job the
	// gateway could not record or audit.
	cancelTimeout = 10 * time.Second
	// maxMessage bounds error detail copied from a parser into a response.
	maxMessage = 300
)

// recordBackoff is the pause before each retry of RecordJob.
func recordBackoff(attempt int) time.Duration {
	return time.Duration(attempt) * 25 * time.Millisecond
}

const recordAttempts = 3

// verifyRefusal maps a verification failure to a status and a message that
// names the failure without echoing the token. A failure that is not the
// token's fault (say, the JWKS could not be fetched) is a 503.
func verifyRefusal(err error) (int, string) {
	switch {
	case errors.Is(err, token.ErrExpired):
		return http.StatusUnauthorized, "job token expired"
	case errors.Is(err, token.ErrNotYetValid):
		return http.StatusUnauthorized, "job token is not yet valid"
	case errors.Is(err, token.ErrBadSignature):
		return http.StatusUnauthorized, "job token has a bad signature"
	case errors.Is(err, token.ErrUnsupportedAlg):
		return http.StatusUnauthorized, "job token uses an unsupported signing algorithm (only EdDSA is accepted)"
	case errors.Is(err, token.ErrUnknownKey):
		return http.StatusUnauthorized, "job token is signed by an unknown key"
	case errors.Is(err, token.ErrClaims):
		return http.StatusUnauthorized, "job token claims are invalid (issuer, audience or lifetime)"
	case errors.Is(err, token.ErrMalformed):
		return http.StatusUnauthorized, "job token is malformed"
	default:
		return http.StatusServiceUnavailable, "job token could not be verified now; try again"
	}
}

// redeemRefusal maps a Redeem error to an HTTP status and message: 401 for
// the token's fault, 503 for anything else.
func redeemRefusal(err error) (status int, msg string) {
	switch {
	case errors.Is(err, ErrTokenUsed):
		return http.StatusUnauthorized, "job token already used"
	case errors.Is(err, ErrTokenExpired):
		return http.StatusUnauthorized, "job token expired"
	case errors.Is(err, ErrTokenRevoked):
		return http.StatusUnauthorized, "job token revoked"
	case errors.Is(err, ErrUnknownToken):
		return http.StatusUnauthorized, "job token unknown to the broker"
	default:
		return http.StatusServiceUnavailable, "broker unavailable; job token not redeemed"
	}
}

// submitEvent starts the audit event of a submission.
func submitEvent(r *http.Request) *audit.Event {
	return &audit.Event{
		Type:       "submit",
		Provider:   providerIonQ,
		Path:       r.URL.Path,
		RemoteAddr: r.RemoteAddr,
		Client:     clientName(r),
	}
}

// clientName is the self-declared client software of a request
// (X-Qbroker-Client, e.g. `qbroker mcp` for an MCP client), for the audit
// trail.
func clientName(r *http.Request) string {
	return core.CleanClientName(r.Header.Get(api.ClientHeader))
}

// refuse audits a refusal and answers it. If the audit cannot be recorded
// the answer is 503 instead (invariant 4).
func (g *Gateway) refuse(ctx context.Context, w http.ResponseWriter, ev *audit.Event, status int, msg string) {
	g.refuseWith(ctx, w, ev, ionq.NewError(status, msg))
}

// refuseWith is refuse with a prepared IonQ error (one that may name the
// offending keys).
func (g *Gateway) refuseWith(ctx context.Context, w http.ResponseWriter, ev *audit.Event, e *ionq.Error) {
	ev.Decision = audit.DecisionDeny
	ev.Reason = e.Message
	ev.Status = e.StatusCode
	if err := g.broker.Audit(ctx, ev); err != nil {
		g.log.WarnContext(ctx, "audit failed; refusing", "type", ev.Type, "err", err)
		writeError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
		return
	}
	e.Write(w)
}

// fail audits a failure after redemption (decision "error") and answers
// with status and msg, or 503 when the audit itself fails.
func (g *Gateway) fail(ctx context.Context, w http.ResponseWriter, ev *audit.Event, status int, msg string, cause error) {
	ev.Decision = audit.DecisionError
	ev.Reason = msg
	ev.Status = status
	if cause != nil {
		ev.Error = cause.Error()
		g.log.WarnContext(ctx, "submission failed", "reason", msg, "err", cause)
	}
	if err := g.broker.Audit(ctx, ev); err != nil {
		g.log.WarnContext(ctx, "audit failed", "type", ev.Type, "err", err)
		status, msg = http.StatusServiceUnavailable, "audit unavailable; request refused"
	}
	writeError(w, status, msg)
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "…"
}

// submit handles POST /ionq/v0.4/jobs. Every check runs before Redeem, so a
// refused request changes no state.
func (g *Gateway) submit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev := submitEvent(r)

	tooLarge := "request body exceeds " + strconv.FormatInt(g.maxBody, 10) + " bytes"
	if r.ContentLength > g.maxBody {
		g.refuse(ctx, w, ev, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.refuse(ctx, w, ev, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		g.refuse(ctx, w, ev, http.StatusBadRequest, "could not read request body")
		return
	}

	raw, ok := ionq.APIKeyFromHeader(r.Header)
	if !ok || raw == "" {
		g.refuse(ctx, w, ev, http.StatusUnauthorized, "missing job token: send it as the API key (Authorization: apiKey <job token>)")
		return
	}
	claims, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		status, msg := verifyRefusal(err)
		if status == http.StatusServiceUnavailable {
			ev.Error = err.Error() // token errors never contain the token
			g.log.WarnContext(ctx, "job token verification failed", "err", err)
		}
		g.refuse(ctx, w, ev, status, msg)
		return
	}
	ev.Agent, ev.Role, ev.JTI, ev.Device = claims.Subject, claims.Role, claims.ID, claims.Device
	if claims.Provider != providerIonQ {
		g.refuse(ctx, w, ev, http.StatusForbidden, fmt.Sprintf("job token is for provider %q, not %s", claims.Provider, providerIonQ))
		return
	}

	job, err := ionq.DecodeJobRequest(body)
	if err == nil {
		err = job.Validate()
	}
	if err != nil {
		e := ionq.ErrorFromValidation(err)
		e.Message = "invalid job request: " + truncate(e.Message)
		g.refuseWith(ctx, w, ev, e)
		return
	}
	if job.Backend != claims.Device {
		g.refuse(ctx, w, ev, http.StatusForbidden, fmt.Sprintf("job token is for device %s; request names %s", claims.Device, truncate(job.Backend)))
		return
	}
	shots := job.EffectiveShots()
	ev.Shots = shots
	if shots > claims.MaxShots {
		g.refuse(ctx, w, ev, http.StatusForbidden, fmt.Sprintf("request asks for %d shots; job token allows at most %d", shots, claims.MaxShots))
		return
	}
	if claims.ProgramSHA256 != "" {
		digest, err := circuit.Digest(job.Input)
		if err != nil {
			g.refuse(ctx, w, ev, http.StatusBadRequest, "invalid job input: "+truncate(err.Error()))
			return
		}
		if digest != claims.ProgramSHA256 {
			g.refuse(ctx, w, ev, http.StatusForbidden, "circuit does not match the program digest the job token is bound to")
			return
		}
	}

	if err := g.broker.Redeem(ctx, claims.ID); err != nil {
		status, msg := redeemRefusal(err)
		if status == http.StatusServiceUnavailable {
			ev.Error = err.Error()
			g.log.WarnContext(ctx, "redeem failed", "jti", claims.ID, "err", err)
		}
		g.refuse(ctx, w, ev, status, msg)
		return
	}

	// The token is spent: finish detached from the client's cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRedeemTimeout)
	defer cancel()
	g.forwardSubmission(ctx, w, r, ev, claims, body)
}

// forwardSubmission audits the decision, forwards the original body with
// the real key, records the job and answers.
func (g *Gateway) forwardSubmission(ctx context.Context, w http.ResponseWriter, r *http.Request, ev *audit.Event, claims *token.Claims, body []byte) {
	// No separate audit event is needed before forwarding: Broker.Redeem
	// returns success only once the redemption is durably audited, so with
	// the audit sink down nothing reaches the upstream.
	resp, err := g.send(ctx, upstreamReq{
		method: http.MethodPost,
		path:   "/v0.4/jobs",
		body:   body,
		auth:   true,
		in:     r.Header,
	})
	if err != nil {
		g.fail(ctx, w, ev, http.StatusBadGateway, "upstream unavailable; job not submitted", err)
		return
	}
	respBody, err := readBody(resp)
	if err != nil {
		g.fail(ctx, w, ev, http.StatusBadGateway, "upstream answer could not be read; job state unknown", err)
		return
	}
	if resp.StatusCode != http.StatusCreated {
		ev.Decision = audit.DecisionError
		ev.Reason = "upstream refused the job"
		ev.Status = resp.StatusCode
		g.settle(claims.ID, false, nil, nil) // nothing runs: its reservation settles at 0 and leaves the in-flight count
		if err := g.broker.Audit(ctx, ev); err != nil {
			writeError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
			return
		}
		g.writeBuffered(w, resp, respBody)
		return
	}

	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(respBody, &created); err != nil || !validJobID(created.ID) {
		g.fail(ctx, w, ev, http.StatusBadGateway, "upstream accepted the job but returned no usable job id", err)
		return
	}
	ev.JobID = created.ID
	rec := api.JobRecord{
		Provider:  providerIonQ,
		ID:        created.ID,
		AgentID:   claims.Subject,
		Role:      claims.Role,
		JTI:       claims.ID,
		Device:    claims.Device,
		Shots:     ev.Shots,
		CreatedAt: g.now().UTC(),
	}
	// Recording the owner and auditing the submission are independent
	// durable writes: run them side by side, and answer only when both
	// are done.
	ev.Decision = audit.DecisionAllow
	ev.Reason = "submitted"
	ev.Status = resp.StatusCode
	var recErr error
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		recErr = g.recordJob(ctx, rec)
	}()
	auditErr := g.broker.Audit(ctx, ev)
	<-recorded
	if recErr != nil {
		msg := "job could not be recorded; canceled upstream"
		if cerr := g.cancelUpstream(ctx, created.ID); cerr != nil {
			msg = "job could not be recorded; upstream cancel failed"
			recErr = errors.Join(recErr, cerr)
		}
		g.fail(ctx, w, ev, http.StatusServiceUnavailable, msg, recErr)
		return
	}
	if auditErr != nil {
		// The agent is told the job failed, so it must not run.
		g.log.WarnContext(ctx, "audit failed after submission; canceling job", "job", created.ID, "err", auditErr)
		if cerr := g.cancelUpstream(ctx, created.ID); cerr != nil {
			g.log.WarnContext(ctx, "upstream cancel failed", "job", created.ID, "err", cerr)
		}
		writeError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
		return
	}
	g.writeBuffered(w, resp, respBody)
}

// recordJob calls Broker.RecordJob, retrying a couple of times.
func (g *Gateway) recordJob(ctx context.Context, rec api.JobRecord) error {
	var err error
	for attempt := range recordAttempts {
		if attempt > 0 {
			t := time.NewTimer(recordBackoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		if err = g.broker.RecordJob(ctx, rec); err == nil {
			return nil
		}
	}
	return fmt.Errorf("gateway: record job after %d attempts: %w", recordAttempts, err)
}

// cancelUpstream cancels a job best-effort.
func (g *Gateway) cancelUpstream(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
	defer cancel()
	resp, err := g.send(ctx, upstreamReq{
		method: http.MethodPut,
		path:   "/v0.4/jobs/" + id + "/status/cancel",
		auth:   true,
		in:     http.Header{},
	})
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("gateway: upstream cancel of %s: status %d", id, resp.StatusCode)
	}
	return nil
}
