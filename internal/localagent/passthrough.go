package localagent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
	"github.com/qbroker/qbroker/internal/provider/ibm"
	"github.com/qbroker/qbroker/internal/provider/ionq"
)

// servePassthrough is the local gateway passthrough. A vendor client whose
// base URL points at it, with its exec session's key where the API key
// goes, works with no provider key at all:
//
//   - IonQ (<passthrough>/ionq, key qbl_… as the apiKey);
//   - AWS Braket (<passthrough>/braket as the Braket endpoint, the key as
//     the access key ID; any secret key: the gateway re-signs);
//   - IBM Quantum (<passthrough>/ibm, the key as the bearer token);
//   - Quantinuum (<passthrough>/quantinuum, the key as the raw
//     Authorization value).
//
// For a submission (IonQ POST /v0.4/jobs, Braket POST /quantum-task, IBM
// POST /api/v1/jobs, Quantinuum POST /v1/job) the
// daemon asks for a job token for exactly this job — the device, the
// shots and the circuit's digest — with consent where the rules want it,
// and forwards the unchanged body to the gateway with the job token as
// the credential. Other calls (status, results, cancel) are forwarded
// with the daemon's broker token, which owns the jobs it submitted, but
// only for the jobs submitted with the same key.
// Only loopback clients are served; the key never leaves the machine.
func (d *Daemon) servePassthrough(w http.ResponseWriter, r *http.Request) {
	prov, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	fail := ionqError
	switch prov {
	case "braket":
		fail = braketError
	case "ibm":
		fail = ibmError
	case "quantinuum":
		fail = quantinuumError
	}
	if !isLoopback(r) {
		fail(w, http.StatusForbidden, "Forbidden", "only loopback clients are served")
		return
	}
	// Nothing but a clean path is forwarded (no "..": the daemon's
	// broker token must reach only the provider front it names).
	if path.Clean(r.URL.Path) != r.URL.Path || strings.Contains(strings.ToLower(r.URL.RawPath), "%2e") {
		fail(w, http.StatusBadRequest, "BadRequestError", "the path is not clean")
		return
	}
	var key string
	switch prov {
	case "ionq":
		key = r.Header.Get("Authorization")
		for _, p := range []string{"apiKey ", "Bearer "} {
			key = strings.TrimPrefix(key, p)
		}
	case "braket":
		key = sigV4AccessKey(r.Header.Get("Authorization"))
	case "ibm":
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	case "quantinuum":
		key = r.Header.Get("Authorization") // raw, as Quantinuum's clients send an id-token
	default:
		fail(w, http.StatusNotFound, "NotFoundError", "the passthrough serves /ionq, /braket, /ibm and /quantinuum")
		return
	}
	es, ok := d.sessions.byPassthroughKey(key)
	if !ok {
		d.log.Warn("local agent: passthrough: refused a request without a session key", "remote", r.RemoteAddr, "path", r.URL.Path)
		fail(w, http.StatusUnauthorized, "UnauthorizedError", "missing or unknown key, or the session has ended")
		return
	}
	if es.provider != map[string]string{"ionq": "ionq", "braket": "aws", "ibm": "ibm", "quantinuum": "quantinuum"}[prov] {
		fail(w, http.StatusForbidden, "Forbidden", "this session is for "+es.provider)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		fail(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "the body is over 1 MiB")
		return
	}
	var cred string
	submit := r.Method == http.MethodPost && r.URL.Path == submitPaths[prov]
	if !submit && !publicPath(r) {
		// Reads and cancels: only of this session's own jobs, although
		// the daemon's broker token could reach every job it submitted.
		id, ok := jobIDOf(prov, r.URL.EscapedPath())
		if !ok || !es.hasJob(id) {
			fail(w, http.StatusNotFound, "NotFoundError", "not a job of this session")
			return
		}
	}
	if submit {
		var req api.JobTokenRequest
		switch prov {
		case "ionq":
			req, err = ionqJobRequest(body)
		case "braket":
			req, err = braketJobRequest(body, es.device)
		case "ibm":
			req, err = ibmJobRequest(body, es.device)
		case "quantinuum":
			req, err = quantinuumJobRequest(body, es.device)
		}
		if err == nil && es.device != "" && req.Device != es.device {
			err = fmt.Errorf("this session may use device %s only, not %s", es.device, req.Device)
		}
		if err != nil {
			fail(w, http.StatusBadRequest, "BadRequestError", err.Error())
			return
		}
		jt, err := d.jobToken(r.Context(), es.program, es.role, req, jobTokenOpts{})
		if err != nil {
			d.log.Warn("local agent: passthrough: no job token", "session", es.id, "role", es.role, "device", req.Device, "err", err)
			status, msg := errorStatus(err)
			fail(w, status, http.StatusText(status), msg)
			return
		}
		cred = jt.Token
	} else if cred, err = d.token(); err != nil {
		fail(w, http.StatusBadGateway, "BadGateway", "the local agent cannot reach the broker")
		return
	}
	d.gwMu.Lock()
	gw := d.gwURL
	d.gwMu.Unlock()
	if gw == "" {
		fail(w, http.StatusBadGateway, "BadGateway", "the local agent does not know the gateway yet (set --gateway)")
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(gw, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		fail(w, http.StatusBadRequest, "BadRequestError", "bad request")
		return
	}
	for _, h := range []string{"Content-Type", "Accept", "IBM-API-Version"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if prov == "braket" {
		// The gateway reads the token where the AWS SDKs put a session
		// token, and re-signs with the role's real session.
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: "qbroker-local-agent", SecretAccessKey: "not-a-secret", SessionToken: cred}
		if err := v4.NewSigner().SignHTTP(r.Context(), creds, out, hex.EncodeToString(sum[:]), "braket", sigV4Region(r.Header.Get("Authorization")), time.Now()); err != nil {
			fail(w, http.StatusInternalServerError, "InternalError", "signing failed")
			return
		}
	} else if prov == "ibm" {
		out.Header.Set("Authorization", "Bearer "+cred) // where Qiskit sends its IAM token
	} else if prov == "quantinuum" {
		out.Header.Set("Authorization", cred)
	} else {
		out.Header.Set("Authorization", "apiKey "+cred)
	}
	resp, err := d.forward.Do(out)
	if err != nil {
		fail(w, http.StatusBadGateway, "BadGateway", "the gateway is unreachable")
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if submit && resp.StatusCode/100 == 2 {
		// Remember the new job as this session's.
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			fail(w, http.StatusBadGateway, "BadGateway", "the gateway's answer was cut short")
			return
		}
		var created struct {
			ID  string `json:"id"`
			ARN string `json:"quantumTaskArn"`
			Job string `json:"job"` // Quantinuum
		}
		_ = json.Unmarshal(b, &created)
		es.addJob(created.ID + created.ARN + created.Job)
		d.sessions.markPrivate(created.ID + created.ARN + created.Job)
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
		return
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<20))
}

var submitPaths = map[string]string{"ionq": "/ionq/v0.4/jobs", "braket": "/braket/quantum-task", "ibm": "/ibm/api/v1/jobs", "quantinuum": "/quantinuum/v1/job"}

// publicPath is a call that concerns no job (IonQ's backend list).
func publicPath(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/ionq/v0.4/backends" || strings.HasPrefix(r.URL.Path, "/ionq/v0.4/backends/"))
}

// jobIDOf is the job a read or cancel names: the path segment after the
// submit path (a Braket task ARN arrives percent-encoded).
func jobIDOf(prov, escapedPath string) (string, bool) {
	rest, ok := strings.CutPrefix(escapedPath, submitPaths[prov]+"/")
	if !ok {
		return "", false
	}
	seg, _, _ := strings.Cut(rest, "/")
	id, err := url.PathUnescape(seg)
	return id, err == nil && id != ""
}

// sigV4AccessKey is the access key ID in a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, …").
func sigV4AccessKey(h string) string {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return ""
	}
	akid, _, _ := strings.Cut(rest, "/")
	return akid
}

// sigV4Region is the region of the credential scope (default us-east-1).
func sigV4Region(h string) string {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return "us-east-1"
	}
	parts := strings.Split(strings.SplitN(rest, ",", 2)[0], "/")
	if len(parts) < 3 || parts[2] == "" {
		return "us-east-1"
	}
	return parts[2]
}

// braketJobRequest reads what a job token must name from a Braket
// CreateQuantumTask: the session's device, the shots and the OpenQASM 3
// source (the gateway checks the body strictly and the device's ARN).
func braketJobRequest(body []byte, device string) (api.JobTokenRequest, error) {
	if _, err := (awsbraket.Adapter{}).ParseSubmit(body); err != nil {
		return api.JobTokenRequest{}, err
	}
	var t struct {
		Shots  *int   `json:"shots"`
		Action string `json:"action"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return api.JobTokenRequest{}, fmt.Errorf("the task is not JSON: %w", err)
	}
	var prog struct {
		Source string `json:"source"`
	}
	if t.Shots == nil || t.Action == "" || json.Unmarshal([]byte(t.Action), &prog) != nil || prog.Source == "" {
		return api.JobTokenRequest{}, fmt.Errorf("the task needs shots and an OpenQASM 3 action")
	}
	if device == "" {
		return api.JobTokenRequest{}, fmt.Errorf("a Braket session names its device (qbroker exec --provider braket --device D)")
	}
	src, _ := json.Marshal(prog.Source)
	return api.JobTokenRequest{Provider: "aws", Device: device, Shots: *t.Shots, Program: src, Format: api.FormatQASM3}, nil
}

// ibmJobRequest reads what a job token must name from a Qiskit Runtime
// Sampler job: the session's device, the shots and the OpenQASM 3 source
// of its one PUB. The ibm adapter's own parser checks the job as the
// gateway will, so what it refuses is refused here first.
func ibmJobRequest(body []byte, device string) (api.JobTokenRequest, error) {
	sub, err := ibm.Adapter{}.ParseSubmit(body)
	if err != nil {
		return api.JobTokenRequest{}, err
	}
	var j struct {
		Params struct {
			Pubs []json.RawMessage `json:"pubs"`
		} `json:"params"`
	}
	if err := json.Unmarshal(body, &j); err != nil || len(j.Params.Pubs) != 1 {
		return api.JobTokenRequest{}, fmt.Errorf("the job needs exactly one PUB")
	}
	circ := j.Params.Pubs[0]
	var parts []json.RawMessage
	if json.Unmarshal(circ, &parts) == nil && len(parts) > 0 {
		circ = parts[0]
	}
	var src string
	if err := json.Unmarshal(circ, &src); err != nil || src == "" {
		return api.JobTokenRequest{}, fmt.Errorf("the PUB's circuit must be OpenQASM 3 source")
	}
	if device == "" {
		return api.JobTokenRequest{}, fmt.Errorf("an IBM session names its device (qbroker exec --provider ibm --device D)")
	}
	prog, _ := json.Marshal(src)
	return api.JobTokenRequest{Provider: "ibm", Device: device, Shots: sub.Shots, Program: prog, Format: api.FormatQASM3}, nil
}

// quantinuumJobRequest reads what a job token must name from a
// Quantinuum job: the session's device, count and the OpenQASM 2.0
// program (the gateway checks the rest: machine, options, max-cost).
func quantinuumJobRequest(body []byte, device string) (api.JobTokenRequest, error) {
	var j struct {
		Count   *int   `json:"count"`
		Program string `json:"program"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return api.JobTokenRequest{}, fmt.Errorf("the job is not JSON: %w", err)
	}
	if j.Count == nil || *j.Count < 1 || j.Program == "" {
		return api.JobTokenRequest{}, fmt.Errorf("the job needs a count and an OpenQASM 2.0 program")
	}
	if device == "" {
		return api.JobTokenRequest{}, fmt.Errorf("a Quantinuum session names its device (qbroker exec --provider quantinuum --device D)")
	}
	prog, _ := json.Marshal(j.Program)
	return api.JobTokenRequest{Provider: "quantinuum", Device: device, Shots: *j.Count, Program: prog, Format: api.FormatQASM2}, nil
}

func quantinuumError(w http.ResponseWriter, status int, _, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "text": msg}})
}

func ibmError(w http.ResponseWriter, status int, _, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"message": msg, "code": status}}, "trace": ""})
}

func braketError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, map[string]string{"__type": kind, "message": msg})
}

// ionqJobRequest reads what a job token must name from an IonQ job. The
// ionq package's strict decoder and validator check it as the gateway
// will, so a job the gateway would refuse never holds a job token (and
// its budget reservation).
func ionqJobRequest(body []byte) (api.JobTokenRequest, error) {
	j, err := ionq.DecodeJobRequest(body)
	if err == nil {
		err = j.Validate()
	}
	if err != nil {
		return api.JobTokenRequest{}, err
	}
	shots := 100 // IonQ's default
	if j.Shots != nil {
		shots = *j.Shots
	}
	return api.JobTokenRequest{Provider: "ionq", Device: j.Backend, Shots: shots, Program: j.Input, Format: api.FormatIonQ}, nil
}

func ionqError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "error": kind, "message": msg})
}
