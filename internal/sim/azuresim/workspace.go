package azuresim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

const wsPrefix = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Quantum/workspaces/{ws}"

// call is one authenticated workspace request.
type call struct {
	w          http.ResponseWriter
	r          *http.Request
	apiVersion string
	p          *principal
}

func (e *Emulator) workspaceRoutes() {
	e.workspace.Handle("GET "+wsPrefix+"/jobs", e.api(e.handleListJobs))
	e.workspace.Handle("GET "+wsPrefix+"/jobs/{jobId}", e.api(e.handleGetJob))
	e.workspace.Handle("PUT "+wsPrefix+"/jobs/{jobId}", e.api(e.handleCreateJob))
	e.workspace.Handle("DELETE "+wsPrefix+"/jobs/{jobId}", e.api(e.handleDeleteJob))
	// POST …/jobs/{jobId}:cancel: a ServeMux wildcard is a whole segment,
	// so the action suffix is split off in the handler.
	e.workspace.Handle("POST "+wsPrefix+"/jobs/{jobAction}", e.api(e.handleJobAction))
	e.workspace.Handle("GET "+wsPrefix+"/providerStatus", e.api(e.handleProviderStatus))
	e.workspace.Handle("POST "+wsPrefix+"/storage/sasUri", e.api(e.handleSASURI))
}

func (e *Emulator) serveWorkspace(w http.ResponseWriter, r *http.Request) {
	if _, pattern := e.workspace.Handler(r); pattern == "" {
		rec := &headerRecorder{header: http.Header{}}
		h, _ := e.workspace.Handler(r)
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			e.writeAPIError(w, &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed",
				msg: fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method)})
			return
		}
		// UNCERTAIN: the code Azure Quantum uses for an unknown route.
		e.writeAPIError(w, &apiError{status: http.StatusNotFound, code: "NotFound", msg: "The requested route was not found."})
		return
	}
	e.workspace.ServeHTTP(w, r)
}

// headerRecorder captures the status and headers of ServeMux's built-in
// error handlers.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int)      { h.status = status }

// api wraps a workspace operation: api-version (400), credential (401/403),
// then the workspace named by the path (404). The api-version is checked
// first, as Azure front ends do (order UNCERTAIN); it reveals nothing.
func (e *Emulator) api(op func(*call) *apiError) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r}
		aerr := e.checkAPIVersion(c)
		if aerr == nil {
			c.p, aerr = e.authenticate(r)
		}
		if aerr == nil {
			aerr = e.checkWorkspace(r)
		}
		if aerr == nil {
			aerr = op(c)
		}
		if aerr != nil {
			e.log.Debug("azuresim: request refused", "method", r.Method, "path", r.URL.Path, "status", aerr.status, "code", aerr.code)
			e.writeAPIError(w, aerr)
		}
	})
}

func (e *Emulator) checkAPIVersion(c *call) *apiError {
	vs := c.r.URL.Query()["api-version"]
	switch {
	case len(vs) == 0 || vs[0] == "":
		return badRequest("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	case len(vs) > 1:
		return badRequest("InvalidApiVersionParameter", "The api-version query parameter must be given once.")
	case !e.versions[vs[0]]:
		return badRequest("UnsupportedApiVersion", "The HTTP resource that matches the request URI '%s' does not support the API version '%s'.", c.r.URL.Path, clip(vs[0]))
	}
	c.apiVersion = vs[0]
	return nil
}

// checkWorkspace compares the path's subscription, resource group and
// workspace with the one served (ARM resource ids are case-insensitive).
// UNCERTAIN: the code and status for a workspace that does not exist or is
// not the caller's.
func (e *Emulator) checkWorkspace(r *http.Request) *apiError {
	sub, rg, ws := r.PathValue("sub"), r.PathValue("rg"), r.PathValue("ws")
	if !subRE.MatchString(sub) || !rgRE.MatchString(rg) || !workspaceRE.MatchString(ws) {
		return badRequest("InvalidRequest", "The subscription id, resource group or workspace name in the path is malformed.")
	}
	if sub != e.cfg.SubscriptionID || !strings.EqualFold(rg, e.cfg.ResourceGroup) || !strings.EqualFold(ws, e.cfg.Workspace) {
		return &apiError{status: http.StatusNotFound, code: "WorkspaceNotFound",
			msg: fmt.Sprintf("Workspace '/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Quantum/workspaces/%s' was not found.", sub, clip(rg), clip(ws))}
	}
	return nil
}

// readJSON reads a JSON request body into v.
func readJSON(c *call, v any) *apiError {
	if mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "UnsupportedMediaType", msg: "The request Content-Type must be application/json."}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge", msg: fmt.Sprintf("The request body is larger than %d bytes.", MaxBodyBytes)}
		}
		return badRequest("InvalidRequestContent", "The request body could not be read.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: %s", clip(err.Error()))
	}
	return nil
}

// providerStatus and targetStatus are ProviderStatus and TargetStatus.
type providerStatus struct {
	ID                  string         `json:"id"`
	CurrentAvailability string         `json:"currentAvailability"`
	Targets             []targetStatus `json:"targets"`
}

type targetStatus struct {
	ID                  string `json:"id"`
	CurrentAvailability string `json:"currentAvailability"`
	AverageQueueTime    int64  `json:"averageQueueTime"`
	StatusPage          string `json:"statusPage,omitempty"`
	NumQubits           int    `json:"numQubits,omitempty"`
}

type paged[T any] struct {
	Value    []T     `json:"value"`
	NextLink *string `json:"nextLink"`
}

func (e *Emulator) handleProviderStatus(c *call) *apiError {
	var out []providerStatus
	index := map[string]int{}
	for _, t := range e.targets {
		key := strings.ToLower(t.ProviderID)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, providerStatus{ID: t.ProviderID, CurrentAvailability: "Available", Targets: []targetStatus{}})
		}
		out[i].Targets = append(out[i].Targets, targetStatus{ID: t.ID, CurrentAvailability: "Available", NumQubits: t.Qubits})
	}
	writeJSON(c.w, http.StatusOK, paged[providerStatus]{Value: out})
	return nil
}

// handleSASURI is POST storage/sasUri {containerName, blobName?}: a SAS URI
// (permissions rcw, as in the spec's example) for the container or blob.
// From 2026-01-15-preview a missing container is created.
func (e *Emulator) handleSASURI(c *call) *apiError {
	var req struct {
		ContainerName *string `json:"containerName"`
		BlobName      *string `json:"blobName"`
	}
	if aerr := readJSON(c, &req); aerr != nil {
		return aerr
	}
	if req.ContainerName == nil || *req.ContainerName == "" {
		return badRequest("InvalidRequestContent", "containerName is required.")
	}
	cont := *req.ContainerName
	if !containerRE.MatchString(cont) || strings.Contains(cont, "--") {
		return badRequest("InvalidContainerName", "The container name '%s' is not a valid Azure Storage container name.", clip(cont))
	}
	blobName := ""
	if req.BlobName != nil {
		blobName = *req.BlobName
		if blobName == "" || len(blobName) > 1024 || strings.HasPrefix(blobName, "/") || strings.Contains(blobName, "//") {
			return badRequest("InvalidBlobName", "The blob name is not valid.")
		}
	}
	if blobName == "" && c.apiVersion >= DefaultAPIVersion {
		e.mu.Lock()
		ok := e.ensureContainer(cont)
		e.mu.Unlock()
		if !ok {
			return &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "The emulator holds too many containers."}
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"sasUri": e.blobURL(e.storageBase(c.r), cont, blobName, sasPerms)})
	return nil
}

func (e *Emulator) target(id string) (Target, bool) {
	for _, t := range e.targets {
		if strings.EqualFold(t.ID, id) {
			return t, true
		}
	}
	return Target{}, false
}
