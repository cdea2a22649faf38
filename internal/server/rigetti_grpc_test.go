package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/sim/rigettisim"
)

const bellQuil = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"

const (
	qcsTranslate = "/services.translation.Translation/TranslateQuilToEncryptedControllerJob"
	qcsExecute   = "/services.controller.Controller/ExecuteControllerJob"
	qcsStatus    = "/services.controller.Controller/GetControllerJobStatus"
	qcsResults   = "/services.controller.Controller/GetControllerJobResults"
	qcsCancel    = "/services.controller.Controller/CancelControllerJobs"
	qcsBatch     = "/services.controller.Controller/BatchExecuteControllerJobs"
)

// rawCodec sends and receives protobuf bytes as they are: the test builds
// QCS's own messages with protowire, by the real protos' field numbers.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// qcsClient is an agent's gRPC connection, as a QCS client would hold it.
// Everything it receives (messages, headers, trailers, errors) is kept,
// to show no QCS credential reaches it.
type qcsClient struct {
	t        *testing.T
	conn     *grpc.ClientConn
	received bytes.Buffer
}

func dialQCS(t *testing.T, addr string) *qcsClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(addr, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &qcsClient{t: t, conn: conn}
}

func (c *qcsClient) call(method, token string, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	var resp []byte
	var header, trailer metadata.MD
	err := c.conn.Invoke(ctx, method, &req, &resp, grpc.Header(&header), grpc.Trailer(&trailer))
	c.received.Write(resp)
	fmt.Fprint(&c.received, header, trailer)
	if err != nil {
		c.received.WriteString(err.Error())
	}
	return resp, err
}

func (c *qcsClient) must(method, token string, req []byte) []byte {
	c.t.Helper()
	resp, err := c.call(method, token, req)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	return resp
}

func wantGRPC(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("%s: got %v, want %v with %q", what, err, code, msg)
	}
}

func pbStr(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func pbMsg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// translateRequest is TranslateQuilToEncryptedControllerJobRequest.
func translateRequest(processor, program string, shots uint32) []byte {
	b := pbStr(pbStr(nil, 1, processor), 2, program)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(shots))
}

// executeRequest is ExecuteControllerJobRequest with one empty
// configuration.
func executeRequest(job []byte, processor string) []byte {
	return pbStr(pbMsg(pbMsg(nil, 3, nil), 201, job), 101, processor)
}

// pbGet returns the bytes (or varint) of field num of msg.
func pbGet(t *testing.T, msg []byte, num protowire.Number) ([]byte, uint64) {
	t.Helper()
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			t.Fatalf("bad message")
		}
		msg = msg[l:]
		var b []byte
		var v uint64
		switch typ {
		case protowire.BytesType:
			b, l = protowire.ConsumeBytes(msg)
		case protowire.VarintType:
			v, l = protowire.ConsumeVarint(msg)
		default:
			l = protowire.ConsumeFieldValue(n, typ, msg)
		}
		if l < 0 {
			t.Fatalf("bad field")
		}
		msg = msg[l:]
		if n == num {
			return b, v
		}
	}
	return nil, 0
}

// readouts decodes GetControllerJobResultsResponse.result.readout_values.
func readouts(t *testing.T, resp []byte) map[string][]int32 {
	res, _ := pbGet(t, resp, 1)
	out := map[string][]int32{}
	for len(res) > 0 {
		n, typ, l := protowire.ConsumeTag(res)
		res = res[l:]
		if typ != protowire.BytesType {
			_, l = protowire.ConsumeVarint(res)
			res = res[l:]
			continue
		}
		entry, l := protowire.ConsumeBytes(res)
		res = res[l:]
		if n != 2 {
			continue
		}
		key, _ := pbGet(t, entry, 1)
		rv, _ := pbGet(t, entry, 2)
		ints, _ := pbGet(t, rv, 1)
		packed, _ := pbGet(t, ints, 1)
		var vals []int32
		for len(packed) > 0 {
			v, l := protowire.ConsumeVarint(packed)
			vals = append(vals, int32(v))
			packed = packed[l:]
		}
		out[string(key)] = vals
	}
	return out
}

// cred0 is the QCS access token the broker holds (cached) for role r.
func cred0(t *testing.T, d *Dev) string {
	t.Helper()
	c, _, err := d.Broker.Upstream(context.Background(), "rigetti", "r")
	if err != nil {
		t.Fatal(err)
	}
	return c.Secret
}

// Rigetti QCS end to end over gRPC: agent → broker (job token bound to a
// Quil program) → gateway (h2c) → QCS emulator → results, in QCS's own
// request shape. The gateway checks the translation against the job
// token, redeems it, swaps in the broker-minted access token, and lets
// only that translation's encrypted job execute, once; reads need the
// owner's broker token. No QCS token reaches the agent or the audit.
func TestRigettiGRPCThroughGateway(t *testing.T) {
	var skew atomic.Int64 // the emulator's clock runs ahead of the broker's by this
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	sim, err := rigettisim.New(rigettisim.Config{ExecutionDelay: 50 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sim.GRPC().Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(sim.GRPC().Stop)
	first := sim.IssueRefreshToken()

	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("r-ankaa") permit (principal in Role::"r", action == Action::"SubmitJob", resource == Device::"rigetti/ankaa-3");
@id("r-own-jobs") permit (principal in Role::"r", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		Rigetti: config.Rigetti{Enabled: true, Issuer: srv.URL + sim.IssuerPath(), ClientID: sim.ClientID(), GRPCURL: "http://" + lis.Addr().String()}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the refresh token", e.broker(http.MethodPost, "/v1/sys/providers/rigetti/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, first)), http.StatusNoContent)
	e.putRole("r", `{"provider":"rigetti","devices":["ankaa-3"],"max_shots":1000}`)
	agent := e.mustLogin(e.roleID("r"), e.newSecretID("r", "r-agent", "").SecretID)
	other := e.mustLogin(e.roleID("r"), e.newSecretID("r", "r-other", "").SecretID)
	jobToken := func() string {
		b, _ := json.Marshal(api.JobTokenRequest{Provider: "rigetti", Device: "ankaa-3", Shots: 1000, Program: mustJSON(bellQuil), Format: api.FormatQuil})
		r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/r", agent.ClientToken, string(b))
		want(t, "rigetti job token", r, http.StatusOK)
		var jt api.JobTokenData
		decodeData(t, r, &jt)
		return jt.Token
	}
	c := dialQCS(t, d.GatewayURL)
	jt := jobToken()

	// Refused before redemption: the same token works afterwards.
	_, err = c.call(qcsTranslate, jt, translateRequest("Ankaa-3", bellQuil, 1001))
	wantGRPC(t, "more shots than the token", err, codes.PermissionDenied, "at most 1000")
	_, err = c.call(qcsTranslate, jt, translateRequest("Cepheus-1-108Q", bellQuil, 1000))
	wantGRPC(t, "another processor", err, codes.PermissionDenied, "request names Cepheus-1-108Q")
	_, err = c.call(qcsTranslate, jt, translateRequest("Ankaa-3", strings.Replace(bellQuil, "H 0", "X 0", 1), 1000))
	wantGRPC(t, "another program", err, codes.PermissionDenied, "program digest")
	if _, err = c.call(qcsTranslate, jt, translateRequest("Ankaa-3", bellQuil, 1000)); err != nil {
		t.Fatalf("translate: %v", err)
	}
	_, err = c.call(qcsTranslate, jt, translateRequest("Ankaa-3", bellQuil, 1000))
	wantGRPC(t, "replayed job token", err, codes.Unauthenticated, "already used")

	// A fresh token: translate, then execute that job once.
	jt = jobToken()
	tr := c.must(qcsTranslate, jt, translateRequest("Ankaa-3", bellQuil, 1000))
	job, _ := pbGet(t, tr, 1)
	tampered := bytes.Clone(job)
	tampered[len(tampered)-1] ^= 1
	_, err = c.call(qcsExecute, jt, executeRequest(tampered, "Ankaa-3"))
	wantGRPC(t, "an encrypted job the gateway did not approve", err, codes.PermissionDenied, "not approved")
	_, err = c.call(qcsExecute, other.ClientToken, executeRequest(job, "Ankaa-3"))
	wantGRPC(t, "another agent executing", err, codes.PermissionDenied, "another agent")
	_, err = c.call(qcsBatch, jt, pbMsg(nil, 1, executeRequest(job, "Ankaa-3")))
	wantGRPC(t, "batch execution", err, codes.Unimplemented, "not available")
	ex := c.must(qcsExecute, jt, executeRequest(job, "Ankaa-3"))
	idb, _ := pbGet(t, ex, 1)
	id := string(idb)
	_, err = c.call(qcsExecute, jt, executeRequest(job, "Ankaa-3"))
	wantGRPC(t, "second execution", err, codes.PermissionDenied, "already executed")
	_, err = c.call(qcsExecute, agent.ClientToken, executeRequest(job, "Ankaa-3"))
	wantGRPC(t, "second execution with the broker token", err, codes.PermissionDenied, "already executed")

	// Reads: the owner's broker token only.
	_, err = c.call(qcsStatus, jt, pbStr(nil, 1, id))
	wantGRPC(t, "status with the job token", err, codes.Unauthenticated, "broker token")
	_, err = c.call(qcsStatus, other.ClientToken, pbStr(nil, 1, id))
	wantGRPC(t, "another agent's status read", err, codes.NotFound, "not found")
	_, err = c.call(qcsResults, other.ClientToken, pbStr(pbStr(nil, 1, id), 101, "Ankaa-3"))
	wantGRPC(t, "another agent's results", err, codes.NotFound, "not found")
	_, err = c.call(qcsCancel, other.ClientToken, pbStr(nil, 1, id))
	wantGRPC(t, "another agent's cancel", err, codes.NotFound, "not found")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, st := pbGet(t, c.must(qcsStatus, agent.ClientToken, pbStr(nil, 1, id)), 1)
		if st == rigettisim.StatusSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ro := readouts(t, c.must(qcsResults, agent.ClientToken, pbStr(pbStr(nil, 1, id), 101, "Ankaa-3")))
	if len(ro["q0"]) != 1000 || len(ro["q1"]) != 1000 {
		t.Fatalf("readout: %d and %d values", len(ro["q0"]), len(ro["q1"]))
	}
	counts := map[string]int{}
	for i := range ro["q0"] {
		counts[fmt.Sprint(ro["q0"][i], ro["q1"][i])]++
	}
	if sd := math.Sqrt(1000 * 0.25); len(counts) != 2 || math.Abs(float64(counts["0 0"])-500) > 5*sd {
		t.Fatalf("Bell counts %v: want only 00 and 11, 500 ± %.0f each", counts, 5*sd)
	}
	t.Logf("Bell counts over 1000 shots through the gateway: %v", counts)
	c.must(qcsCancel, agent.ClientToken, pbStr(nil, 1, id)) // finished: a no-op upstream, but the owner may ask

	// The job token is useless at QCS itself, and so is a wrong token.
	direct := dialQCS(t, "http://"+lis.Addr().String())
	_, err = direct.call(qcsTranslate, jt, translateRequest("Ankaa-3", bellQuil, 10))
	wantGRPC(t, "job token at the emulator", err, codes.Unauthenticated, "invalid")

	// An expired access token: QCS refuses it, and the gateway passes the
	// refusal on as it is — and drops the token, so the next call goes out
	// with a fresh one instead of failing until the cached one would have
	// expired by the broker's clock.
	skew.Store(int64(2 * time.Hour))
	refused := cred0(t, d)
	_, err = direct.call(qcsStatus, refused, pbStr(nil, 1, id))
	wantGRPC(t, "expired access token at the emulator", err, codes.Unauthenticated, "expired")
	_, err = c.call(qcsStatus, agent.ClientToken, pbStr(nil, 1, id))
	wantGRPC(t, "expired access token through the gateway", err, codes.Unauthenticated, "expired")
	if _, err = c.call(qcsStatus, agent.ClientToken, pbStr(nil, 1, id)); err != nil {
		t.Fatalf("the call after a refused access token: %v (the gateway kept the refused token)", err)
	}
	if cred0(t, d) == refused {
		t.Fatal("the broker still caches the refused access token")
	}

	// Audit: the translation and the execution, with the job's owner.
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "execute" && ev.Provider == "rigetti" && ev.JobID == id && ev.Decision == "allow" && ev.Agent != ""
	}); n != 1 {
		t.Fatalf("%d execute events for the job", n)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Provider == "rigetti" && ev.Decision == "allow"
	}) != 2 {
		t.Fatal("the two translations are not audited")
	}
	// No QCS credential reached the agent, the audit trail or the disk.
	stored, _ := d.Broker.Credential(context.Background(), "rigetti")
	cred, _, err := d.Broker.Upstream(context.Background(), "rigetti", "r")
	if err != nil || cred.Secret == "" {
		t.Fatalf("upstream credential: %v", err)
	}
	for _, s := range []string{first, stored, cred.Secret} {
		if strings.Contains(c.received.String(), s) {
			t.Fatal("a QCS token reached the agent")
		}
	}
	e.wantNotInAudit(first, stored, cred.Secret)
	assertDirHasNo(t, d.DataDir, first, stored, cred.Secret)

	// HTTP/1.1 clients still reach the same gateway listener.
	resp, err := http.Get(d.GatewayURL + "/ionq/v0.4/backends")
	if err != nil || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 on the gateway: %v", err)
	}
	resp.Body.Close()
}
