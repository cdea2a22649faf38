package rigettisim

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const bellQuil = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"

// grpcHarness serves the emulator over h2c (ServeHTTP hands gRPC calls to
// the gRPC server) and dials it with a real grpc-go client.
type grpcHarness struct {
	*harness
	conn   *grpc.ClientConn
	access string
}

func newGRPCHarness(t *testing.T) *grpcHarness {
	t.Helper()
	h := newHarness(t, func(c *Config) { c.ExecutionDelay = time.Second })
	srv := httptest.NewUnstartedServer(h.e)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(srv.URL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	access, _ := h.mustRefresh(testRefresh)
	return &grpcHarness{harness: h, conn: conn, access: access}
}

func (g *grpcHarness) call(method, auth string, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if auth != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	var resp []byte
	err := g.conn.Invoke(ctx, method, &req, &resp)
	return resp, err
}

func (g *grpcHarness) must(method string, req []byte) []byte {
	g.t.Helper()
	resp, err := g.call(method, "Bearer "+g.access, req)
	if err != nil {
		g.t.Fatalf("%s: %v", method, err)
	}
	return resp
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
}

func translateReq(processor, program string, shots uint32) []byte {
	var b []byte
	b = pbString(b, 1, processor)
	b = pbString(b, 2, program)
	return pbVarint(b, 3, uint64(shots), true)
}

func executeReq(job []byte, processor string, configs int) []byte {
	var b []byte
	for range configs {
		b = pbBytes(b, 3, nil)
	}
	b = pbBytes(b, 201, job)
	return pbString(b, 101, processor)
}

// field returns the first field num of a message.
func field(t *testing.T, b []byte, num protowire.Number) pbField {
	t.Helper()
	fs, err := pbDecode(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.num == num {
			return f
		}
	}
	return pbField{}
}

func (g *grpcHarness) translate(program string, shots uint32) []byte {
	resp := g.must(MethodTranslate, translateReq("Ankaa-3", program, shots))
	return field(g.t, resp, 1).b
}

func (g *grpcHarness) execute(job []byte) string {
	resp := g.must(MethodExecute, executeReq(job, "Ankaa-3", 1))
	return string(field(g.t, resp, 1).b)
}

func (g *grpcHarness) status(id string) uint64 {
	return field(g.t, g.must(MethodStatus, pbString(nil, 1, id)), 1).v
}

// readout decodes GetControllerJobResults into stream → values and status.
func readout(t *testing.T, resp []byte) (map[string][]int32, uint64) {
	res := field(t, resp, 1).b
	fs, err := pbDecode(res)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int32{}
	var st uint64
	for _, f := range fs {
		switch f.num {
		case 2:
			key := string(field(t, f.b, 1).b)
			ints := field(t, field(t, f.b, 2).b, 1).b
			packed := field(t, ints, 1).b
			var vals []int32
			for len(packed) > 0 {
				v, n := protowire.ConsumeVarint(packed)
				vals = append(vals, int32(v))
				packed = packed[n:]
			}
			out[key] = vals
		case 3:
			st = f.v
		}
	}
	return out, st
}

func TestGRPCBell(t *testing.T) {
	g := newGRPCHarness(t)
	resp := g.must(MethodTranslate, translateReq("Ankaa-3", bellQuil, 2000))
	job := field(t, resp, 1).b
	if mapping := field(t, resp, 2).b; !strings.Contains(string(mapping), "ro[1]") {
		t.Fatalf("readout mappings %q", mapping)
	}
	id := g.execute(job)
	if st := g.status(id); st != StatusQueued {
		t.Fatalf("status %d, want QUEUED", st)
	}
	g.clock.Advance(2 * time.Second)
	if st := g.status(id); st != StatusSucceeded {
		t.Fatalf("status %d, want SUCCEEDED", st)
	}
	vals, st := readout(t, g.must(MethodResults, pbString(pbString(nil, 1, id), 101, "Ankaa-3")))
	if st != resultSuccess || len(vals["q0"]) != 2000 || len(vals["q1"]) != 2000 {
		t.Fatalf("results status %d, %d/%d values", st, len(vals["q0"]), len(vals["q1"]))
	}
	ones := 0
	for i := range vals["q0"] {
		if vals["q0"][i] != vals["q1"][i] {
			t.Fatalf("shot %d: %d %d: a Bell pair agrees", i, vals["q0"][i], vals["q1"][i])
		}
		ones += int(vals["q0"][i])
	}
	if d := math.Abs(float64(ones) - 1000); d > 5*math.Sqrt(2000*0.25) {
		t.Fatalf("%d of 2000 shots gave 11", ones)
	}
	// Results of another processor's execution: not found.
	_, err := g.call(MethodResults, "Bearer "+g.access, pbString(pbString(nil, 1, id), 101, "Cepheus-1-108Q"))
	wantCode(t, "results on another processor", err, codes.NotFound)
}

func TestGRPCAuth(t *testing.T) {
	g := newGRPCHarness(t)
	req := translateReq("Ankaa-3", bellQuil, 10)
	for _, auth := range []string{"", "Bearer", "Basic " + g.access, "Bearer not-a-token", "Bearer " + g.access + "x"} {
		_, err := g.call(MethodTranslate, auth, req)
		wantCode(t, "auth "+auth, err, codes.Unauthenticated)
	}
	g.clock.Advance(DefaultAccessTokenTTL)
	_, err := g.call(MethodTranslate, "Bearer "+g.access, req)
	wantCode(t, "expired access token", err, codes.Unauthenticated)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
}

func TestGRPCRefusals(t *testing.T) {
	g := newGRPCHarness(t)
	auth := "Bearer " + g.access
	for _, tc := range []struct {
		what string
		req  []byte
		code codes.Code
	}{
		{"unknown processor", translateReq("Aspen-M-3", bellQuil, 10), codes.NotFound},
		{"too many shots", translateReq("Ankaa-3", bellQuil, DefaultMaxShots+1), codes.InvalidArgument},
		{"no shots", pbString(pbString(nil, 1, "Ankaa-3"), 2, bellQuil), codes.InvalidArgument},
		{"bad quil", translateReq("Ankaa-3", "PRAGMA X\nH 0", 10), codes.InvalidArgument},
		{"qubit not on the processor", translateReq("Ankaa-3", "H 84", 10), codes.InvalidArgument},
		{"bad wire", []byte{0x0a, 0x05, 'x'}, codes.InvalidArgument},
	} {
		_, err := g.call(MethodTranslate, auth, tc.req)
		wantCode(t, tc.what, err, tc.code)
	}
	job := g.translate(bellQuil, 10)
	tampered := append([]byte(nil), job...)
	tampered[5] ^= 1
	forged := pbBytes(pbBytes(nil, 1, []byte("not sealed")), 2, pbBytes(pbString(nil, 1, "emu-x"), 2, make([]byte, 12)))
	for _, tc := range []struct {
		what string
		req  []byte
		code codes.Code
	}{
		{"tampered job", executeReq(tampered, "Ankaa-3", 1), codes.InvalidArgument},
		{"forged job", executeReq(forged, "Ankaa-3", 1), codes.InvalidArgument},
		{"another processor", executeReq(job, "Cepheus-1-108Q", 1), codes.InvalidArgument},
		{"no configuration", executeReq(job, "Ankaa-3", 0), codes.InvalidArgument},
		{"no target", pbBytes(pbBytes(nil, 3, nil), 201, job), codes.InvalidArgument},
	} {
		_, err := g.call(MethodExecute, auth, tc.req)
		wantCode(t, tc.what, err, tc.code)
	}
	// QCS lets a translated job run again (parametric programs do): the
	// emulator does too, so one-execution-per-approval is the gateway's.
	if a, b := g.execute(job), g.execute(job); a == b {
		t.Fatal("two executions share an id")
	}
	_, err := g.call(MethodStatus, auth, pbString(nil, 1, "ex-nope"))
	wantCode(t, "unknown job status", err, codes.NotFound)
	_, err = g.call("/services.controller.Controller/Nope", auth, nil)
	wantCode(t, "unknown method", err, codes.Unimplemented)
}

func TestGRPCCancel(t *testing.T) {
	g := newGRPCHarness(t)
	id := g.execute(g.translate(bellQuil, 10))
	g.must(MethodCancel, pbString(nil, 1, id))
	if st := g.status(id); st != StatusCanceled {
		t.Fatalf("status %d, want CANCELED", st)
	}
	g.clock.Advance(2 * time.Second)
	if _, st := readout(t, g.must(MethodResults, pbString(pbString(nil, 1, id), 101, "Ankaa-3"))); st != resultUserCancellation {
		t.Fatalf("result status %d", st)
	}
}
