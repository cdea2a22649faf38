package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/qbroker/qbroker/internal/provider"
)

// sender sends one upstream request (the gateway's transport).
type sender = func(*http.Request) (*http.Response, error)

// Send implements Uploads.
func (a *Adapter) Send(ctx context.Context, route provider.Route, escapedPath string, body []byte, c provider.Credential, send sender) (*http.Response, error) {
	switch route.Kind {
	case provider.Submit:
		return a.submit(ctx, escapedPath, body, c, send)
	case provider.Read:
		if r := a.Route(http.MethodGet, escapedPath); r.Kind == provider.Read && r.Action == "ReadResult" && r.JobID == route.JobID {
			return a.output(ctx, route.JobID, c, send)
		}
		return a.FetchResult(ctx, route.JobID, c, send)
	case provider.Cancel:
		if !guidRE.MatchString(route.JobID) {
			return nil, errors.New("azure: cancel needs a job id")
		}
		return a.workspaceCall(ctx, http.MethodPost, "/jobs/"+strings.ToLower(route.JobID)+":cancel", nil, c, send)
	}
	return nil, fmt.Errorf("azure: Send does not handle route kind %d", route.Kind)
}

// FetchResult implements provider.ResultFetcher: the job's JobDetails,
// with the SAS tokens of its URIs removed.
func (a *Adapter) FetchResult(ctx context.Context, jobID string, c provider.Credential, send sender) (*http.Response, error) {
	if !guidRE.MatchString(jobID) {
		return nil, errors.New("azure: not a job id")
	}
	return a.workspaceCall(ctx, http.MethodGet, "/jobs/"+strings.ToLower(jobID), nil, c, send)
}

// workspaceCall sends one request to the workspace and returns its answer,
// buffered and scrubbed of SAS tokens.
func (a *Adapter) workspaceCall(ctx context.Context, method, p string, body []byte, c provider.Credential, send sender) (*http.Response, error) {
	status, out, err := a.workspaceRaw(ctx, method, p, body, c, send)
	if err != nil {
		return nil, err
	}
	return jsonResponse(status, scrub(out)), nil
}

// workspaceRaw sends one request to the workspace (p is under the
// workspace path) and returns the buffered answer as it came.
func (a *Adapter) workspaceRaw(ctx context.Context, method, p string, body []byte, c provider.Credential, send sender) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.endpoint+a.wsPath+p, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("azure: build request: %w", err)
	}
	req.ContentLength = int64(len(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qbroker-gateway")
	if err := a.Authenticate(ctx, req, body, c); err != nil {
		return 0, nil, err
	}
	resp, err := send(req)
	if err != nil {
		return 0, nil, fmt.Errorf("azure: %s %s: %w", method, lastSegments(p), err)
	}
	out, err := readAll(resp)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, out, nil
}

// submit creates the job: it takes the staged input (at most once), asks
// the workspace for a SAS URI of a fresh container of its own, uploads the
// input there, and PUTs the job naming that container.
func (a *Adapter) submit(ctx context.Context, escapedPath string, body []byte, c provider.Credential, send sender) (*http.Response, error) {
	rest, ok := a.jobPath(escapedPath)
	if !ok || len(rest) != 2 || rest[0] != "jobs" || !guidRE.MatchString(rest[1]) {
		return nil, errors.New("azure: submit path is not PUT {workspace}/jobs/{id}")
	}
	id := strings.ToLower(rest[1])
	j, err := decodeJob(body)
	if err != nil {
		return nil, fmt.Errorf("azure: prepared job: %w", err)
	}
	in, err := a.stage.take(j.container, j.sig)
	if err != nil {
		return nil, errors.New("azure: the staged job input is no longer held (expired or already submitted)")
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	cont := "qbroker-" + hex.EncodeToString(rnd[:])

	sas, err := a.containerSAS(ctx, cont, c, send)
	if err != nil {
		return nil, err
	}
	blobURL := sas.container + "/" + InputBlob + "?" + sas.query
	if err := a.storagePut(ctx, sas.container+"?"+sas.query+"&restype=container", nil, nil, send, http.StatusCreated, http.StatusConflict); err != nil {
		return nil, fmt.Errorf("azure: create the job container: %w", err)
	}
	h := http.Header{"x-ms-blob-type": {"BlockBlob"}, "x-ms-blob-content-type": {j.fam.contentType}}
	if err := a.storagePut(ctx, blobURL, in.data, h, send, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("azure: upload the job input: %w", err)
	}
	p := j.prepared()
	p.ContainerURI, p.InputDataURI = sas.container+"?"+sas.query, blobURL
	out, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	status, answer, err := a.workspaceRaw(ctx, http.MethodPut, "/jobs/"+id, out, c, send)
	if err != nil {
		return nil, err
	}
	answer = bytes.ReplaceAll(answer, []byte(sas.sig), []byte("REDACTED"))
	return jsonResponse(status, scrub(answer)), nil
}

// containerSAS is a workspace-issued SAS for one container.
type containerSAS struct {
	container string // scheme://host/…/<container>, no query
	query     string // the SAS
	sig       string
}

// containerSAS asks the workspace for a SAS URI of container cont and
// checks that it points into allowed storage.
func (a *Adapter) containerSAS(ctx context.Context, cont string, c provider.Credential, send sender) (*containerSAS, error) {
	body, _ := json.Marshal(map[string]string{"containerName": cont})
	status, out, err := a.workspaceRaw(ctx, http.MethodPost, "/storage/sasUri", body, c, send)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("azure: storage/sasUri answered %d", status)
	}
	var ans struct {
		SASURI string `json:"sasUri"`
	}
	if err := json.Unmarshal(out, &ans); err != nil {
		return nil, errors.New("azure: storage/sasUri answer has no sasUri")
	}
	u, err := a.storageURL(ans.SASURI)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.EscapedPath(), "/"+cont) || u.RawQuery == "" || u.Query().Get("sig") == "" {
		return nil, errors.New("azure: storage/sasUri answered a URI that is not a SAS of the requested container")
	}
	return &containerSAS{container: u.Scheme + "://" + u.Host + u.EscapedPath(), query: u.RawQuery, sig: u.Query().Get("sig")}, nil
}

// storageURL parses a SAS URI the workspace handed out and checks that
// its scheme and host are configured storage: a URI from an answer never
// picks a host the gateway was not told about.
func (a *Adapter) storageURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Fragment != "" {
		return nil, errors.New("azure: the workspace answered a malformed storage URI")
	}
	base := u.Scheme + "://" + u.Host
	for _, ok := range a.storage {
		if strings.EqualFold(base, ok) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("azure: the workspace answered a storage URI on %s, which is not configured storage", base)
}

// storagePut sends a blob-storage PUT (SAS-authorized: no Authorization
// header, so the Entra token never reaches storage).
func (a *Adapter) storagePut(ctx context.Context, target string, body []byte, h http.Header, send sender, okStatus ...int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad storage URL")
	}
	req.ContentLength = int64(len(body))
	for k, v := range h {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	req.Header.Set("x-ms-version", storageVersion)
	req.Header.Set("User-Agent", "qbroker-gateway")
	resp, err := send(req)
	if err != nil {
		return errors.New("storage unreachable") // the error would quote the SAS URL
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	for _, s := range okStatus {
		if resp.StatusCode == s {
			return nil
		}
	}
	return fmt.Errorf("storage answered %d %s", resp.StatusCode, clip(resp.Header.Get("x-ms-error-code"), 64))
}

// output answers GET {ws}/jobs/{id}/output: the job's output blob, read
// with the SAS the workspace put in outputDataUri, once the job has
// succeeded.
func (a *Adapter) output(ctx context.Context, id string, c provider.Credential, send sender) (*http.Response, error) {
	status, out, err := a.workspaceRaw(ctx, http.MethodGet, "/jobs/"+strings.ToLower(id), nil, c, send)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return jsonResponse(status, scrub(out)), nil
	}
	var j struct {
		Status        string `json:"status"`
		OutputDataURI string `json:"outputDataUri"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return nil, errors.New("azure: job answer is not JobDetails")
	}
	if j.Status != "Succeeded" && j.Status != "Completed" {
		return apiErrorResponse(http.StatusConflict, "JobNotSucceeded", fmt.Sprintf("the job is %s; its output exists once it has Succeeded", clip(j.Status, 32))), nil
	}
	u, err := a.storageURL(j.OutputDataURI)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errors.New("azure: bad output URI")
	}
	req.Header.Set("x-ms-version", storageVersion)
	req.Header.Set("User-Agent", "qbroker-gateway")
	resp, err := send(req)
	if err != nil {
		return nil, errors.New("azure: output storage unreachable")
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return apiErrorResponse(http.StatusBadGateway, "OutputUnavailable", "the job's output could not be read from storage ("+strconv.Itoa(resp.StatusCode)+")"), nil
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ct}}, Body: resp.Body, ContentLength: resp.ContentLength}, nil
}

// uriMembers are the JobDetails members that carry SAS URIs.
var uriMembers = []string{"containerUri", "inputDataUri", "outputDataUri"}

// sigRE finds a SAS signature anywhere in a text (a URI in an error
// message, say), its value running to the next separator.
var sigRE = regexp.MustCompile(`(?i)(sig=)[^&"'\s\\<>]+`)

// scrub removes upstream SAS tokens from a workspace answer: the query of
// every URI member of a JobDetails object (or of each in a value list),
// then any "sig=…" left anywhere. Agents never hold a SAS of the
// workspace's storage: with one they could rewrite a job's input after
// the gateway checked it.
func scrub(body []byte) []byte {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err == nil {
		stripURIs(obj)
		if raw, ok := obj["value"]; ok {
			var list []map[string]json.RawMessage
			if json.Unmarshal(raw, &list) == nil {
				for _, o := range list {
					stripURIs(o)
				}
				obj["value"], _ = json.Marshal(list)
			}
		}
		if b, err := marshalNoEscape(obj); err == nil {
			body = b
		}
	}
	return sigRE.ReplaceAll(body, []byte("${1}REDACTED"))
}

func stripURIs(obj map[string]json.RawMessage) {
	for _, k := range uriMembers {
		var s string
		if raw, ok := obj[k]; ok && json.Unmarshal(raw, &s) == nil {
			if i := strings.IndexAny(s, "?#"); i >= 0 {
				s = s[:i]
			}
			obj[k], _ = json.Marshal(s)
		}
	}
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("azure: read answer: %w", err)
	}
	if len(b) > maxAnswer {
		return nil, errors.New("azure: answer too large")
	}
	return b, nil
}

func jsonResponse(status int, body []byte) *http.Response {
	h := http.Header{}
	if len(body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

func apiErrorResponse(status int, code, msg string) *http.Response {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	b, _ := json.Marshal(body)
	r := jsonResponse(status, b)
	r.Header.Set("x-ms-error-code", code)
	return r
}

// lastSegments names a workspace path in an error without the workspace.
func lastSegments(p string) string {
	segs := strings.Split(p, "/")
	if len(segs) > 3 {
		segs = segs[len(segs)-3:]
	}
	return strings.Join(segs, "/")
}
