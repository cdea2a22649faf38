package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

// tools holds the tool handlers of one MCP server.
type tools struct {
	s          *Server
	perRequest bool
}

func (t *tools) register(srv *sdk.Server) {
	ro := &sdk.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}
	sdk.AddTool(srv, &sdk.Tool{Name: "list_devices", Title: "List quantum devices", Annotations: ro,
		Description: "List the quantum devices qbroker knows: id (provider/name, what submit_circuit takes), kind (\"simulator\" or \"qpu\" = real hardware, which usually needs a person's approval), qubits, max shots, and list price (per task, per shot, per minute; all zero means free). Your role's policy decides which of them you may use."},
		t.listDevices)
	sdk.AddTool(srv, &sdk.Tool{Name: "estimate_cost", Title: "Estimate a job's cost", Annotations: ro, InputSchema: inputSchema[EstimateArgs](shotsAtLeastOne),
		Description: "Estimate the list-price cost in USD of running a circuit with this many shots on a device, as qbroker reserves it against your budget. Costs nothing and submits nothing."},
		t.estimateCost)
	sdk.AddTool(srv, &sdk.Tool{Name: "submit_circuit", Title: "Submit a quantum circuit", InputSchema: submitSchema(),
		Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
		Description: "Run a quantum circuit on a device. The circuit is OpenQASM 3 source (format \"qasm3\", e.g. OPENQASM 3; include \"stdgates.inc\"; qubit[2] q; h q[0]; cx q[0], q[1];) or an IonQ circuit JSON object as a string (format \"ionq\", e.g. {\"qubits\":2,\"circuit\":[{\"gate\":\"h\",\"target\":0},{\"gate\":\"cnot\",\"control\":0,\"target\":1}]}). " +
			"Returns status \"submitted\" with a job_id (then poll job_status and call get_result), or status \"approval_pending\" with an approval_id and a console URL where a person reviews it: call wait_for_approval, then call submit_circuit again with exactly the same circuit, format, device and shots plus approval_id. " +
			"Refusals say why (policy, your role's limits, budget); do not repeat a refused request unchanged."},
		t.submitCircuit)
	sdk.AddTool(srv, &sdk.Tool{Name: "job_status", Title: "Read a job's status", Annotations: ro,
		Description: "Read the status of one of your jobs: submitted, ready, started, completed, failed or canceled. Poll every second or two until completed, then call get_result."},
		t.jobStatus)
	sdk.AddTool(srv, &sdk.Tool{Name: "get_result", Title: "Read a job's result", Annotations: ro,
		Description: "Read the result of one of your completed jobs: the measured probabilities of each bitstring and the counts over the job's shots. Bitstrings have qubit 0 rightmost (as OpenQASM and IonQ write them)."},
		t.getResult)
	sdk.AddTool(srv, &sdk.Tool{Name: "cancel_job", Title: "Cancel a job",
		Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(true)},
		Description: "Cancel one of your jobs that has not finished yet."},
		t.cancelJob)
	sdk.AddTool(srv, &sdk.Tool{Name: "wait_for_approval", Title: "Wait for a person's approval", Annotations: ro, InputSchema: waitSchema(),
		Description: "Wait until a person approves or denies a request that submit_circuit reported as approval_pending, for up to timeout_seconds (default 45, at most 55; call it again while still pending). Once approved, call submit_circuit again with the same arguments plus approval_id. A denied or expired request cannot be used."},
		t.waitForApproval)
	t.registerResources(srv)
}

func ptr[T any](v T) *T { return &v }

// inputSchema is the schema inferred from In, refined by patch: enums and
// bounds a model should see before it calls.
func inputSchema[In any](patch func(*jsonschema.Schema)) *jsonschema.Schema {
	sch, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("schema of %T: %v", *new(In), err)) // a programming error, found by any test
	}
	patch(sch)
	return sch
}

func shotsAtLeastOne(s *jsonschema.Schema) { s.Properties["shots"].Minimum = ptr(1.0) }

func submitSchema() *jsonschema.Schema {
	return inputSchema[SubmitArgs](func(s *jsonschema.Schema) {
		shotsAtLeastOne(s)
		s.Properties["format"].Enum = []any{"qasm3", "ionq"}
	})
}

func waitSchema() *jsonschema.Schema {
	return inputSchema[WaitArgs](func(s *jsonschema.Schema) {
		s.Properties["timeout_seconds"].Minimum = ptr(1.0)
		s.Properties["timeout_seconds"].Maximum = ptr(55.0)
	})
}

// call resolves the caller and records the tool call before it acts.
func (t *tools) call(ctx context.Context, req *sdk.CallToolRequest, rec api.ToolCallRequest) (*caller, error) {
	c, err := t.callerFor(req.Extra, req.ClientInfo())
	if err != nil {
		return nil, err
	}
	if err := t.s.audit(ctx, c, rec); err != nil {
		return nil, err
	}
	return c, nil
}

// text is a tool result's short summary for the model.
func text(format string, a ...any) *sdk.CallToolResult {
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: fmt.Sprintf(format, a...)}}}
}

// --- list_devices ---------------------------------------------------------

// NoArgs is the input of tools without arguments.
type NoArgs struct{}

// Device is one catalogue entry.
type Device struct {
	ID       string `json:"id" jsonschema:"provider/name: the device argument of submit_circuit"`
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Kind     string `json:"kind" jsonschema:"simulator or qpu (real hardware)"`
	Qubits   int    `json:"qubits"`
	MaxShots int    `json:"max_shots,omitempty"`
	Price    Price  `json:"price"`
	Free     bool   `json:"free" jsonschema:"true when every price component is zero"`
	Submit   *bool  `json:"submittable,omitempty" jsonschema:"whether qbroker mcp can submit to this device (IonQ and AWS Braket devices today)"`
	ARN      string `json:"arn,omitempty" jsonschema:"the provider's own id for the device (Braket's device ARN)"`
}

// Price is a device's list price in USD.
type Price struct {
	PerTaskUSD   float64 `json:"per_task_usd"`
	PerShotUSD   float64 `json:"per_shot_usd"`
	PerMinuteUSD float64 `json:"per_minute_usd,omitempty"`
	MinMinutes   float64 `json:"min_minutes,omitempty"`
	PerSecondUSD float64 `json:"per_second_usd,omitempty" jsonschema:"per second of QPU time, for devices billed by it (settled on the reported time)"`
}

// DeviceList is list_devices' result.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

func (t *tools) listDevices(ctx context.Context, req *sdk.CallToolRequest, _ NoArgs) (*sdk.CallToolResult, DeviceList, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "list_devices"})
	if err != nil {
		return nil, DeviceList{}, err
	}
	out, err := devices(ctx, c)
	if err != nil {
		return nil, DeviceList{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d devices:", len(out.Devices))
	for _, d := range out.Devices {
		fmt.Fprintf(&b, "\n- %s (%s, %d qubits, %s)", d.ID, d.Kind, d.Qubits, priceText(d.Price))
	}
	return text("%s", b.String()), out, nil
}

func devices(ctx context.Context, c *caller) (DeviceList, error) {
	ds, err := c.broker.Devices(ctx)
	if err != nil {
		return DeviceList{}, refuseBroker(err)
	}
	out := DeviceList{Devices: make([]Device, 0, len(ds))}
	for _, d := range ds {
		p := Price{PerTaskUSD: d.Price.PerTaskUSD, PerShotUSD: d.Price.PerShotUSD, PerMinuteUSD: d.Price.PerMinuteUSD, MinMinutes: d.Price.MinMinutes, PerSecondUSD: d.Price.PerSecondUSD}
		out.Devices = append(out.Devices, Device{
			ID: d.Provider + "/" + d.Name, Provider: d.Provider, Name: d.Name, Kind: d.Kind, Qubits: d.Qubits, MaxShots: d.MaxShots,
			Price: p, Free: p == Price{MinMinutes: p.MinMinutes}, Submit: ptr(submittable(d.Provider)), ARN: d.ARN,
		})
	}
	sort.Slice(out.Devices, func(i, j int) bool { return out.Devices[i].ID < out.Devices[j].ID })
	return out, nil
}

func priceText(p Price) string {
	switch {
	case p == Price{MinMinutes: p.MinMinutes}:
		return "free"
	case p.PerSecondUSD > 0:
		return fmt.Sprintf("$%g per second of QPU time", p.PerSecondUSD)
	case p.PerMinuteUSD > 0:
		return fmt.Sprintf("$%g per minute, at least %g minutes", p.PerMinuteUSD, p.MinMinutes)
	default:
		return fmt.Sprintf("$%g per task + $%g per shot", p.PerTaskUSD, p.PerShotUSD)
	}
}

// findDevice resolves "provider/name" or a bare IonQ name.
func findDevice(list DeviceList, id string) (Device, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return Device{}, refusef("device is required: a device id from list_devices, such as \"ionq/simulator\"")
	}
	if !strings.Contains(id, "/") {
		id = "ionq/" + id
	}
	for _, d := range list.Devices {
		if d.ID == id {
			return d, nil
		}
	}
	ids := make([]string, 0, len(list.Devices))
	for _, d := range list.Devices {
		ids = append(ids, d.ID)
	}
	return Device{}, refusef(fmt.Sprintf("unknown device %q; known devices: %s", id, strings.Join(ids, ", ")))
}

// --- estimate_cost --------------------------------------------------------

// EstimateArgs is estimate_cost's input.
type EstimateArgs struct {
	Device string `json:"device" jsonschema:"device id from list_devices, e.g. ionq/simulator"`
	Shots  int    `json:"shots" jsonschema:"number of shots (repetitions), at least 1"`
}

// Estimate is estimate_cost's result.
type Estimate struct {
	Device           string  `json:"device"`
	Kind             string  `json:"kind"`
	Shots            int     `json:"shots"`
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
	Price            Price   `json:"price"`
	Note             string  `json:"note"`
}

func (t *tools) estimateCost(ctx context.Context, req *sdk.CallToolRequest, in EstimateArgs) (*sdk.CallToolResult, Estimate, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "estimate_cost", Device: in.Device, Shots: max(in.Shots, 0)})
	if err != nil {
		return nil, Estimate{}, err
	}
	list, err := devices(ctx, c)
	if err != nil {
		return nil, Estimate{}, err
	}
	d, err := findDevice(list, in.Device)
	if err != nil {
		return nil, Estimate{}, err
	}
	if err := checkShots(d, in.Shots); err != nil {
		return nil, Estimate{}, err
	}
	est := d.Price.PerTaskUSD + float64(in.Shots)*d.Price.PerShotUSD + d.Price.MinMinutes*d.Price.PerMinuteUSD
	est = math.Round(est*1e6) / 1e6
	out := Estimate{Device: d.ID, Kind: d.Kind, Shots: in.Shots, EstimatedCostUSD: est, Price: d.Price,
		Note: "list price without discounts or taxes; this is what qbroker reserves against your budget when it issues the job"}
	if d.Price.PerSecondUSD > 0 {
		out.Note = fmt.Sprintf("billed per second of QPU time ($%g/s), which is known only after the job runs: the estimate leaves it out, and the job settles at its reported time", d.Price.PerSecondUSD)
	}
	return text("%d shots on %s (%s): estimated %s (%s)", in.Shots, d.ID, d.Kind, fmtUSD(est), priceText(d.Price)), out, nil
}

func checkShots(d Device, shots int) error {
	if shots < 1 {
		return refusef(fmt.Sprintf("shots must be at least 1 (got %d)", shots))
	}
	if d.MaxShots > 0 && shots > d.MaxShots {
		return refusef(fmt.Sprintf("%s takes at most %d shots; you asked for %d. Nothing was submitted.", d.ID, d.MaxShots, shots))
	}
	return nil
}

// --- submit_circuit -------------------------------------------------------

// SubmitArgs is submit_circuit's input.
type SubmitArgs struct {
	Circuit    string `json:"circuit" jsonschema:"the program: OpenQASM 3 source, or an IonQ circuit JSON object written as a string"`
	Format     string `json:"format" jsonschema:"qasm3 or ionq"`
	Device     string `json:"device" jsonschema:"device id from list_devices, e.g. ionq/simulator"`
	Shots      int    `json:"shots" jsonschema:"number of shots, at least 1"`
	ApprovalID string `json:"approval_id,omitempty" jsonschema:"only after wait_for_approval reported approved: the approval_id, with exactly the same circuit, format, device and shots"`
}

// Submission is submit_circuit's result.
type Submission struct {
	Status           string   `json:"status" jsonschema:"submitted or approval_pending"`
	JobID            string   `json:"job_id,omitempty"`
	Device           string   `json:"device"`
	Shots            int      `json:"shots"`
	Qubits           int      `json:"qubits"`
	ProgramSHA256    string   `json:"program_sha256"`
	ApprovalID       string   `json:"approval_id,omitempty"`
	ConsoleURL       string   `json:"console_url,omitempty" jsonschema:"where a person reviews the request"`
	Reasons          []string `json:"reasons,omitempty" jsonschema:"why approval is needed"`
	EstimatedCostUSD float64  `json:"estimated_cost_usd"`
	ExpiresAt        string   `json:"expires_at,omitempty" jsonschema:"when a pending approval expires (RFC 3339)"`
	Next             string   `json:"next" jsonschema:"what to do next"`
}

// program is a validated circuit in IonQ's input form, and its OpenQASM 3
// source when it was given as such.
type program struct {
	input  json.RawMessage // IonQ circuit input object
	digest string          // of input (circuit.Digest)
	qubits int
	circ   *circuit.Input
	qasm   string // the OpenQASM 3 source as given; empty for IonQ JSON
}

// qasmSource is the program as OpenQASM 3: as given, or converted from
// IonQ's form.
func (p program) qasmSource() (string, error) {
	if p.qasm != "" {
		return p.qasm, nil
	}
	src, err := qasm.FromIonQ(p.circ)
	if err != nil {
		return "", refusef("the IonQ circuit cannot be written as OpenQASM 3 for this device: " + redact(err.Error()))
	}
	return src, nil
}

// parseProgram validates the circuit and converts OpenQASM 3 to IonQ's
// circuit form (the form the gateway submits and the token binds).
func parseProgram(src, format string) (program, error) {
	if strings.TrimSpace(src) == "" {
		return program{}, refusef("circuit is required: OpenQASM 3 source (format \"qasm3\") or an IonQ circuit JSON object as a string (format \"ionq\")")
	}
	var in *circuit.Input
	var qasmSrc string
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "qasm3":
		p, err := qasm.Parse([]byte(src))
		if err != nil {
			return program{}, refusef("the OpenQASM 3 circuit is invalid: " + redact(err.Error()))
		}
		if !strings.HasPrefix(p.Version, "3") {
			return program{}, refusef("format qasm3 takes OpenQASM 3 (header OPENQASM 3;), not OpenQASM " + p.Version)
		}
		if in, err = p.ToIonQ(); err != nil {
			return program{}, refusef("the OpenQASM 3 circuit uses something qbroker cannot carry: " + redact(err.Error()))
		}
		qasmSrc = src
	case "ionq":
		var err error
		if in, err = circuit.ParseInput([]byte(src)); err != nil {
			return program{}, refusef("the IonQ circuit JSON is invalid: " + redact(err.Error()))
		}
	case "":
		return program{}, refusef("format is required: \"qasm3\" or \"ionq\"")
	default:
		return program{}, refusef(fmt.Sprintf("format %q is not supported: use \"qasm3\" or \"ionq\"", format))
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return program{}, fmt.Errorf("encode circuit: %w", err)
	}
	digest, err := circuit.Digest(raw)
	if err != nil {
		return program{}, refusef("the circuit cannot be bound to a job token: " + redact(err.Error()))
	}
	return program{input: raw, digest: digest, qubits: in.Qubits, circ: in, qasm: qasmSrc}, nil
}

func (t *tools) submitCircuit(ctx context.Context, req *sdk.CallToolRequest, in SubmitArgs) (*sdk.CallToolResult, Submission, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "submit_circuit", Device: in.Device, Shots: max(in.Shots, 0), ApprovalID: in.ApprovalID})
	if err != nil {
		return nil, Submission{}, err
	}
	// Everything that can be checked here is, before anything is asked
	// of the broker: nothing is reserved for a request that cannot run.
	prog, err := parseProgram(in.Circuit, in.Format)
	if err != nil {
		return nil, Submission{}, err
	}
	list, err := devices(ctx, c)
	if err != nil {
		return nil, Submission{}, err
	}
	d, err := findDevice(list, in.Device)
	if err != nil {
		return nil, Submission{}, err
	}
	bk, ok := t.s.backendFor(d.Provider)
	if !ok {
		return nil, Submission{}, refusef(fmt.Sprintf("%s cannot be submitted through qbroker mcp yet: only IonQ (ionq/...) and AWS Braket (aws/...) devices can. Nothing was submitted.", d.ID))
	}
	if err := checkShots(d, in.Shots); err != nil {
		return nil, Submission{}, err
	}
	if d.Qubits > 0 && prog.qubits > d.Qubits {
		return nil, Submission{}, refusef(fmt.Sprintf("the circuit uses %d qubits but %s has %d; nothing was submitted or charged. Use fewer qubits or a larger device.", prog.qubits, d.ID, d.Qubits))
	}
	role := t.s.o.Role
	if role == "" {
		if role, err = c.broker.Role(ctx); err != nil {
			return nil, Submission{}, refuseBroker(err)
		}
		if role == "" {
			return nil, Submission{}, refusef("this broker token has no role, so it cannot submit jobs; a person must give qbroker mcp an agent's token")
		}
	}
	est := d.Price.PerTaskUSD + float64(in.Shots)*d.Price.PerShotUSD + d.Price.MinMinutes*d.Price.PerMinuteUSD
	out := Submission{Device: d.ID, Shots: in.Shots, Qubits: prog.qubits, ProgramSHA256: prog.digest, EstimatedCostUSD: math.Round(est*1e6) / 1e6}

	treq, err := bk.tokenRequest(d, in.Shots, prog)
	if err != nil {
		return nil, Submission{}, err
	}
	treq.ApprovalID = strings.TrimSpace(in.ApprovalID)
	out.ProgramSHA256 = treq.ProgramSHA256
	stop := func() {}
	if !t.perRequest && t.s.agent != nil {
		// The local agent may be asking the person (its consent rules):
		// a client that sent a progressToken hears that it is waiting.
		stop = notifyWhile(ctx, req, "waiting for the person at this computer to answer qbroker agent's consent prompt")
	}
	jt, err := c.broker.JobToken(ctx, role, treq)
	stop()
	var pending *client.PendingError
	if errors.As(err, &pending) {
		a := pending.Approval
		out.Status, out.ApprovalID, out.ConsoleURL, out.Reasons = "approval_pending", a.ID, a.ConsoleURL, a.Reasons
		out.EstimatedCostUSD = a.EstimatedCostUSD
		if !a.ExpiresAt.IsZero() {
			out.ExpiresAt = a.ExpiresAt.UTC().Format(time.RFC3339)
		}
		out.Next = "A person must approve this request (review at the console URL). Call wait_for_approval with approval_id " + a.ID +
			"; once approved, call submit_circuit again with the same circuit, format, device and shots and approval_id " + a.ID + "."
		return text("Held for approval %s: %s. Review: %s. Nothing has run yet.", a.ID, strings.Join(a.Reasons, "; "), a.ConsoleURL), out, nil
	}
	if err != nil {
		return nil, Submission{}, refuseBroker(err)
	}
	t.s.learnGateway(jt.GatewayAddr)
	sub, err := bk.submit(ctx, c, jt.Token, d, in.Shots, prog)
	if err != nil {
		return nil, Submission{}, err
	}
	out.Status, out.JobID, out.ApprovalID = "submitted", sub.ID, strings.TrimSpace(in.ApprovalID)
	out.Next = "Poll job_status with job_id " + sub.ID + " until it is completed, then call get_result."
	return text("Submitted job %s: %d shots of a %d-qubit circuit on %s (%s).", sub.ID, in.Shots, prog.qubits, d.ID, sub.Status), out, nil
}

// notifyWhile sends a progress notification every 2 s until stop is
// called, if the request carries a progressToken.
func notifyWhile(ctx context.Context, req *sdk.CallToolRequest, msg string) (stop func()) {
	progress := req.Params.GetProgressToken()
	if progress == nil || req.Session == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: progress, Progress: time.Since(start).Seconds(), Message: msg})
			}
		}
	}()
	return func() { close(done); <-finished }
}

// --- job_status, get_result, cancel_job -----------------------------------

// JobArgs names one job.
type JobArgs struct {
	JobID string `json:"job_id" jsonschema:"the job_id submit_circuit returned"`
}

// JobStatus is job_status' and cancel_job's result.
type JobStatus struct {
	JobID   string `json:"job_id"`
	Status  string `json:"status" jsonschema:"submitted, ready, started, completed, failed or canceled"`
	Device  string `json:"device,omitempty"`
	Shots   int    `json:"shots,omitempty"`
	Failure string `json:"failure,omitempty"`
	Next    string `json:"next"`
}

func (t *tools) jobStatus(ctx context.Context, req *sdk.CallToolRequest, in JobArgs) (*sdk.CallToolResult, JobStatus, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "job_status", Provider: "ionq", JobID: in.JobID})
	if err != nil {
		return nil, JobStatus{}, err
	}
	bk, err := t.s.backendForJob(in.JobID)
	if err != nil {
		return nil, JobStatus{}, err
	}
	j, err := bk.job(ctx, c, strings.TrimSpace(in.JobID))
	if err != nil {
		return nil, JobStatus{}, err
	}
	out := statusOf(j)
	return text("Job %s is %s.", out.JobID, out.Status), out, nil
}

func statusOf(j jobView) JobStatus {
	out := JobStatus{JobID: j.ID, Status: j.Status, Device: j.Device, Shots: j.Shots, Failure: redact(j.Failure)}
	switch j.Status {
	case "completed":
		out.Next = "Call get_result."
	case "failed", "canceled":
		out.Next = "The job will not produce a result."
	default:
		out.Next = "Poll job_status again in a second or two."
	}
	return out
}

// Result is get_result's result.
type Result struct {
	JobID         string             `json:"job_id"`
	Status        string             `json:"status"`
	Shots         int                `json:"shots"`
	Qubits        int                `json:"qubits,omitempty"`
	Probabilities map[string]float64 `json:"probabilities" jsonschema:"bitstring (qubit 0 rightmost) to probability"`
	Counts        map[string]int     `json:"counts" jsonschema:"bitstring to the number of shots (probability × shots, rounded)"`
}

func (t *tools) getResult(ctx context.Context, req *sdk.CallToolRequest, in JobArgs) (*sdk.CallToolResult, Result, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "get_result", Provider: "ionq", JobID: in.JobID})
	if err != nil {
		return nil, Result{}, err
	}
	bk, err := t.s.backendForJob(in.JobID)
	if err != nil {
		return nil, Result{}, err
	}
	j, err := bk.job(ctx, c, strings.TrimSpace(in.JobID))
	if err != nil {
		return nil, Result{}, err
	}
	if j.Status != "completed" {
		return nil, Result{}, refusef(fmt.Sprintf("job %s is %s, not completed: there is no result yet. Poll job_status until it is completed.", j.ID, j.Status))
	}
	probs, err := bk.probabilities(ctx, c, j)
	if err != nil {
		return nil, Result{}, err
	}
	out := Result{JobID: j.ID, Status: j.Status, Shots: j.Shots, Qubits: j.Qubits, Probabilities: map[string]float64{}, Counts: map[string]int{}}
	for bits, p := range probs {
		out.Probabilities[bits] = p
		out.Counts[bits] = int(math.Round(p * float64(j.Shots)))
	}
	keys := make([]string, 0, len(out.Counts))
	for k := range out.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "Job %s completed; counts over %d shots:", j.ID, j.Shots)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, out.Counts[k])
	}
	return text("%s", b.String()), out, nil
}

func (t *tools) cancelJob(ctx context.Context, req *sdk.CallToolRequest, in JobArgs) (*sdk.CallToolResult, JobStatus, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "cancel_job", Provider: "ionq", JobID: in.JobID})
	if err != nil {
		return nil, JobStatus{}, err
	}
	bk, err := t.s.backendForJob(in.JobID)
	if err != nil {
		return nil, JobStatus{}, err
	}
	id := strings.TrimSpace(in.JobID)
	if err := bk.cancel(ctx, c, id); err != nil {
		return nil, JobStatus{}, err
	}
	j, err := bk.job(ctx, c, id)
	if err != nil {
		return nil, JobStatus{}, err
	}
	out := statusOf(j)
	return text("Cancel requested for job %s; it is now %s.", out.JobID, out.Status), out, nil
}

// --- wait_for_approval ----------------------------------------------------

// WaitArgs is wait_for_approval's input.
type WaitArgs struct {
	ApprovalID     string `json:"approval_id" jsonschema:"the approval_id submit_circuit returned"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"how long to wait, 1 to 55 seconds (default 45)"`
}

// ApprovalState is wait_for_approval's result.
type ApprovalState struct {
	ApprovalID string `json:"approval_id"`
	State      string `json:"state" jsonschema:"pending, approved, denied, expired or issued"`
	Approvals  int    `json:"approvals"`
	Required   int    `json:"required"`
	Reason     string `json:"reason,omitempty" jsonschema:"the denier's reason, or why it expired"`
	ConsoleURL string `json:"console_url,omitempty"`
	Next       string `json:"next"`
}

func (t *tools) waitForApproval(ctx context.Context, req *sdk.CallToolRequest, in WaitArgs) (*sdk.CallToolResult, ApprovalState, error) {
	c, err := t.call(ctx, req, api.ToolCallRequest{Tool: "wait_for_approval", ApprovalID: in.ApprovalID})
	if err != nil {
		return nil, ApprovalState{}, err
	}
	id := strings.TrimSpace(in.ApprovalID)
	if id == "" {
		return nil, ApprovalState{}, refusef("approval_id is required: the approval_id submit_circuit returned")
	}
	timeout := 45 * time.Second
	if in.TimeoutSeconds != 0 {
		if in.TimeoutSeconds < 1 || in.TimeoutSeconds > 55 {
			return nil, ApprovalState{}, refusef(fmt.Sprintf("timeout_seconds must be between 1 and 55 (got %d)", in.TimeoutSeconds))
		}
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	start := time.Now()
	deadline := start.Add(timeout)
	progress := req.Params.GetProgressToken()
	var a api.Approval
	for {
		wait := min(time.Until(deadline), 2*time.Second)
		if wait < time.Second {
			wait = time.Second
		}
		a, err = c.broker.Approval(ctx, id, wait)
		if err != nil {
			return nil, ApprovalState{}, refuseBroker(err)
		}
		if a.State != api.ApprovalPending || !time.Now().Before(deadline) {
			break
		}
		if ctx.Err() != nil {
			return nil, ApprovalState{}, &refusal{msg: "stopped waiting: the call was canceled", cause: ctx.Err()}
		}
		if progress != nil && req.Session != nil {
			// Hosts show it, and clients that reset their timeout on
			// progress keep waiting.
			_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{
				ProgressToken: progress, Progress: time.Since(start).Seconds(), Total: timeout.Seconds(),
				Message: fmt.Sprintf("waiting for approval %s: %d of %d approvals", a.ID, a.Approved, a.Required),
			})
		}
	}
	out := ApprovalState{ApprovalID: a.ID, State: a.State, Approvals: a.Approved, Required: a.Required, Reason: redact(a.Reason), ConsoleURL: a.ConsoleURL}
	switch a.State {
	case api.ApprovalApproved:
		out.Next = "Approved. Call submit_circuit again with exactly the same circuit, format, device and shots and approval_id " + a.ID + "."
	case api.ApprovalPending:
		out.Next = fmt.Sprintf("Still pending (%d of %d approvals). Call wait_for_approval again, or tell the person to review it at the console URL.", a.Approved, a.Required)
	case api.ApprovalDenied:
		out.Next = "Denied; do not submit this request again. Tell the person who runs you, with the reason."
	case api.ApprovalExpired:
		out.Next = "Expired before it was used; submit the circuit again to ask for a new approval."
	case api.ApprovalIssued:
		out.Next = "Already used: this approval released a job token once and cannot be used again."
	}
	return text("Approval %s is %s (%d of %d approvals). %s", a.ID, a.State, a.Approved, a.Required, out.Next), out, nil
}
