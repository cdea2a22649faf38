package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"os"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/diagram"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/console"
)

// consoleBackend lets the console act for the signed-in person through the
// broker, which authorizes every call.
type consoleBackend struct{ b *broker.Broker }

var _ console.Backend = consoleBackend{}

func (cb consoleBackend) ListApprovals(ctx context.Context, p console.Person, state string, limit int) ([]api.Approval, error) {
	return cb.b.ListApprovalsFor(ctx, p.ID, state, limit)
}

func (cb consoleBackend) GetApproval(ctx context.Context, p console.Person, id string) (api.Approval, error) {
	return cb.b.ApprovalFor(ctx, p.ID, id)
}

func (cb consoleBackend) Decide(ctx context.Context, p console.Person, id string, approve bool, reason, remoteAddr string) (api.Approval, error) {
	c := broker.Caller{RequestID: "console", RemoteAddr: remoteAddr, Path: "/ui/approvals/" + id}
	return cb.b.DecideApproval(ctx, c, broker.Voter{Person: p.ID, Via: "console"}, id, approve, reason)
}

func (cb consoleBackend) CanDecide(_ context.Context, p console.Person, a api.Approval) (bool, string) {
	person, why := cb.b.CanDecide(broker.Voter{Person: p.ID, Via: "console"}, a)
	return person != "", why
}

func (cb consoleBackend) RecentEvents(_ context.Context, p console.Person, limit int) ([]audit.Event, error) {
	return cb.b.RecentEventsFor(p.ID, limit)
}

// renderProgram draws a submitted program for the approver.
func renderProgram(format string, program json.RawMessage) (console.Diagram, error) {
	var c diagram.Circuit
	switch format {
	case api.FormatIonQ, "":
		in, err := circuit.ParseInput(program)
		if err != nil {
			return console.Diagram{}, err
		}
		c = diagram.FromIonQ(in)
	case api.FormatQASM3, api.FormatQASM2:
		var src string
		if err := json.Unmarshal(program, &src); err != nil {
			return console.Diagram{}, fmt.Errorf("qasm3 program is not a JSON string")
		}
		p, err := qasm.Parse([]byte(src))
		if err != nil {
			return console.Diagram{}, err
		}
		c = qasmDiagram(p)
	default:
		return console.Diagram{}, fmt.Errorf("format %q cannot be drawn", format)
	}
	svg, err := diagram.SVG(c, diagram.Options{})
	if err != nil {
		return console.Diagram{}, err
	}
	st := diagram.Analyze(c)
	return console.Diagram{
		SVG:    template.HTML(bytes.TrimSpace(svg)), //nolint:gosec // our renderer escapes everything it draws
		Qubits: st.Qubits, Gates: st.Gates, TwoQubit: st.TwoQubit, Depth: st.Depth, Measurements: st.Measurements,
	}, nil
}

// newConsole builds the approval console for the broker at baseURL.
func newConsole(ctx context.Context, b *broker.Broker, baseURL string, cfg config.ConsoleLogin, devLogin bool, o Options) (*console.Console, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("console: base url: %w", err)
	}
	key, err := b.LocalKey(ctx, "console-session", 32)
	if err != nil {
		return nil, fmt.Errorf("console: session key: %w", err)
	}
	cc := console.Config{
		Backend: consoleBackend{b}, Render: renderProgram, BaseURL: base, DevLogin: devLogin, SessionKey: key, Logger: o.Logger,
	}
	if cfg.Issuer != "" {
		secret := ""
		if cfg.ClientSecretEnv != "" {
			if secret = os.Getenv(cfg.ClientSecretEnv); secret == "" {
				return nil, fmt.Errorf("console: %s (approvals.console.client_secret_env) is empty", cfg.ClientSecretEnv)
			}
		}
		cc.OIDC = &console.OIDCConfig{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: secret, Scopes: cfg.Scopes, PersonClaim: cfg.PersonClaim}
	}
	return console.New(ctx, cc)
}

// qasmControls is how many of an OpenQASM gate's operands are controls.
var qasmControls = map[string]int{
	"cx": 1, "cy": 1, "cz": 1, "ch": 1, "cp": 1, "crx": 1, "cry": 1, "crz": 1, "cswap": 1, "ccx": 2,
}

// qasmDiagram turns a parsed OpenQASM program into the diagram's form:
// controlled gates drawn by their base gate, measurements where they are.
func qasmDiagram(p *qasm.Program) diagram.Circuit {
	c := diagram.Circuit{Qubits: p.Qubits}
	for _, op := range p.Ops {
		n := min(qasmControls[op.Name], len(op.Qubits))
		name := op.Name
		if n > 0 {
			name = name[n:] // cx → x, ccx → x, cswap → swap
		}
		c.Ops = append(c.Ops, diagram.Op{Name: name, Controls: op.Qubits[:n], Targets: op.Qubits[n:], Params: op.Params, Clbit: -1})
	}
	for _, m := range p.Measures {
		c.Ops = append(c.Ops, diagram.Op{Name: "measure", Measure: true, Targets: []int{m.Qubit}, Clbit: m.Clbit})
	}
	return c
}
