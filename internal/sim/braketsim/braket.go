package braketsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// serveBraket routes a Braket restJson1 request. Path labels are matched on
// the escaped path, so an ARN label must arrive percent-encoded (":" as %3A,
// "/" as %2F) as AWS's SDKs send it; an ARN whose slashes are not encoded
// splits into extra segments and matches no operation, as at AWS.
func (e *Emulator) serveBraket(c *call) {
	segs, ok := pathSegments(c.r.URL.EscapedPath())
	if !ok {
		c.fail(&apiError{status: 400, code: "ValidationException", msg: "The request path is not valid percent-encoding."})
		return
	}
	m := c.r.Method
	switch {
	case len(segs) == 1 && segs[0] == "quantum-task" && m == http.MethodPost:
		e.createTask(c)
	case len(segs) == 2 && segs[0] == "quantum-task" && m == http.MethodGet:
		e.getTask(c, segs[1])
	case len(segs) == 3 && segs[0] == "quantum-task" && segs[2] == "cancel" && m == http.MethodPut:
		e.cancelTask(c, segs[1])
	case len(segs) == 1 && segs[0] == "devices" && m == http.MethodPost:
		e.searchDevices(c)
	case len(segs) == 2 && segs[0] == "device" && m == http.MethodGet:
		e.getDevice(c, segs[1])
	case len(segs) >= 1 && slices.Contains([]string{"quantum-tasks", "job", "jobs", "spending-limit", "spending-limits", "tags"}, segs[0]):
		c.fail(&apiError{status: 501, code: "NotImplementedException", msg: fmt.Sprintf("The emulator does not implement %s %s.", m, c.r.URL.EscapedPath())})
	default:
		c.fail(&apiError{status: 404, code: "UnknownOperationException", msg: "No operation matches " + m + " " + c.r.URL.EscapedPath()})
	}
}

// pathSegments splits an escaped path on "/" and unescapes each segment.
func pathSegments(escaped string) ([]string, bool) {
	escaped = strings.TrimPrefix(escaped, "/")
	if escaped == "" {
		return nil, true
	}
	raw := strings.Split(escaped, "/")
	out := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		out[i] = u
	}
	return out, true
}

// fields reads the members of a restJson1 request body with AWS-style
// constraint messages.
type fields struct {
	m     map[string]json.RawMessage
	verrs validationErrors
}

func decodeFields(body []byte) (*fields, *apiError) {
	if len(body) == 0 {
		body = []byte("{}")
	}
	m, err := decodeObject(body)
	if err != nil {
		return nil, &apiError{status: 400, code: "ValidationException", msg: "Could not parse the request body as a JSON object: " + err.Error()}
	}
	return &fields{m: m}, nil
}

func (f *fields) present(name string) bool {
	raw, ok := f.m[name]
	return ok && string(raw) != "null"
}

func (f *fields) str(name string, required bool, minLen, maxLen int) string {
	if !f.present(name) {
		if required {
			f.verrs.add("Value null at '%s' failed to satisfy constraint: Member must not be null", name)
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(f.m[name], &s); err != nil {
		f.verrs.add("Value at '%s' failed to satisfy constraint: Member must be a string", name)
		return ""
	}
	if n := len([]rune(s)); n < minLen || n > maxLen {
		f.verrs.add("Value at '%s' failed to satisfy constraint: Member must have length between %d and %d", name, minLen, maxLen)
	}
	return s
}

func (f *fields) long(name string, required bool, minVal, maxVal int64) int64 {
	if !f.present(name) {
		if required {
			f.verrs.add("Value null at '%s' failed to satisfy constraint: Member must not be null", name)
		}
		return 0
	}
	var n int64
	if err := json.Unmarshal(f.m[name], &n); err != nil {
		f.verrs.add("Value at '%s' failed to satisfy constraint: Member must be an integer", name)
		return 0
	}
	if n < minVal {
		f.verrs.add("Value '%d' at '%s' failed to satisfy constraint: Member must have value greater than or equal to %d", n, name, minVal)
	}
	if n > maxVal {
		f.verrs.add("Value '%d' at '%s' failed to satisfy constraint: Member must have value less than or equal to %d", n, name, maxVal)
	}
	return n
}

func (f *fields) strMap(name string, maxLen int) map[string]string {
	if !f.present(name) {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(f.m[name], &m); err != nil {
		f.verrs.add("Value at '%s' failed to satisfy constraint: Member must be a map of strings", name)
		return nil
	}
	if len(m) > maxLen {
		f.verrs.add("Value at '%s' failed to satisfy constraint: Member must have at most %d entries", name, maxLen)
	}
	for k, v := range m {
		if k == "" || len(k) > 128 || len(v) > 256 {
			f.verrs.add("Value at '%s' failed to satisfy constraint: keys must have length 1 to 128 and values at most 256", name)
			break
		}
	}
	return m
}

func (f *fields) done() *apiError { return f.verrs.err("ValidationException") }

// visibleDevice returns the device arn when it is served in region (region
// fields that are empty, as simulators have, are served everywhere).
func (e *Emulator) visibleDevice(arn, region string) (Device, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.devices {
		if d.ARN == arn && (d.Region() == "" || d.Region() == region) {
			return d, true
		}
	}
	return Device{}, false
}

type deviceSummary struct {
	DeviceArn    string `json:"deviceArn"`
	DeviceName   string `json:"deviceName"`
	DeviceStatus string `json:"deviceStatus"`
	DeviceType   string `json:"deviceType"`
	ProviderName string `json:"providerName"`
}

func summary(d Device) deviceSummary {
	return deviceSummary{DeviceArn: d.ARN, DeviceName: d.Name, DeviceStatus: string(d.Status), DeviceType: string(d.Type), ProviderName: d.Provider}
}

func (e *Emulator) searchDevices(c *call) {
	f, aerr := decodeFields(c.body)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	type filter struct {
		Name   *string  `json:"name"`
		Values []string `json:"values"`
	}
	var filters []filter
	if !f.present("filters") {
		f.verrs.add("Value null at 'filters' failed to satisfy constraint: Member must not be null")
	} else if err := json.Unmarshal(f.m["filters"], &filters); err != nil {
		f.verrs.add("Value at 'filters' failed to satisfy constraint: Member must be a list of {name, values}")
	}
	maxResults := int(f.long("maxResults", false, 1, 100))
	if maxResults == 0 {
		maxResults = 100
	}
	nextToken := f.str("nextToken", false, 1, 1024)
	for i, fl := range filters {
		if fl.Name == nil || *fl.Name != "deviceArn" {
			f.verrs.add("Value at 'filters.%d.member.name' failed to satisfy constraint: the only supported filter name is deviceArn", i+1)
		}
		if len(fl.Values) < 1 || len(fl.Values) > 10 {
			f.verrs.add("Value at 'filters.%d.member.values' failed to satisfy constraint: Member must have length between 1 and 10", i+1)
		}
	}
	if aerr := f.done(); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := c.authorize([2]string{"braket:SearchDevices", "*"}); aerr != nil {
		c.fail(aerr)
		return
	}
	start := 0
	if nextToken != "" {
		n, err := decodePageToken(nextToken)
		if err != nil {
			c.fail(&apiError{status: 400, code: "ValidationException", msg: "The nextToken is not valid."})
			return
		}
		start = n
	}
	var match []deviceSummary
	for _, d := range e.Devices() {
		if d.Region() != "" && d.Region() != c.region {
			continue
		}
		ok := true
		for _, fl := range filters {
			ok = ok && slices.Contains(fl.Values, d.ARN)
		}
		if ok {
			match = append(match, summary(d))
		}
	}
	type response struct {
		Devices   []deviceSummary `json:"devices"`
		NextToken string          `json:"nextToken,omitempty"`
	}
	res := response{Devices: []deviceSummary{}}
	if start < len(match) {
		end := min(start+maxResults, len(match))
		res.Devices = match[start:end]
		if end < len(match) {
			res.NextToken = encodePageToken(end)
		}
	}
	c.writeJSON(http.StatusOK, res)
}

func encodePageToken(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(n)))
}

func decodePageToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, fmt.Errorf("decode page token: %w", err)
	}
	rest, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, fmt.Errorf("page token has no offset")
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("page token offset %q is not a count", rest)
	}
	return n, nil
}

func (e *Emulator) getDevice(c *call, arn string) {
	if aerr := c.authorize([2]string{"braket:GetDevice", arn}); aerr != nil {
		c.fail(aerr)
		return
	}
	d, ok := e.visibleDevice(arn, c.region)
	if !ok {
		c.fail(&apiError{status: 404, code: "ResourceNotFoundException", msg: fmt.Sprintf("Braket device '%s' not found", arn)})
		return
	}
	type queueInfo struct {
		Queue         string `json:"queue"`
		QueuePriority string `json:"queuePriority,omitempty"`
		QueueSize     string `json:"queueSize"`
	}
	type response struct {
		deviceSummary
		DeviceCapabilities string      `json:"deviceCapabilities"`
		DeviceQueueInfo    []queueInfo `json:"deviceQueueInfo"`
	}
	queued := strconv.Itoa(e.queuedOn(d.ARN))
	c.writeJSON(http.StatusOK, response{
		deviceSummary:      summary(d),
		DeviceCapabilities: capabilities(d),
		DeviceQueueInfo: []queueInfo{
			{Queue: "QUANTUM_TASKS_QUEUE", QueuePriority: "Normal", QueueSize: queued},
			{Queue: "QUANTUM_TASKS_QUEUE", QueuePriority: "Priority", QueueSize: "0"},
			{Queue: "JOBS_QUEUE", QueueSize: "0"},
		},
	})
}

// capabilities returns the device's deviceCapabilities JSON string.
func capabilities(d Device) string {
	header := func(name string) map[string]string { return map[string]string{"name": name, "version": "1"} }
	minShots := 1
	if d.Type == Simulator {
		minShots = 0
	}
	schema := "braket.device_schema.simulators.gate_model_simulator_device_capabilities"
	paradigm := map[string]any{
		"braketSchemaHeader": header("braket.device_schema.simulators.gate_model_simulator_paradigm_properties"),
		"qubitCount":         d.Qubits,
	}
	if d.Type == QPU {
		parts := strings.Split(d.ARN, "/")
		provider := strings.ToLower(parts[len(parts)-2])
		schema = fmt.Sprintf("braket.device_schema.%s.%s_device_capabilities", provider, provider)
		paradigm = map[string]any{
			"braketSchemaHeader": header("braket.device_schema.gate_model_qpu_paradigm_properties"),
			"qubitCount":         d.Qubits,
			"nativeGateSet":      []string{},
			"connectivity":       map[string]any{"fullyConnected": true, "connectivityGraph": map[string]any{}},
		}
	}
	caps := map[string]any{
		"braketSchemaHeader": header(schema),
		"service": map[string]any{
			"braketSchemaHeader": header("braket.device_schema.device_service_properties"),
			"executionWindows":   []map[string]string{{"executionDay": "Everyday", "windowStartHour": "00:00:00", "windowEndHour": "23:59:59"}},
			"shotsRange":         []int{minShots, d.MaxShots},
		},
		"action": map[string]any{
			actionOpenQASM: map[string]any{
				"version":              []string{"1"},
				"actionType":           actionOpenQASM,
				"supportedOperations":  supportedOperations(),
				"supportedResultTypes": []any{},
			},
		},
		"paradigm":         paradigm,
		"deviceParameters": map[string]any{},
	}
	b, _ := json.Marshal(caps) // plain maps, slices and strings always encode
	return string(b)
}

// supportedOperations lists the gates, in Braket's spelling, that the
// emulator's OpenQASM subset accepts.
func supportedOperations() []string {
	return []string{"ccnot", "cnot", "cphaseshift", "cswap", "cy", "cz", "h", "i", "phaseshift", "rx", "ry", "rz",
		"s", "si", "swap", "t", "ti", "v", "vi", "x", "y", "z"}
}
