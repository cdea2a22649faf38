package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // a client that compresses
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/qbroker/qbroker/internal/circuit/quil"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/provider/rigetti"
	"github.com/qbroker/qbroker/internal/sim/rigettisim"
	"github.com/qbroker/qbroker/internal/token"
)

const bellQuil = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"

// upstreamBroker is a memBroker that also hands out the QCS access token.
type upstreamBroker struct {
	*memBroker
	access string
}

func (b upstreamBroker) Upstream(context.Context, string, string) (provider.Credential, provider.Scope, error) {
	return provider.Credential{Secret: b.access}, provider.Scope{}, nil
}

type rawBytes struct{}

func (rawBytes) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawBytes) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawBytes) Name() string { return "proto" }

type grpcHarness struct {
	t       *testing.T
	broker  upstreamBroker
	ring    *token.KeyRing
	sim     *rigettisim.Emulator
	conn    *grpc.ClientConn
	gwURL   string
	qcsAddr string
}

func newGRPCHarness(t *testing.T) *grpcHarness {
	t.Helper()
	sim, err := rigettisim.New(rigettisim.Config{ExecutionDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	oauth := httptest.NewServer(sim)
	t.Cleanup(oauth.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sim.GRPC().Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(sim.GRPC().Stop)
	cred, _, _, err := (&rigetti.Minter{Issuer: oauth.URL + sim.IssuerPath(), ClientID: sim.ClientID()}).Mint(context.Background(), sim.IssueRefreshToken(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	h := &grpcHarness{t: t, broker: upstreamBroker{newMemBroker(realKey), cred.Secret}, sim: sim}
	key, err := token.GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if h.ring, err = token.NewKeyRing([]token.Key{key}); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: h.ring})
	if err != nil {
		t.Fatal(err)
	}
	ionq, _ := url.Parse("http://127.0.0.1:1")
	qcs, _ := url.Parse("http://" + lis.Addr().String())
	gw, err := New(Config{Broker: h.broker, Verifier: v, IonQUpstream: ionq,
		GRPCFronts: []GRPCFront{{Adapter: rigetti.Adapter{}, Upstream: qcs, Devices: map[string]string{"ankaa-3": "Ankaa-3"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	h.gwURL, h.qcsAddr = srv.URL, lis.Addr().String()
	h.conn, err = grpc.NewClient("passthrough:///"+strings.TrimPrefix(srv.URL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawBytes{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.broker.addAgentToken(aliceToken, aliceID)
	return h
}

func (h *grpcHarness) jobToken() string {
	h.t.Helper()
	now := time.Now()
	c := token.Claims{Issuer: testIssuer, Subject: aliceID, Audience: testAudience, IssuedAt: now, Expiry: now.Add(time.Minute),
		ID: "jti-" + now.Format("150405.000000000"), Role: "demo", Provider: "rigetti", Device: "ankaa-3", MaxShots: 100,
		ProgramSHA256: quil.Digest([]byte(bellQuil))}
	raw, err := h.ring.Sign(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.broker.issue(c.ID, c.Expiry)
	return raw
}

func (h *grpcHarness) call(method, tok string, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	var resp []byte
	err := h.conn.Invoke(ctx, method, &req, &resp)
	return resp, err
}

func pbS(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func pbM(b []byte, num protowire.Number, m []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
}

func translation(shots uint64) []byte {
	b := pbS(pbS(nil, 1, "Ankaa-3"), 2, bellQuil)
	return protowire.AppendVarint(protowire.AppendTag(b, 3, protowire.VarintType), shots)
}

func firstBytes(b []byte) []byte {
	_, _, n := protowire.ConsumeTag(b)
	v, _ := protowire.ConsumeBytes(b[n:])
	return v
}

func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("%s: got %v, want %v %q", what, err, code, msg)
	}
}

// The audit sink down: the translation is refused before the token is
// redeemed or anything is sent upstream.
func TestGRPCAuditDownRefuses(t *testing.T) {
	h := newGRPCHarness(t)
	h.broker.failAudit.Store(true)
	_, err := h.call(rigetti.MethodTranslate, h.jobToken(), translation(100))
	wantStatus(t, "audit down", err, codes.Unavailable, "audit unavailable")
	if h.broker.redeems.Load() != 0 {
		t.Fatal("a token was redeemed without an audit record")
	}
}

// A job the gateway cannot record is canceled upstream: the agent is told
// it failed, so it must not run. The ticket stays spent.
func TestGRPCExecuteUnrecordedIsCanceled(t *testing.T) {
	h := newGRPCHarness(t)
	jt := h.jobToken()
	tr, err := h.call(rigetti.MethodTranslate, jt, translation(100))
	if err != nil {
		t.Fatal(err)
	}
	exec := pbS(pbM(pbM(nil, 3, nil), 201, firstBytes(tr)), 101, "Ankaa-3")
	h.broker.failRecord.Store(recordAttempts)
	_, err = h.call(rigetti.MethodExecute, jt, exec)
	wantStatus(t, "unrecorded execution", err, codes.Unavailable, "canceled upstream")
	if h.broker.jobCount() != 0 {
		t.Fatal("a job was recorded")
	}
	_, err = h.call(rigetti.MethodExecute, jt, exec)
	wantStatus(t, "execution after a failed record", err, codes.PermissionDenied, "already executed")
	var id string
	for _, ev := range h.broker.auditLog() {
		if ev.Type == "execute" && ev.Decision == "allow" {
			id = ev.JobID
		}
	}
	if id == "" {
		t.Fatal("the execution is not audited")
	}
	// At QCS itself the execution is canceled (it would have stayed queued
	// for a minute).
	direct, err := grpc.NewClient("passthrough:///"+h.qcsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawBytes{})))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.broker.access)
	in, out := pbS(nil, 1, id), []byte(nil)
	if err := direct.Invoke(ctx, rigetti.MethodStatus, &in, &out); err != nil {
		t.Fatal(err)
	}
	if st, _ := protowire.ConsumeVarint(out[1:]); out[0] != 0x08 || st != rigettisim.StatusCanceled {
		t.Fatalf("upstream status %x, want CANCELED", out)
	}
}

// Calls the gateway does not serve: compressed messages, HTTP/1.1 with a
// gRPC content type (not routed to the gRPC front), unknown methods.
func TestGRPCMalformedCalls(t *testing.T) {
	h := newGRPCHarness(t)
	req, _ := http.NewRequest(http.MethodPost, h.gwURL+rigetti.MethodTranslate, strings.NewReader("\x01\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := http.DefaultClient.Do(req) // HTTP/1.1
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Grpc-Status") != "" {
		t.Fatalf("HTTP/1.1 gRPC: %d %v", resp.StatusCode, resp.Header)
	}
	_, err = h.call("/services.translation.Translation/Other", h.jobToken(), nil)
	wantStatus(t, "unknown method", err, codes.Unimplemented, "not available through the qbroker gateway")
	_, err = h.call(rigetti.MethodTranslate, "not-a-token", translation(100))
	wantStatus(t, "bad job token", err, codes.Unauthenticated, "malformed")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.jobToken())
	var out []byte
	in := translation(100)
	err = h.conn.Invoke(ctx, rigetti.MethodTranslate, &in, &out, grpc.UseCompressor("gzip"))
	wantStatus(t, "compressed call", err, codes.InvalidArgument, "compressed messages are not accepted")
}
