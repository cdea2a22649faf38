package braketsim

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

// Task statuses.
const (
	StatusCreated    = "CREATED"
	StatusQueued     = "QUEUED"
	StatusRunning    = "RUNNING"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusCancelling = "CANCELLING"
	StatusCancelled  = "CANCELLED"
)

const (
	actionOpenQASM = "braket.ir.openqasm.program"
	timeFormat     = "2006-01-02T15:04:05.000Z"
)

var taskARNRE = regexp.MustCompile(`^arn:aws:braket:([a-z0-9-]+):([0-9]{12}):quantum-task/([0-9a-f-]{36})$`)

// isTerminal reports COMPLETED, FAILED and CANCELLED.
func isTerminal(s string) bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// task is the emulator's record of one quantum task. Fields below the
// "guarded" comment are read and written only with Emulator.mu held.
type task struct {
	id, arn      string
	region       string
	device       Device
	shots        int64
	bucket       string
	prefix       string
	action       json.RawMessage // the decoded action object
	deviceParams string
	tags         map[string]string
	clientToken  string
	digest       [32]byte
	prog         *qasm.Program
	createdAt    time.Time
	seq          uint64

	// guarded by Emulator.mu
	status    string
	endedAt   time.Time
	failure   string
	succeeded int64
	history   []string
}

func (t *task) setStatus(s string) {
	t.status = s
	t.history = append(t.history, s)
}

// outputDir is the S3 "directory" holding the task's results.
func (t *task) outputDir() string { return t.prefix + "/" + t.id }

func (e *Emulator) createTask(c *call) {
	f, aerr := decodeFields(c.body)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	clientToken := f.str("clientToken", true, 1, 64)
	deviceARN := f.str("deviceArn", true, 1, 256)
	shots := f.long("shots", true, 0, 1<<53)
	bucket := f.str("outputS3Bucket", true, 3, 63)
	prefix := f.str("outputS3KeyPrefix", true, 1, 1024)
	action := f.str("action", true, 1, MaxBodyBytes)
	deviceParams := f.str("deviceParameters", false, 1, 48000)
	tags := f.strMap("tags", 50)
	jobToken := f.str("jobToken", false, 1, 128)
	var associations []json.RawMessage
	if f.present("associations") {
		if err := json.Unmarshal(f.m["associations"], &associations); err != nil || len(associations) > 1 {
			f.verrs.add("Value at 'associations' failed to satisfy constraint: Member must be a list of at most 1 association")
		}
	}
	if f.present("experimentalCapabilities") {
		var ec struct {
			Enabled string `json:"enabled"`
		}
		if err := json.Unmarshal(f.m["experimentalCapabilities"], &ec); err != nil || (ec.Enabled != "ALL" && ec.Enabled != "NONE") {
			f.verrs.add("Value at 'experimentalCapabilities.enabled' failed to satisfy constraint: Member must satisfy enum value set: [ALL, NONE]")
		}
	}
	if aerr := f.done(); aerr != nil {
		c.fail(aerr)
		return
	}

	id := newUUID()
	arn := fmt.Sprintf("arn:aws:braket:%s:%s:quantum-task/%s", c.region, e.cfg.AccountID, id)
	pairs := [][2]string{{"braket:CreateQuantumTask", deviceARN}, {"braket:CreateQuantumTask", arn}}
	if len(tags) > 0 {
		pairs = append(pairs, [2]string{"braket:TagResource", arn})
	}
	if aerr := c.authorize(pairs...); aerr != nil {
		c.fail(aerr)
		return
	}
	digest := sha256.Sum256(c.body)
	if prior, aerr := e.priorTask(clientToken, digest); aerr != nil || prior != "" {
		if aerr != nil {
			c.fail(aerr)
			return
		}
		c.writeJSON(http.StatusCreated, map[string]string{"quantumTaskArn": prior})
		return
	}

	d, ok := e.visibleDevice(deviceARN, c.region)
	if !ok {
		c.fail(validation("Device %s is not a valid device in region %s.", deviceARN, c.region))
		return
	}
	switch d.Status {
	case Offline:
		c.fail(&apiError{status: 424, code: "DeviceOfflineException", msg: fmt.Sprintf("Device %s is currently offline.", d.ARN)})
		return
	case Retired:
		c.fail(&apiError{status: 410, code: "DeviceRetiredException", msg: fmt.Sprintf("Device %s has been retired.", d.ARN)})
		return
	}
	minShots := int64(1)
	if d.Type == Simulator {
		minShots = 0
	}
	if shots < minShots || shots > int64(d.MaxShots) {
		c.fail(validation("Device %s supports shots in [%d, %d]; %d requested.", d.ARN, minShots, d.MaxShots, shots))
		return
	}
	if aerr := e.checkBucket(bucket); aerr != nil {
		c.fail(aerr)
		return
	}
	if deviceParams != "" && !json.Valid([]byte(deviceParams)) {
		c.fail(validation("deviceParameters is not valid JSON."))
		return
	}
	if len(associations) > 0 {
		c.fail(validation("The reservation in associations does not exist (the emulator has no reservations)."))
		return
	}
	if jobToken != "" {
		c.fail(validation("jobToken does not belong to a running hybrid job (the emulator has no hybrid jobs)."))
		return
	}
	actionObj, prog, aerr := parseAction(action)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	if prog.Qubits > d.Qubits {
		c.fail(validation("The program uses %d qubits; device %s has %d.", prog.Qubits, d.ARN, d.Qubits))
		return
	}

	t := &task{
		id: id, arn: arn, region: c.region, device: d, shots: shots, bucket: bucket, prefix: prefix,
		action: actionObj, deviceParams: deviceParams, tags: tags, clientToken: clientToken, digest: digest,
		prog: prog, createdAt: e.now().UTC(),
	}
	t.setStatus(StatusCreated)
	prior, err := e.admit(t)
	switch {
	case errors.Is(err, errShuttingDown):
		c.fail(&apiError{status: 503, code: "InternalServiceException", msg: err.Error()})
		return
	case err != nil:
		c.fail(&apiError{status: 402, code: "ServiceQuotaExceededException", msg: err.Error()})
		return
	case prior != "":
		arn = prior // a concurrent retry with the same clientToken won
	}
	e.log.Debug("braketsim: task created", "task", arn, "device", d.ARN, "shots", shots, "qubits", prog.Qubits, "caller", c.p.arn)
	c.writeJSON(http.StatusCreated, map[string]string{"quantumTaskArn": arn})
}

func validation(format string, args ...any) *apiError {
	return &apiError{status: 400, code: "ValidationException", msg: fmt.Sprintf(format, args...)}
}

// priorTask returns the ARN of the task already created with clientToken, or
// a ConflictException if that task was created from a different request.
func (e *Emulator) priorTask(clientToken string, digest [32]byte) (string, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.tokens[clientToken]
	if !ok {
		return "", nil
	}
	t := e.tasks[id]
	if t.digest != digest {
		return "", &apiError{status: 409, code: "ConflictException", msg: "A quantum task with this clientToken already exists with different parameters."}
	}
	return t.arn, nil
}

// parseAction decodes the action JSON string and parses its program.
func parseAction(action string) (json.RawMessage, *qasm.Program, *apiError) {
	obj, err := decodeObject([]byte(action))
	if err != nil {
		return nil, nil, validation("action is not a JSON object: %s", err)
	}
	var header struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(obj["braketSchemaHeader"], &header); err != nil || header.Name == "" {
		return nil, nil, validation("action.braketSchemaHeader is required.")
	}
	if header.Name != actionOpenQASM || header.Version != "1" {
		return nil, nil, validation("Action type %s version %s is not supported by the emulator; use %s version 1.", header.Name, header.Version, actionOpenQASM)
	}
	for k := range obj {
		if k != "braketSchemaHeader" && k != "source" && k != "inputs" {
			return nil, nil, validation("action has an unknown field %q.", k)
		}
	}
	var source string
	if err := json.Unmarshal(obj["source"], &source); err != nil || source == "" {
		return nil, nil, validation("action.source must be a non-empty string.")
	}
	if raw, ok := obj["inputs"]; ok && string(raw) != "null" {
		var inputs map[string]json.RawMessage
		if err := json.Unmarshal(raw, &inputs); err != nil {
			return nil, nil, validation("action.inputs must be an object.")
		}
		if len(inputs) > 0 {
			return nil, nil, validation("action.inputs: the emulator does not support program inputs.")
		}
	}
	prog, err := qasm.Parse([]byte(source))
	if err == nil && prog.Version == "2.0" {
		err = errors.New("OpenQASM 2.0 is not accepted: braket.ir.openqasm.program is OpenQASM 3")
	}
	if err != nil {
		return nil, nil, validation("Invalid OpenQASM program: %s", err)
	}
	if prog.Qubits < 1 {
		return nil, nil, validation("Invalid OpenQASM program: it declares no qubits.")
	}
	if _, err := prog.ToIonQ(); err != nil {
		return nil, nil, validation("Invalid OpenQASM program: %s", err)
	}
	b, _ := json.Marshal(obj)
	return b, prog, nil
}

// admit stores t, evicting the oldest terminal task (and its results) if
// full, and starts its lifecycle. If a task with the same clientToken was
// admitted meanwhile, prior is its ARN and t is dropped.
func (e *Emulator) admit(t *task) (prior string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return "", errShuttingDown
	}
	if id, ok := e.tokens[t.clientToken]; ok {
		return e.tasks[id].arn, nil
	}
	if len(e.tasks) >= e.cfg.MaxTasks {
		victim := slices.IndexFunc(e.order, func(id string) bool { return isTerminal(e.tasks[id].status) })
		if victim < 0 {
			return "", fmt.Errorf("too many unfinished quantum tasks (limit %d)", e.cfg.MaxTasks)
		}
		old := e.tasks[e.order[victim]]
		delete(e.tasks, old.id)
		delete(e.tokens, old.clientToken)
		if b := e.buckets[old.bucket]; b != nil {
			delete(b, old.outputDir()+"/results.json")
		}
		e.order = slices.Delete(e.order, victim, victim+1)
	}
	if e.buckets[t.bucket] == nil {
		e.buckets[t.bucket] = map[string]*object{} // created on first use
	}
	e.seq++
	t.seq = e.seq
	e.tasks[t.id] = t
	e.tokens[t.clientToken] = t.id
	e.order = append(e.order, t.id)
	e.wg.Add(1)
	go e.lifecycle(t)
	return "", nil
}

// queuedOn counts the tasks waiting on a device.
func (e *Emulator) queuedOn(arn string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.tasks {
		if t.device.ARN == arn && (t.status == StatusCreated || t.status == StatusQueued) {
			n++
		}
	}
	return n
}

// lookupTask finds the task named by arn in c's region and account.
func (e *Emulator) lookupTask(c *call, arn string) (*task, *apiError) {
	m := taskARNRE.FindStringSubmatch(arn)
	if m == nil {
		return nil, validation("%s is not a valid quantum task ARN.", arn)
	}
	e.mu.Lock()
	t, ok := e.tasks[m[3]]
	e.mu.Unlock()
	if !ok || m[1] != c.region || m[2] != e.cfg.AccountID || t.arn != arn {
		return nil, &apiError{status: 404, code: "ResourceNotFoundException", msg: fmt.Sprintf("Quantum task %s not found.", arn)}
	}
	return t, nil
}

func (e *Emulator) getTask(c *call, arn string) {
	withQueue := false
	for k, vs := range c.r.URL.Query() {
		if k != "additionalAttributeNames" {
			continue
		}
		for _, v := range vs {
			if v != "QueueInfo" {
				c.fail(validation("Value '%s' at 'additionalAttributeNames' failed to satisfy constraint: Member must satisfy enum value set: [QueueInfo]", v))
				return
			}
			withQueue = true
		}
	}
	if aerr := c.authorize([2]string{"braket:GetQuantumTask", arn}); aerr != nil {
		c.fail(aerr)
		return
	}
	t, aerr := e.lookupTask(c, arn)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	type queueInfo struct {
		Queue         string `json:"queue"`
		Position      string `json:"position"`
		QueuePriority string `json:"queuePriority,omitempty"`
		Message       string `json:"message,omitempty"`
	}
	type actionMetadata struct {
		ActionType      string `json:"actionType"`
		ProgramCount    int    `json:"programCount"`
		ExecutableCount int    `json:"executableCount"`
	}
	type response struct {
		QuantumTaskArn     string            `json:"quantumTaskArn"`
		Status             string            `json:"status"`
		DeviceArn          string            `json:"deviceArn"`
		DeviceParameters   string            `json:"deviceParameters,omitempty"`
		Shots              int64             `json:"shots"`
		OutputS3Bucket     string            `json:"outputS3Bucket"`
		OutputS3Directory  string            `json:"outputS3Directory"`
		CreatedAt          string            `json:"createdAt"`
		EndedAt            string            `json:"endedAt,omitempty"`
		FailureReason      string            `json:"failureReason,omitempty"`
		Tags               map[string]string `json:"tags"`
		NumSuccessfulShots *int64            `json:"numSuccessfulShots,omitempty"`
		QueueInfo          *queueInfo        `json:"queueInfo,omitempty"`
		ActionMetadata     actionMetadata    `json:"actionMetadata"`
	}
	e.mu.Lock()
	res := response{
		QuantumTaskArn: t.arn, Status: t.status, DeviceArn: t.device.ARN, DeviceParameters: t.deviceParams,
		Shots: t.shots, OutputS3Bucket: t.bucket, OutputS3Directory: t.outputDir(),
		CreatedAt: t.createdAt.Format(timeFormat), FailureReason: t.failure, Tags: map[string]string{},
		ActionMetadata: actionMetadata{ActionType: actionOpenQASM, ProgramCount: 1, ExecutableCount: 1},
	}
	for k, v := range t.tags {
		res.Tags[k] = v
	}
	if !t.endedAt.IsZero() {
		res.EndedAt = t.endedAt.Format(timeFormat)
	}
	if t.status == StatusCompleted {
		n := t.succeeded
		res.NumSuccessfulShots = &n
	}
	if withQueue {
		q := &queueInfo{Queue: "QUANTUM_TASKS_QUEUE", Position: "None", QueuePriority: "Normal"}
		if t.status == StatusQueued || t.status == StatusCreated {
			q.Position = "1"
		} else {
			q.Message = fmt.Sprintf("Task is in %s status. AmazonBraket does not show queue position for this status.", t.status)
		}
		res.QueueInfo = q
	}
	e.mu.Unlock()
	c.writeJSON(http.StatusOK, res)
}

func (e *Emulator) cancelTask(c *call, arn string) {
	f, aerr := decodeFields(c.body)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	f.str("clientToken", true, 1, 64)
	if aerr := f.done(); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := c.authorize([2]string{"braket:CancelQuantumTask", arn}); aerr != nil {
		c.fail(aerr)
		return
	}
	t, aerr := e.lookupTask(c, arn)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	e.mu.Lock()
	status := t.status
	switch status {
	case StatusCompleted, StatusFailed:
	case StatusCancelling, StatusCancelled:
	default:
		t.setStatus(StatusCancelling)
		status = StatusCancelling
	}
	e.mu.Unlock()
	if status == StatusCompleted || status == StatusFailed {
		c.fail(&apiError{status: 409, code: "ConflictException", msg: fmt.Sprintf("Quantum task %s is already %s and cannot be cancelled.", arn, status)})
		return
	}
	e.log.Debug("braketsim: task cancel requested", "task", arn, "status", status)
	c.writeJSON(http.StatusOK, map[string]string{"quantumTaskArn": arn, "cancellationStatus": status})
}

// lifecycle advances t one StepDelay at a time and runs it.
func (e *Emulator) lifecycle(t *task) {
	defer e.wg.Done()
	for _, next := range []string{StatusQueued, StatusRunning} {
		if !e.sleep() || !e.transition(t, next) {
			return
		}
	}
	if !e.sleep() {
		return
	}
	select {
	case e.sem <- struct{}{}:
	case <-e.ctx.Done():
		return
	}
	result, failure := e.execute(t)
	<-e.sem
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.status != StatusRunning {
		e.finishCancel(t)
		return
	}
	t.endedAt = e.now().UTC()
	if failure != "" {
		t.failure = failure
		t.setStatus(StatusFailed)
	} else {
		e.putObject(t.bucket, t.outputDir()+"/results.json", result)
		t.succeeded = t.shots
		t.setStatus(StatusCompleted)
	}
	e.log.Debug("braketsim: task finished", "task", t.arn, "status", t.status)
}

func (e *Emulator) sleep() bool {
	tm := time.NewTimer(e.cfg.StepDelay)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// transition moves t to next unless a cancellation intervened.
func (e *Emulator) transition(t *task, next string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.status == StatusCancelling {
		e.finishCancel(t)
		return false
	}
	if isTerminal(t.status) {
		return false
	}
	t.setStatus(next)
	e.log.Debug("braketsim: task transition", "task", t.arn, "status", next)
	return true
}

// finishCancel completes a requested cancellation; call with e.mu held.
func (e *Emulator) finishCancel(t *task) {
	if t.status == StatusCancelling {
		t.setStatus(StatusCancelled)
		t.endedAt = e.now().UTC()
	}
}
