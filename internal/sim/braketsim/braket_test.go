package braketsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tenantPolicy is the kind of session policy a broker issues: one device,
// the account's tasks, and reads under one S3 prefix.
const tenantPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["braket:CreateQuantumTask", "braket:GetQuantumTask", "braket:CancelQuantumTask"],
     "Resource": ["arn:aws:braket:::device/quantum-simulator/amazon/sv1",
                  "arn:aws:braket:us-east-1:123456789012:quantum-task/*"]},
    {"Effect": "Allow", "Action": "braket:SearchDevices", "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::amazon-braket-test/tenant-a/*"}
  ]
}`

func TestBellWithSessionCredentials(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(tenantPolicy, 900)
	arn := h.create(sess, createBody(SV1ARN, 2000, bellSource(), "tenant-a", nil))
	if !strings.HasPrefix(arn, taskPrefix) {
		t.Fatalf("task ARN %q does not have the form %s<uuid>", arn, taskPrefix)
	}
	v := h.wait(sess, arn)
	if v.Status != StatusCompleted {
		t.Fatalf("status %s (%s)", v.Status, v.FailureReason)
	}
	id := strings.TrimPrefix(arn, taskPrefix)
	if v.OutputS3Directory != "tenant-a/"+id || v.NumSuccessfulShots == nil || *v.NumSuccessfulShots != 2000 || v.EndedAt == "" {
		t.Fatalf("task view %+v", v)
	}
	if hist := h.e.history(id); strings.Join(hist, ",") != "CREATED,QUEUED,RUNNING,COMPLETED" {
		t.Fatalf("history %v", hist)
	}
	r := h.results(sess, v)
	if r.BraketSchemaHeader.Name != "braket.task_result.gate_model_task_result" || r.TaskMetadata.ID != arn ||
		r.TaskMetadata.Shots != 2000 || r.TaskMetadata.DeviceID != SV1ARN || r.AdditionalMetadata.Action.Source != bellSource() {
		t.Fatalf("results metadata %+v", r)
	}
	if fmt.Sprint(r.MeasuredQubits) != "[0 1]" || len(r.Measurements) != 2000 {
		t.Fatalf("measuredQubits %v, %d rows", r.MeasuredQubits, len(r.Measurements))
	}
	counts := Counts(r.Measurements)
	if counts["01"]+counts["10"] != 0 {
		t.Fatalf("Bell pair gave uncorrelated outcomes: %v", counts)
	}
	if n := counts["00"]; n < 850 || n > 1150 {
		t.Fatalf("Bell counts %v are not ~50/50", counts)
	}
}

func TestSessionPolicyRefusals(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(tenantPolicy, 900)
	user := "arn:aws:sts::123456789012:assumed-role/qbroker-tenant/tenant-a.job-1"

	res := h.do(sess, svcBraket, http.MethodPost, "/quantum-task", createBody(ForteARN, 100, bellSource(), "tenant-a", nil))
	expectRefusal(t, "other device", res, 403, "AccessDeniedException")
	want := "User: " + user + " is not authorized to perform: braket:CreateQuantumTask on resource: " + ForteARN +
		" because no session policy allows the braket:CreateQuantumTask action"
	if res.message() != want {
		t.Errorf("message %q\nwant    %q", res.message(), want)
	}
	if h.e.taskCount() != 0 {
		t.Fatal("a refused create left a task behind")
	}

	res = h.do(sess, svcBraket, http.MethodGet, "/device/"+escapeLabel(SV1ARN), nil)
	expectRefusal(t, "GetDevice not in the policy", res, 403, "AccessDeniedException")

	// Tags need braket:TagResource, which the policy does not grant.
	res = h.do(sess, svcBraket, http.MethodPost, "/quantum-task",
		createBody(SV1ARN, 10, bellSource(), "tenant-a", map[string]any{"tags": map[string]string{"t": "1"}}))
	expectRefusal(t, "tags without TagResource", res, 403, "AccessDeniedException")
	if !strings.Contains(res.message(), "braket:TagResource") {
		t.Errorf("message %q does not name braket:TagResource", res.message())
	}

	// S3 outside the prefix: another tenant's results, written by the root key.
	other := h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 10, bellSource(), "tenant-b", nil)))
	key := other.OutputS3Directory + "/results.json"
	res = h.do(sess, svcS3, http.MethodGet, "/"+testBucket+"/"+key, nil)
	expectRefusal(t, "s3 outside the prefix", res, 403, "AccessDenied")
	if want := `on resource: "arn:aws:s3:::amazon-braket-test/` + key + `" because no session policy allows the s3:GetObject action`; !strings.Contains(res.message(), want) {
		t.Errorf("message %q lacks %q", res.message(), want)
	}
	// A missing key inside the prefix is not revealed without s3:ListBucket.
	res = h.do(sess, svcS3, http.MethodGet, "/"+testBucket+"/tenant-a/nothing.json", nil)
	expectRefusal(t, "missing key without ListBucket", res, 403, "AccessDenied")
	res = h.do(rootCreds, svcS3, http.MethodGet, "/"+testBucket+"/tenant-a/nothing.json", nil)
	expectRefusal(t, "missing key for the root key", res, 404, "NoSuchKey")

	// Another tenant's task: the ARN pattern allows the account's tasks, so
	// this is allowed by IAM; a gateway must check ownership itself.
	if v := h.getTask(sess, other.QuantumTaskArn); v.Status != StatusCompleted {
		t.Fatalf("status %s", v.Status)
	}

	// sts:AssumeRole with the session credentials.
	_, err := h.stsClient(sess).AssumeRole(t.Context(), assumeInput("again"))
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "because no session policy allows the sts:AssumeRole action") {
		t.Errorf("AssumeRole with session creds: %v", err)
	}
}

func TestGHZ3(t *testing.T) {
	h := newHarness(t, nil)
	src := "OPENQASM 3;\nqubit[3] q;\nbit[3] b;\nh q[0];\ncx q[0], q[1];\ncx q[1], q[2];\nb = measure q;\n"
	const shots = 3000
	v := h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, shots, src, "ghz", nil)))
	r := h.results(rootCreds, v)
	counts := Counts(r.Measurements)
	if counts["000"]+counts["111"] != shots {
		t.Fatalf("GHZ-3 gave outcomes other than 000/111: %v", counts)
	}
	// Binomial(3000, 1/2): σ ≈ 27; allow 6σ.
	if n := counts["000"]; n < 1340 || n > 1660 {
		t.Fatalf("GHZ-3 counts %v outside statistical bounds", counts)
	}
}

// Braket writes bitstrings with measuredQubits[0] leftmost; the simulator
// keeps qubit 0 in the least significant bit. X on qubit 0 of 3 must read
// "100", and a measurement of qubit 2 alone must report measuredQubits [2].
func TestQubitOrder(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		src      string
		measured string
		want     string
	}{
		{"OPENQASM 3;\nqubit[3] q;\nbit[3] c;\nx q[0];\nc = measure q;", "[0 1 2]", "100"},
		{"OPENQASM 3;\nqubit[3] q;\nbit[3] c;\nx q[2];\nc = measure q;", "[0 1 2]", "001"},
		{"OPENQASM 3;\nqubit[3] q;\nbit[1] c;\nx q[2];\nc[0] = measure q[2];", "[2]", "1"},
		{"OPENQASM 3;\nqubit[2] q;\nx q[1];", "[0 1]", "01"}, // no measure: every qubit
	}
	for _, tc := range cases {
		v := h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 20, tc.src, "order", nil)))
		r := h.results(rootCreds, v)
		counts := Counts(r.Measurements)
		if fmt.Sprint(r.MeasuredQubits) != tc.measured || counts[tc.want] != 20 {
			t.Errorf("%q: measuredQubits %v counts %v, want %s and all %q", tc.src, r.MeasuredQubits, counts, tc.measured, tc.want)
		}
	}
}

func TestShotsZeroGivesExactProbabilities(t *testing.T) {
	h := newHarness(t, nil)
	v := h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 0, bellSource(), "exact", nil)))
	r := h.results(rootCreds, v)
	p := r.MeasurementProbabilities
	if len(r.Measurements) != 0 || len(p) != 2 || p["00"] < 0.4999 || p["11"] < 0.4999 {
		t.Fatalf("shots=0 results: %+v", r)
	}
}

func TestPercentEncodedARNs(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(tenantPolicy, 900)
	arn := h.create(sess, createBody(SV1ARN, 10, bellSource(), "tenant-a", nil))
	encoded := "/quantum-task/" + escapeLabel(arn)
	if !strings.Contains(encoded, "arn%3Aaws%3Abraket%3Aus-east-1%3A123456789012%3Aquantum-task%2F") {
		t.Fatalf("test encoding is wrong: %s", encoded)
	}
	if res := h.do(sess, svcBraket, http.MethodGet, encoded, nil); res.status != 200 {
		t.Fatalf("encoded GetQuantumTask: %d %s", res.status, res.body)
	}
	// Lower-case hex is another valid encoding; it must verify as sent.
	lower := strings.ReplaceAll(strings.ReplaceAll(encoded, "%3A", "%3a"), "%2F", "%2f")
	if res := h.do(sess, svcBraket, http.MethodGet, lower, nil); res.status != 200 {
		t.Fatalf("lower-case encoded GetQuantumTask: %d %s", res.status, res.body)
	}
	// Unencoded slashes split the label: no operation matches (not a
	// signature failure).
	res := h.do(sess, svcBraket, http.MethodGet, "/quantum-task/"+arn, nil)
	expectRefusal(t, "unencoded ARN", res, 404, "UnknownOperationException")
	res = h.do(rootCreds, svcBraket, http.MethodGet, "/device/"+escapeLabel(ForteARN), nil)
	if res.status != 200 {
		t.Fatalf("GetDevice: %d %s", res.status, res.body)
	}
	var dev struct {
		DeviceArn          string `json:"deviceArn"`
		DeviceType         string `json:"deviceType"`
		DeviceStatus       string `json:"deviceStatus"`
		DeviceCapabilities string `json:"deviceCapabilities"`
	}
	if err := json.Unmarshal(res.body, &dev); err != nil {
		t.Fatal(err)
	}
	var caps struct {
		Service struct {
			ShotsRange []int `json:"shotsRange"`
		} `json:"service"`
		Paradigm struct {
			QubitCount int `json:"qubitCount"`
		} `json:"paradigm"`
	}
	if err := json.Unmarshal([]byte(dev.DeviceCapabilities), &caps); err != nil {
		t.Fatalf("deviceCapabilities is not a JSON string: %v", err)
	}
	if dev.DeviceArn != ForteARN || dev.DeviceType != "QPU" || dev.DeviceStatus != "ONLINE" ||
		fmt.Sprint(caps.Service.ShotsRange) != "[1 100000]" || caps.Paradigm.QubitCount != 36 {
		t.Fatalf("GetDevice %+v caps %+v", dev, caps)
	}
	// A Rigetti device lives in us-west-1: not found from us-east-1.
	res = h.do(rootCreds, svcBraket, http.MethodGet, "/device/"+escapeLabel(AnkaaARN), nil)
	expectRefusal(t, "device of another region", res, 404, "ResourceNotFoundException")
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t, nil)
	src := bellSource()
	big := "OPENQASM 3;\nqubit[35] q;\nh q[0];"
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"missing bucket", createBody(SV1ARN, 10, src, "p", map[string]any{"outputS3Bucket": nil}), 400, "ValidationException"},
		{"missing clientToken", createBody(SV1ARN, 10, src, "p", map[string]any{"clientToken": nil}), 400, "ValidationException"},
		{"negative shots", createBody(SV1ARN, -1, src, "p", nil), 400, "ValidationException"},
		{"fractional shots", createBody(SV1ARN, 10, src, "p", map[string]any{"shots": 1.5}), 400, "ValidationException"},
		{"zero shots on a QPU", createBody(ForteARN, 0, src, "p", nil), 400, "ValidationException"},
		{"shots above the range", createBody(SV1ARN, 100001, src, "p", nil), 400, "ValidationException"},
		{"unknown device", createBody("arn:aws:braket:::device/quantum-simulator/amazon/nope", 10, src, "p", nil), 400, "ValidationException"},
		{"device of another region", createBody(AnkaaARN, 10, src, "p", nil), 400, "ValidationException"},
		{"bad bucket", createBody(SV1ARN, 10, src, "p", map[string]any{"outputS3Bucket": "Bad_Bucket"}), 400, "ValidationException"},
		{"action not a string", createBody(SV1ARN, 10, src, "p", map[string]any{"action": map[string]any{"source": src}}), 400, "ValidationException"},
		{"jaqcd action", createBody(SV1ARN, 10, src, "p", map[string]any{"action": `{"braketSchemaHeader":{"name":"braket.ir.jaqcd.program","version":"1"},"instructions":[]}`}), 400, "ValidationException"},
		{"bad program", createBody(SV1ARN, 10, "OPENQASM 3;\nqubit[2] q;\nfoo q[0];", "p", nil), 400, "ValidationException"},
		{"too many qubits", createBody(SV1ARN, 10, big, "p", nil), 400, "ValidationException"},
		{"program inputs", createBody(SV1ARN, 10, src, "p", map[string]any{"action": `{"braketSchemaHeader":{"name":"braket.ir.openqasm.program","version":"1"},"source":"OPENQASM 3;\nqubit q;","inputs":{"theta":1}}`}), 400, "ValidationException"},
		{"reservation", createBody(SV1ARN, 10, src, "p", map[string]any{"associations": []map[string]string{{"arn": "x", "type": "RESERVATION_TIME_WINDOW_ARN"}}}), 400, "ValidationException"},
		{"duplicate member", []byte(`{"deviceArn":"` + SV1ARN + `","deviceArn":"` + ForteARN + `"}`), 400, "ValidationException"},
		{"not JSON", []byte(`{"deviceArn":`), 400, "ValidationException"},
	}
	for _, tc := range cases {
		res := h.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", tc.body)
		expectRefusal(t, tc.name, res, tc.status, tc.code)
		if res.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.name, res.header.Get("Content-Type"))
		}
	}
	if n := h.e.taskCount(); n != 0 {
		t.Fatalf("refused creates left %d tasks", n)
	}

	if err := h.e.SetDeviceStatus(ForteARN, Offline); err != nil {
		t.Fatal(err)
	}
	expectRefusal(t, "offline device", h.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", createBody(ForteARN, 10, src, "p", nil)), 424, "DeviceOfflineException")
	if err := h.e.SetDeviceStatus(ForteARN, Retired); err != nil {
		t.Fatal(err)
	}
	expectRefusal(t, "retired device", h.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", createBody(ForteARN, 10, src, "p", nil)), 410, "DeviceRetiredException")

	// Scoped to us-west-1, the Rigetti device is there and the task ARN
	// carries that region.
	res := h.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", createBody(AnkaaARN, 10, src, "p", nil), func(o *reqOpts) { o.region = "us-west-1" })
	if res.status != 201 || !strings.Contains(string(res.body), "arn:aws:braket:us-west-1:123456789012:quantum-task/") {
		t.Fatalf("us-west-1 create: %d %s", res.status, res.body)
	}
}

func TestIdempotencyAndCancel(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = 300 * time.Millisecond })
	body := createBody(SV1ARN, 10, bellSource(), "p", nil)
	first := h.create(rootCreds, body)
	if again := h.create(rootCreds, body); again != first {
		t.Fatalf("retry with the same clientToken made a new task: %s vs %s", again, first)
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	m["shots"] = 11
	changed, _ := json.Marshal(m)
	expectRefusal(t, "same token, other body", h.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", changed), 409, "ConflictException")
	if h.e.taskCount() != 1 {
		t.Fatalf("%d tasks, want 1", h.e.taskCount())
	}

	path := "/quantum-task/" + escapeLabel(first) + "/cancel"
	expectRefusal(t, "cancel without clientToken", h.do(rootCreds, svcBraket, http.MethodPut, path, []byte(`{}`)), 400, "ValidationException")
	res := h.do(rootCreds, svcBraket, http.MethodPut, path, []byte(`{"clientToken":"c1"}`))
	if res.status != 200 || !strings.Contains(string(res.body), `"cancellationStatus":"CANCELLING"`) {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	v := h.wait(rootCreds, first)
	if v.Status != StatusCancelled || v.EndedAt == "" {
		t.Fatalf("after cancel: %+v", v)
	}
	res = h.do(rootCreds, svcS3, http.MethodGet, "/"+testBucket+"/"+v.OutputS3Directory+"/results.json", nil)
	expectRefusal(t, "results of a cancelled task", res, 404, "NoSuchKey")

	// A completed task cannot be cancelled.
	fast := newHarness(t, nil)
	arn := fast.create(rootCreds, createBody(SV1ARN, 10, bellSource(), "p", nil))
	fast.wait(rootCreds, arn)
	expectRefusal(t, "cancel a completed task", fast.do(rootCreds, svcBraket, http.MethodPut, "/quantum-task/"+escapeLabel(arn)+"/cancel", []byte(`{"clientToken":"c2"}`)), 409, "ConflictException")

	unknown := taskPrefix + "00000000-0000-4000-8000-000000000000"
	expectRefusal(t, "unknown task", h.do(rootCreds, svcBraket, http.MethodGet, "/quantum-task/"+escapeLabel(unknown), nil), 404, "ResourceNotFoundException")
}

func TestQueueInfoAndFailure(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = 200 * time.Millisecond })
	arn := h.create(rootCreds, createBody(SV1ARN, 10, bellSource(), "p", nil))
	res := h.do(rootCreds, svcBraket, http.MethodGet, "/quantum-task/"+escapeLabel(arn)+"?additionalAttributeNames=QueueInfo", nil)
	var v taskView
	if err := json.Unmarshal(res.body, &v); err != nil || v.QueueInfo == nil || v.QueueInfo.Position != "1" {
		t.Fatalf("queue info: %d %s", res.status, res.body)
	}
	expectRefusal(t, "bad attribute", h.do(rootCreds, svcBraket, http.MethodGet, "/quantum-task/"+escapeLabel(arn)+"?additionalAttributeNames=Nope", nil), 400, "ValidationException")

	// 21 qubits fit SV1 but not the emulator's simulator: accepted, then FAILED.
	f := newHarness(t, nil)
	v = f.wait(rootCreds, f.create(rootCreds, createBody(SV1ARN, 10, "OPENQASM 3;\nqubit[21] q;\nh q[0];", "p", nil)))
	if v.Status != StatusFailed || !strings.Contains(v.FailureReason, "at most 20") {
		t.Fatalf("21-qubit task: %+v", v)
	}
}

func TestSearchDevices(t *testing.T) {
	h := newHarness(t, nil)
	search := func(region, body string) (names []string, next string) {
		res := h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(body), func(o *reqOpts) { o.region = region })
		if res.status != 200 {
			t.Fatalf("SearchDevices: %d %s", res.status, res.body)
		}
		var out struct {
			Devices []struct {
				DeviceArn string `json:"deviceArn"`
			} `json:"devices"`
			NextToken string `json:"nextToken"`
		}
		if err := json.Unmarshal(res.body, &out); err != nil {
			t.Fatal(err)
		}
		for _, d := range out.Devices {
			names = append(names, d.DeviceArn)
		}
		return names, out.NextToken
	}
	if got, _ := search("us-east-1", `{"filters":[]}`); fmt.Sprint(got) != fmt.Sprint([]string{SV1ARN, ForteARN}) {
		t.Errorf("us-east-1 devices %v", got)
	}
	if got, _ := search("us-west-1", `{"filters":[]}`); fmt.Sprint(got) != fmt.Sprint([]string{SV1ARN, AnkaaARN}) {
		t.Errorf("us-west-1 devices %v", got)
	}
	if got, _ := search("us-east-1", `{"filters":[{"name":"deviceArn","values":["`+ForteARN+`"]}]}`); fmt.Sprint(got) != fmt.Sprint([]string{ForteARN}) {
		t.Errorf("filtered devices %v", got)
	}
	page1, next := search("us-east-1", `{"filters":[],"maxResults":1}`)
	page2, last := search("us-east-1", `{"filters":[],"maxResults":1,"nextToken":"`+next+`"}`)
	if len(page1) != 1 || len(page2) != 1 || page1[0] == page2[0] || next == "" || last != "" {
		t.Errorf("pages %v %q %v %q", page1, next, page2, last)
	}
	expectRefusal(t, "filters missing", h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(`{}`)), 400, "ValidationException")
	expectRefusal(t, "unknown filter", h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(`{"filters":[{"name":"color","values":["x"]}]}`)), 400, "ValidationException")
	expectRefusal(t, "hybrid jobs", h.do(rootCreds, svcBraket, http.MethodPost, "/job", []byte(`{}`)), 501, "NotImplementedException")
}
