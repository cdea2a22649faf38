package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/core"
)

// homeData is the approvals overview.
type homeData struct {
	Pending []api.Approval
	Recent  []decisionRow
}

// decisionRow is one line of "Recent decisions".
type decisionRow struct {
	A  api.Approval
	By string // who decided, in words
	At time.Time
}

const recentShown = 20

func (c *Console) home(w http.ResponseWriter, r *http.Request, s session) {
	p := s.person()
	pending, err := c.backend.ListApprovals(r.Context(), p, api.ApprovalPending, listLimit)
	if err != nil {
		c.backendError(w, r, err)
		return
	}
	all, err := c.backend.ListApprovals(r.Context(), p, "", recentLimit)
	if err != nil {
		c.backendError(w, r, err)
		return
	}
	var recent []decisionRow
	for _, a := range all {
		if a.State == api.ApprovalPending {
			continue
		}
		row := decisionRow{A: a, By: deciders(a)}
		if a.DecidedAt != nil {
			row.At = *a.DecidedAt
		} else if a.State == api.ApprovalExpired {
			row.At = a.ExpiresAt
		}
		recent = append(recent, row)
		if len(recent) == recentShown {
			break
		}
	}
	v := c.newView(r, "Approvals", "approvals")
	v.Data = homeData{Pending: pending, Recent: recent}
	c.page(w, http.StatusOK, "home", v)
}

// deciders names who brought a about its state.
func deciders(a api.Approval) string {
	want := "approve"
	switch a.State {
	case api.ApprovalDenied:
		want = "deny"
	case api.ApprovalExpired:
		return "nobody (it expired)"
	}
	var names []string
	for _, v := range a.Votes {
		if v.Decision == want {
			names = append(names, v.Approver)
		}
	}
	if len(names) == 0 {
		return "—"
	}
	return strings.Join(names, ", ")
}

// detailData is the approval page.
type detailData struct {
	A         api.Approval
	Deniers   string
	Approvers string

	Diagram   *Diagram
	RenderErr string
	Program   string

	CanDecide     bool
	WhyNot        string
	CSRF          string
	ApproveAction string
	DenyAction    string
	Reason        string // kept after a failed decision
}

func (c *Console) detail(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	flash := c.takeFlash(w, r, s, id)
	c.showDetail(w, r, s, id, http.StatusOK, flash, "", "")
}

// showDetail renders approval id with a flash or an error message.
func (c *Console) showDetail(w http.ResponseWriter, r *http.Request, s session, id string, status int, flash, errMsg, reason string) {
	a, err := c.backend.GetApproval(r.Context(), s.person(), id)
	if err != nil {
		c.backendError(w, r, err)
		return
	}
	d := detailData{
		A: a, Deniers: decidersOf(a, "deny"), Approvers: decidersOf(a, "approve"),
		Program: programText(a.Program), Reason: reason,
		CSRF:          c.csrfToken(s.ID, actionDecide, a.ID),
		ApproveAction: c.href(approvalPath(a.ID) + "/approve"),
		DenyAction:    c.href(approvalPath(a.ID) + "/deny"),
	}
	if len(a.Program) > 0 && c.render != nil {
		dg, err := safeRender(c.render, a.Format, a.Program)
		if err != nil {
			d.RenderErr = err.Error()
		} else {
			d.Diagram = &dg
		}
	}
	if a.State == api.ApprovalPending {
		d.CanDecide, d.WhyNot = c.backend.CanDecide(r.Context(), s.person(), a)
		if !d.CanDecide && d.WhyNot == "" {
			d.WhyNot = "you may not decide on this request"
		}
	}
	v := c.newView(r, "Request "+a.ID, "")
	v.Flash, v.Error, v.Data = flash, errMsg, d
	c.page(w, status, "detail", v)
}

func decidersOf(a api.Approval, decision string) string {
	var names []string
	for _, v := range a.Votes {
		if v.Decision == decision {
			names = append(names, v.Approver)
		}
	}
	return strings.Join(names, ", ")
}

// safeRender runs the renderer, turning a panic on a hostile program into
// an error.
func safeRender(render RenderFunc, format string, program []byte) (d Diagram, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = Diagram{}, errors.New("the circuit could not be drawn")
		}
	}()
	return render(format, program)
}

// decide handles POST /ui/approvals/{id}/approve and /deny.
func (c *Console) decide(approve bool) func(http.ResponseWriter, *http.Request, session) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	return func(w http.ResponseWriter, r *http.Request, s session) {
		id := r.PathValue("id")
		if problem := c.checkPost(w, r, s, actionDecide, id); problem != "" {
			c.log.Warn("console: form refused", "path", r.URL.Path, "person", s.Person, "problem", problem, "remote", remoteHost(r))
			c.refuse(w, r, http.StatusForbidden, "Request refused",
				"Nothing was changed: "+problem+". Go back to the request, reload the page and try again.")
			return
		}
		reason := strings.TrimSpace(r.PostForm.Get("reason"))
		if n := len([]rune(reason)); n > maxReasonRunes {
			c.showDetail(w, r, s, id, http.StatusBadRequest, "",
				fmt.Sprintf("Your decision was not recorded: the reason is %d characters long; at most %d are allowed.", n, maxReasonRunes), "")
			return
		}
		a, err := c.backend.Decide(r.Context(), s.person(), id, approve, reason, remoteHost(r))
		if err != nil {
			status := statusOf(err)
			if status == http.StatusInternalServerError {
				c.log.Error("console: decide", "approval", id, "err", err)
			}
			if cur, gerr := c.backend.GetApproval(r.Context(), s.person(), id); gerr == nil && cur.State == api.ApprovalExpired {
				status = http.StatusGone
			}
			c.showDetail(w, r, s, id, status, "", "Your decision to "+verb+" was not recorded: "+userMessage(err), reason)
			return
		}
		c.setFlash(w, s, id, flashText(approve, a))
		http.Redirect(w, r, c.href(approvalPath(id)), http.StatusSeeOther)
	}
}

func flashText(approve bool, a api.Approval) string {
	if !approve {
		return "Denied — the request will not go ahead."
	}
	msg := fmt.Sprintf("Approved — %d of %d approvals in.", a.Approved, a.Required)
	switch {
	case a.State == api.ApprovalApproved || a.State == api.ApprovalIssued:
		msg += " The request may now go ahead."
	case a.State == api.ApprovalPending && a.Required > a.Approved:
		msg += fmt.Sprintf(" It needs %d more.", a.Required-a.Approved)
	}
	return msg
}

func (c *Console) auditTrail(w http.ResponseWriter, r *http.Request, s session) {
	events, err := c.backend.RecentEvents(r.Context(), s.person(), auditLimit)
	if err != nil {
		c.backendError(w, r, err)
		return
	}
	v := c.newView(r, "Audit trail", "audit")
	v.Data = events
	c.page(w, http.StatusOK, "audit", v)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s session) {
	if problem := c.checkPost(w, r, s, actionLogout, ""); problem != "" {
		c.refuse(w, r, http.StatusForbidden, "Request refused", "You are still signed in: "+problem+".")
		return
	}
	c.revoked.add(s.ID, time.Unix(s.Expires, 0))
	c.clearCookie(w, "session")
	c.log.Info("console: signed out", "person", s.Person)
	http.Redirect(w, r, c.href("/ui/signed-out"), http.StatusSeeOther)
}

func (c *Console) signedOut(w http.ResponseWriter, r *http.Request) {
	var l *link
	if c.oidc != nil {
		l = &link{Href: c.href("/ui/login"), Text: "Sign in again"}
	}
	c.message(w, r, http.StatusOK, "You are signed out", []string{"You are signed out of the qbroker console."}, l)
}

// backendError renders an error from the Backend on a page.
func (c *Console) backendError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		c.log.Error("console: backend", "path", r.URL.Path, "err", err)
	}
	title := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		title = "Request not found"
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusInternalServerError:
		title = "Something went wrong"
	}
	c.message(w, r, status, title, []string{capitalize(userMessage(err))}, &link{Href: c.href("/ui/"), Text: "Back to approvals"})
}

// statusOf maps an error's kind to the HTTP status of the page.
func statusOf(err error) int {
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
	default:
		return http.StatusInternalServerError
	}
}

// userMessage is what a person may read about err: the user message of a
// *core.Error, never an internal cause.
func userMessage(err error) string {
	if core.KindOf(err) == core.KindInternal {
		return "something went wrong on our side. Nothing was changed; please try again in a moment."
	}
	return core.UserMessage(err)
}

func capitalize(s string) string {
	r := []rune(s)
	if len(r) == 0 {
		return s
	}
	return strings.ToUpper(string(r[0])) + string(r[1:])
}
