package azuresim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Job statuses (JobStatus in the spec; reference §4.2).
const (
	StatusWaiting               = "Waiting"
	StatusExecuting             = "Executing"
	StatusFinishing             = "Finishing"
	StatusSucceeded             = "Succeeded"
	StatusFailed                = "Failed"
	StatusCancellationRequested = "CancellationRequested"
	StatusCancelled             = "Cancelled"
)

// IsTerminal reports whether a job in status s will not change again.
func IsTerminal(s string) bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled || s == "Completed"
}

const (
	defaultInputBlob  = "inputData"
	defaultOutputBlob = "rawOutputData"
)

var jobIDRE = regexp.MustCompile(`^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$`)

// jobRequest is the writable part of JobDetails. Read-only fields sent by
// a client (status, creationTime, …) are ignored, as the service does.
type jobRequest struct {
	ID               *string         `json:"id"`
	Name             *string         `json:"name"`
	ItemType         *string         `json:"itemType"`
	JobType          *string         `json:"jobType"`
	ProviderID       *string         `json:"providerId"`
	Target           *string         `json:"target"`
	ContainerURI     *string         `json:"containerUri"`
	InputDataURI     *string         `json:"inputDataUri"`
	InputDataFormat  *string         `json:"inputDataFormat"`
	InputParams      json.RawMessage `json:"inputParams"`
	Metadata         json.RawMessage `json:"metadata"`
	OutputDataURI    *string         `json:"outputDataUri"`
	OutputDataFormat *string         `json:"outputDataFormat"`
	SessionID        *string         `json:"sessionId"`
	Tags             []string        `json:"tags"`
	Priority         *string         `json:"priority"`
}

// job is the emulator's record of one job. Fields after the "guarded"
// comment are read and written only with Emulator.mu held.
type job struct {
	id            string
	name          string
	providerID    string
	target        Target
	container     string
	containerURI  string
	inputURI      string
	inputBlob     string
	outputBlob    string
	outputURI     string
	inputParams   json.RawMessage
	metadata      json.RawMessage
	tags          []string
	priority      string
	prog          *program
	shots         int
	seq           uint64
	created       time.Time
	createdBy     string
	createdByType string

	// guarded by Emulator.mu
	status    string
	begin     time.Time
	end       time.Time
	cancelled time.Time
	errData   *errorData
	history   []string // every status held, in order
}

type errorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (j *job) setStatus(s string) {
	j.status = s
	j.history = append(j.history, s)
}

func invalidJob(format string, args ...any) *apiError {
	return badRequest("InvalidJobDefinition", format, args...)
}

func (e *Emulator) handleCreateJob(c *call) *apiError {
	id := c.r.PathValue("jobId")
	if !jobIDRE.MatchString(id) {
		return badRequest("InvalidJobId", "The job id '%s' is not a GUID.", clip(id))
	}
	var req jobRequest
	if aerr := readJSON(c, &req); aerr != nil {
		return aerr
	}
	j, aerr := e.newJob(c, id, &req)
	if aerr != nil {
		return aerr
	}
	// Read the input the client uploaded. The real service reads it when
	// the job runs and fails the job if it is missing or invalid; the
	// emulator checks at submission so that bad input is a 4xx that
	// creates nothing.
	e.mu.Lock()
	data, ok := e.readBlob(j.container, j.inputBlob)
	e.mu.Unlock()
	if !ok {
		return invalidJob("The input data blob '%s' was not found in container '%s'; upload it before creating the job.", j.inputBlob, j.container)
	}
	prog, err := parseInput(j.target, data)
	if err != nil {
		return badRequest("InvalidInputData", "%s", clip(err.Error()))
	}
	j.prog = prog
	v, aerr := e.admit(j)
	if aerr != nil {
		return aerr
	}
	e.log.Debug("azuresim: job created", "job", j.id, "target", j.target.ID, "shots", j.shots, "qubits", prog.circ.Qubits)
	writeJSON(c.w, http.StatusCreated, v)
	return nil
}

// newJob validates req against the workspace and builds the job record.
func (e *Emulator) newJob(c *call, id string, req *jobRequest) (*job, *apiError) {
	if req.ID != nil && !strings.EqualFold(*req.ID, id) {
		return nil, invalidJob("The job id in the body '%s' does not match the id in the path '%s'.", clip(*req.ID), id)
	}
	if req.ItemType != nil && *req.ItemType != "Job" {
		return nil, invalidJob("itemType must be 'Job'.")
	}
	if req.JobType != nil && *req.JobType != "QuantumComputing" {
		return nil, invalidJob("jobType '%s' is not supported by the emulator; only 'QuantumComputing'.", clip(*req.JobType))
	}
	required := []struct {
		field string
		v     *string
	}{{"name", req.Name}, {"providerId", req.ProviderID}, {"target", req.Target}, {"containerUri", req.ContainerURI}, {"inputDataFormat", req.InputDataFormat}}
	for _, f := range required {
		if f.v == nil || *f.v == "" {
			return nil, invalidJob("The field '%s' is required.", f.field)
		}
	}
	t, ok := e.target(*req.Target)
	if !ok {
		return nil, invalidJob("Target '%s' is not available in this workspace.", clip(*req.Target))
	}
	if !strings.EqualFold(*req.ProviderID, t.ProviderID) {
		return nil, invalidJob("Target '%s' does not belong to provider '%s'.", t.ID, clip(*req.ProviderID))
	}
	if *req.InputDataFormat != t.InputFormat {
		return nil, invalidJob("Input data format '%s' is not supported by target '%s' in the emulator; use '%s'.", clip(*req.InputDataFormat), t.ID, t.InputFormat)
	}
	if req.OutputDataFormat != nil && *req.OutputDataFormat != "" && *req.OutputDataFormat != t.OutputFormat {
		return nil, invalidJob("Output data format '%s' is not produced by target '%s'; use '%s'.", clip(*req.OutputDataFormat), t.ID, t.OutputFormat)
	}
	if req.SessionID != nil && *req.SessionID != "" {
		return nil, invalidJob("sessionId: the emulator has no sessions.")
	}
	priority := "Standard"
	if req.Priority != nil {
		if *req.Priority != "Standard" && *req.Priority != "High" {
			return nil, invalidJob("priority must be 'Standard' or 'High'.")
		}
		priority = *req.Priority
	}
	cont, cblob, err := e.parseBlobURI(*req.ContainerURI)
	if err != nil || cblob != "" {
		if err == nil {
			err = errors.New("names a blob, not a container")
		}
		return nil, invalidJob("containerUri %s.", err)
	}
	j := &job{
		id: strings.ToLower(id), name: *req.Name, providerID: *req.ProviderID, target: t,
		container: cont, containerURI: *req.ContainerURI, priority: priority, tags: req.Tags,
		inputBlob: defaultInputBlob, outputBlob: defaultOutputBlob, created: e.now(), createdBy: c.p.appID, createdByType: c.p.kind,
	}
	if j.tags == nil {
		j.tags = []string{}
	}
	uris := []struct {
		field      string
		v          *string
		uri, blobN *string
	}{{"inputDataUri", req.InputDataURI, &j.inputURI, &j.inputBlob}, {"outputDataUri", req.OutputDataURI, &j.outputURI, &j.outputBlob}}
	for _, u := range uris {
		if u.v == nil || *u.v == "" {
			continue
		}
		uc, ub, err := e.parseBlobURI(*u.v)
		switch {
		case err != nil:
			return nil, invalidJob("%s %s.", u.field, err)
		case uc != cont || ub == "":
			return nil, invalidJob("%s must name a blob in the job's container.", u.field)
		}
		*u.uri, *u.blobN = *u.v, ub
	}
	if j.outputURI == "" {
		j.outputURI = e.blobURL(e.storageBase(c.r), cont, j.outputBlob, "r")
	}
	if j.inputURI == "" {
		j.inputURI = e.blobURL(e.storageBase(c.r), cont, defaultInputBlob, "r")
	}
	var aerr *apiError
	if j.metadata, aerr = jsonObject(req.Metadata, "metadata", false); aerr != nil {
		return nil, aerr
	}
	if j.inputParams, aerr = jsonObject(req.InputParams, "inputParams", true); aerr != nil {
		return nil, aerr
	}
	if j.shots, aerr = shotsOf(j.inputParams, t); aerr != nil {
		return nil, aerr
	}
	return j, nil
}

// jsonObject checks that raw is a JSON object (or absent/null, which
// becomes {} when emptyObject and null otherwise).
func jsonObject(raw json.RawMessage, field string, emptyObject bool) (json.RawMessage, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		if emptyObject {
			return json.RawMessage(`{}`), nil
		}
		return json.RawMessage(`null`), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalidJob("%s must be a JSON object.", field)
	}
	return raw, nil
}

// shotsOf reads the shot count from inputParams under the target's
// parameter names; several names must agree. Absent means DefaultShots.
func shotsOf(params json.RawMessage, t Target) (int, *apiError) {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(params, &m) // already checked to be an object
	shots := 0
	for _, name := range t.ShotsParams {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(raw)))
		if err != nil {
			return 0, invalidJob("inputParams.%s must be an integer.", name)
		}
		if n < 1 || n > t.MaxShots {
			return 0, invalidJob("inputParams.%s must be between 1 and %d for target '%s', got %d.", name, t.MaxShots, t.ID, n)
		}
		if shots != 0 && shots != n {
			return 0, invalidJob("inputParams.%s disagree.", strings.Join(t.ShotsParams, " and "))
		}
		shots = n
	}
	if shots == 0 {
		shots = min(DefaultShots, t.MaxShots)
	}
	return shots, nil
}

// admit stores j, evicting the oldest terminal job if full, and starts its
// lifecycle goroutine. It returns the job as created (status Waiting).
func (e *Emulator) admit(j *job) (*jobView, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: errShuttingDown.Error()}
	}
	if _, dup := e.jobs[j.id]; dup {
		// UNCERTAIN: the service's answer to a PUT on an existing job id.
		return nil, &apiError{status: http.StatusConflict, code: "JobAlreadyExists", msg: fmt.Sprintf("A job with id '%s' already exists.", j.id)}
	}
	if len(e.jobs) >= e.cfg.MaxJobs {
		victim := slices.IndexFunc(e.order, func(id string) bool { return IsTerminal(e.jobs[id].status) })
		if victim < 0 {
			return nil, &apiError{status: http.StatusTooManyRequests, code: "TooManyRequests", msg: fmt.Sprintf("Too many unfinished jobs (limit %d).", e.cfg.MaxJobs)}
		}
		e.removeJob(e.order[victim])
	}
	e.seq++
	j.seq = e.seq
	j.setStatus(StatusWaiting)
	e.jobs[j.id] = j
	e.order = append(e.order, j.id)
	v := e.view(j)
	e.wg.Add(1)
	go e.lifecycle(j)
	return v, nil
}

// removeJob forgets a job and, unless another kept job uses it, its
// container; call with e.mu held.
func (e *Emulator) removeJob(id string) {
	j, ok := e.jobs[id]
	if !ok {
		return
	}
	delete(e.jobs, id)
	e.order = slices.DeleteFunc(e.order, func(x string) bool { return x == id })
	for _, other := range e.jobs {
		if other.container == j.container {
			return
		}
	}
	e.dropContainer(j.container)
}

// lookup finds the job named by the path's jobId.
func (e *Emulator) lookup(id string) (*job, *apiError) {
	if !jobIDRE.MatchString(id) {
		return nil, badRequest("InvalidJobId", "The job id '%s' is not a GUID.", clip(id))
	}
	e.mu.Lock()
	j, ok := e.jobs[strings.ToLower(id)]
	e.mu.Unlock()
	if !ok {
		// UNCERTAIN: the exact code for an unknown job.
		return nil, &apiError{status: http.StatusNotFound, code: "JobNotFound", msg: fmt.Sprintf("Job '%s' was not found.", strings.ToLower(id))}
	}
	return j, nil
}

func (e *Emulator) handleGetJob(c *call) *apiError {
	j, aerr := e.lookup(c.r.PathValue("jobId"))
	if aerr != nil {
		return aerr
	}
	e.mu.Lock()
	v := e.view(j)
	e.mu.Unlock()
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// handleListJobs is GET jobs: every job, oldest first, in one page. skip
// and top page through them; filter and orderby are not implemented and
// are refused rather than ignored.
func (e *Emulator) handleListJobs(c *call) *apiError {
	q := c.r.URL.Query()
	for _, p := range []string{"filter", "orderby", "$filter", "$orderby"} {
		if q.Get(p) != "" {
			return badRequest("InvalidQueryParameter", "The query parameter '%s' is not supported by the emulator.", p)
		}
	}
	skip, top := 0, -1
	for name, dst := range map[string]*int{"skip": &skip, "top": &top} {
		if s := q.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return badRequest("InvalidQueryParameter", "The query parameter '%s' must be a non-negative integer.", name)
			}
			*dst = n
		}
	}
	e.mu.Lock()
	views := make([]*jobView, 0, len(e.order))
	for i, id := range e.order {
		if i < skip || (top >= 0 && len(views) >= top) {
			continue
		}
		views = append(views, e.view(e.jobs[id]))
	}
	e.mu.Unlock()
	writeJSON(c.w, http.StatusOK, paged[*jobView]{Value: views})
	return nil
}

// handleJobAction is POST jobs/{jobId}:cancel.
func (e *Emulator) handleJobAction(c *call) *apiError {
	id, ok := strings.CutSuffix(c.r.PathValue("jobAction"), ":cancel")
	if !ok {
		return &apiError{status: http.StatusNotFound, code: "NotFound", msg: "The requested route was not found."}
	}
	j, aerr := e.lookup(id)
	if aerr != nil {
		return aerr
	}
	if aerr := e.cancelJob(j, true); aerr != nil {
		return aerr
	}
	e.mu.Lock()
	v := e.view(j)
	e.mu.Unlock()
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// cancelJob requests cancellation of j: a job not yet terminal moves to
// CancellationRequested and is Cancelled at its next step. Cancelling a
// cancelled (or cancelling) job is a no-op when idempotent; a job that
// finished otherwise cannot be cancelled (409; code UNCERTAIN).
func (e *Emulator) cancelJob(j *job, idempotent bool) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case j.status == StatusCancelled || j.status == StatusCancellationRequested:
		if idempotent {
			return nil
		}
	case !IsTerminal(j.status):
		j.setStatus(StatusCancellationRequested)
		e.log.Debug("azuresim: job cancellation requested", "job", j.id)
		return nil
	}
	return &apiError{status: http.StatusConflict, code: "InvalidJobState", msg: fmt.Sprintf("Job '%s' is %s and cannot be cancelled.", j.id, j.status)}
}

// handleDeleteJob is DELETE jobs/{jobId}: a cancellation before
// api-version 2025-12-01-preview, a deletion from it on. Deletion is
// allowed only for terminal jobs (409 otherwise; UNCERTAIN).
func (e *Emulator) handleDeleteJob(c *call) *apiError {
	j, aerr := e.lookup(c.r.PathValue("jobId"))
	if aerr != nil {
		return aerr
	}
	if c.apiVersion < DeleteIsDeleteSince {
		if aerr := e.cancelJob(j, true); aerr != nil {
			return aerr
		}
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	e.mu.Lock()
	status := j.status
	if IsTerminal(status) {
		e.removeJob(j.id)
	}
	e.mu.Unlock()
	if !IsTerminal(status) {
		return &apiError{status: http.StatusConflict, code: "InvalidJobState", msg: fmt.Sprintf("Job '%s' is %s; cancel it before deleting it.", j.id, status)}
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// jobView is JobDetails as the service returns it.
type jobView struct {
	ID                 string          `json:"id"`
	Name               string          `json:"name"`
	ItemType           string          `json:"itemType"`
	JobType            string          `json:"jobType"`
	ProviderID         string          `json:"providerId"`
	Target             string          `json:"target"`
	Status             string          `json:"status"`
	ContainerURI       string          `json:"containerUri"`
	InputDataURI       string          `json:"inputDataUri"`
	InputDataFormat    string          `json:"inputDataFormat"`
	InputParams        json.RawMessage `json:"inputParams"`
	Metadata           json.RawMessage `json:"metadata"`
	OutputDataURI      string          `json:"outputDataUri"`
	OutputDataFormat   string          `json:"outputDataFormat"`
	SessionID          *string         `json:"sessionId"`
	Tags               []string        `json:"tags"`
	Priority           string          `json:"priority"`
	CreationTime       string          `json:"creationTime"`
	CreatedBy          string          `json:"createdBy,omitempty"`
	CreatedByType      string          `json:"createdByType"`
	BeginExecutionTime *string         `json:"beginExecutionTime"`
	EndExecutionTime   *string         `json:"endExecutionTime"`
	CancellationTime   *string         `json:"cancellationTime"`
	ErrorData          *errorData      `json:"errorData"`
	CostEstimate       any             `json:"costEstimate"`
	Usage              any             `json:"usage"`
}

// view renders j; call with e.mu held.
func (e *Emulator) view(j *job) *jobView {
	opt := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		s := azureTime(t)
		return &s
	}
	return &jobView{
		ID: j.id, Name: j.name, ItemType: "Job", JobType: "QuantumComputing", ProviderID: j.providerID,
		Target: j.target.ID, Status: j.status, ContainerURI: j.containerURI, InputDataURI: j.inputURI,
		InputDataFormat: j.target.InputFormat, InputParams: j.inputParams, Metadata: j.metadata,
		OutputDataURI: j.outputURI, OutputDataFormat: j.target.OutputFormat, Tags: j.tags, Priority: j.priority,
		CreationTime: azureTime(j.created), CreatedBy: j.createdBy, CreatedByType: j.createdByType,
		BeginExecutionTime: opt(j.begin), EndExecutionTime: opt(j.end), CancellationTime: opt(j.cancelled),
		ErrorData: j.errData,
	}
}
