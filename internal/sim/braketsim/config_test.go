package braketsim

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]Config{
		"account":        {AccountID: "12345"},
		"region":         {Region: "mars"},
		"half a key":     {RootAccessKeyID: "AKIAX"},
		"ASIA root key":  {RootAccessKeyID: "ASIAX", RootSecretAccessKey: "s"},
		"12h+":           {MaxSessionDuration: 13 * time.Hour},
		"device ARN":     {Devices: []Device{{ARN: "arn:aws:braket:::sv1", Name: "x", Provider: "y", Type: Simulator, Qubits: 1}}},
		"duplicate":      {Devices: []Device{DefaultDevices()[0], DefaultDevices()[0]}},
		"device type":    {Devices: []Device{{ARN: SV1ARN, Name: "x", Provider: "y", Type: "GPU", Qubits: 1}}},
		"device qubits":  {Devices: []Device{{ARN: SV1ARN, Name: "x", Provider: "y", Type: Simulator}}},
		"bucket":         {Buckets: []string{"UPPER"}},
		"role":           {Roles: []string{"arn:aws:iam::999999999999:role/x"}},
		"device status":  {Devices: []Device{{ARN: SV1ARN, Name: "x", Provider: "y", Type: Simulator, Qubits: 1, Status: "BROKEN"}}},
		"device unnamed": {Devices: []Device{{ARN: SV1ARN, Type: Simulator, Qubits: 1}}},
	}
	for name, cfg := range cases {
		if e, err := New(cfg); err == nil {
			e.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.AccountID() != DefaultAccountID || e.Region() != DefaultRegion || len(e.Devices()) != 3 {
		t.Fatalf("defaults: %s %s %v", e.AccountID(), e.Region(), e.Devices())
	}
	if err := e.SetDeviceStatus("arn:aws:braket:::device/quantum-simulator/amazon/none", Offline); err == nil {
		t.Fatal("SetDeviceStatus accepted an unknown device")
	}
}

// An emulator without a long-term key refuses it, and with Buckets set
// refuses other buckets.
func TestNoRootKeyAndBucketList(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RootAccessKeyID, c.RootSecretAccessKey = "", "" })
	expectRefusal(t, "no root key configured", h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(searchAll)), 403, "UnrecognizedClientException")

	b := newHarness(t, func(c *Config) { c.Buckets = []string{testBucket} })
	b.create(rootCreds, createBody(SV1ARN, 1, bellSource(), "p", nil))
	res := b.do(rootCreds, svcBraket, http.MethodPost, "/quantum-task", createBody(SV1ARN, 1, bellSource(), "p", map[string]any{"outputS3Bucket": "amazon-braket-other"}))
	expectRefusal(t, "bucket not listed", res, 400, "ValidationException")
	expectRefusal(t, "no such bucket", b.do(rootCreds, svcS3, http.MethodGet, "/amazon-braket-other/k", nil), 404, "NoSuchBucket")
	expectRefusal(t, "s3 write", b.do(rootCreds, svcS3, http.MethodPut, "/"+testBucket+"/k", []byte("x")), 501, "NotImplemented")
}

// MaxTasks evicts the oldest finished task, and its results, to make room.
func TestTaskEviction(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxTasks = 2 })
	first := h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 1, bellSource(), "p", nil)))
	h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 1, bellSource(), "p", nil)))
	h.wait(rootCreds, h.create(rootCreds, createBody(SV1ARN, 1, bellSource(), "p", nil)))
	if n := h.e.taskCount(); n != 2 {
		t.Fatalf("%d tasks kept, want 2", n)
	}
	expectRefusal(t, "evicted task", h.do(rootCreds, svcBraket, http.MethodGet, "/quantum-task/"+escapeLabel(first.QuantumTaskArn), nil), 404, "ResourceNotFoundException")
	expectRefusal(t, "evicted results", h.do(rootCreds, svcS3, http.MethodGet, "/"+testBucket+"/"+first.OutputS3Directory+"/results.json", nil), 404, "NoSuchKey")
}

func TestSTSProtocolErrors(t *testing.T) {
	h := newHarness(t, nil)
	form := func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" }
	cases := []struct {
		name string
		body string
		opt  func(*reqOpts)
		code string
	}{
		{"unknown action", "Action=GetSessionToken&Version=2011-06-15", form, "InvalidAction"},
		{"wrong version", "Action=GetCallerIdentity&Version=2010-01-01", form, "InvalidAction"},
		{"repeated parameter", "Action=GetCallerIdentity&Version=2011-06-15&Version=2011-06-15", form, "ValidationError"},
		{"unknown parameter", "Action=AssumeRole&Version=2011-06-15&RoleArn=" + testRole + "&RoleSessionName=ab&Bogus=1", form, "ValidationError"},
		{"JSON body", `{"Action":"GetCallerIdentity"}`, nil, "InvalidParameterValue"},
	}
	for _, c := range cases {
		var opts []func(*reqOpts)
		if c.opt != nil {
			opts = append(opts, c.opt)
		}
		res := h.do(rootCreds, svcSTS, http.MethodPost, "/", []byte(c.body), opts...)
		if res.status != 400 || res.code() != c.code || !strings.Contains(string(res.body), "<ErrorResponse") {
			t.Errorf("%s: %d %s", c.name, res.status, res.body)
		}
	}
}

func TestOversizedBody(t *testing.T) {
	h := newHarness(t, nil)
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/quantum-task", bytes.NewReader(make([]byte, MaxBodyBytes+1)))
	res := h.send(req)
	if res.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %s", res.status, res.body)
	}
}
