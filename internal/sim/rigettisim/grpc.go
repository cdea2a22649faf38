package rigettisim

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/qbroker/qbroker/internal/circuit/quil"
	"github.com/qbroker/qbroker/internal/sim"
)

// The gRPC methods served, by full name.
const (
	MethodTranslate    = "/services.translation.Translation/TranslateQuilToEncryptedControllerJob"
	MethodExecute      = "/services.controller.Controller/ExecuteControllerJob"
	MethodBatchExecute = "/services.controller.Controller/BatchExecuteControllerJobs"
	MethodResults      = "/services.controller.Controller/GetControllerJobResults"
	MethodCancel       = "/services.controller.Controller/CancelControllerJobs"
	MethodStatus       = "/services.controller.Controller/GetControllerJobStatus"
)

// GetControllerJobStatusResponse.Status values.
const (
	StatusUnknown   = 0
	StatusQueued    = 1
	StatusRunning   = 2
	StatusSucceeded = 3
	StatusFailed    = 4
	StatusCanceled  = 5
)

// ControllerJobExecutionResult.Status values.
const (
	resultSuccess          = 1
	resultUserCancellation = 4
)

// Execution defaults.
const (
	// DefaultMaxShots is each processor's shot limit (UNCERTAIN: QCS
	// publishes no per-processor cap in the reference).
	DefaultMaxShots = 10_000
	// DefaultExecutionDelay is how long an execution stays queued and
	// running before its results are ready.
	DefaultExecutionDelay = 200 * time.Millisecond
	// maxExecutions bounds the executions kept; the oldest are forgotten.
	maxExecutions = 10_000
	// maxGRPCMessage bounds a request message.
	maxGRPCMessage = 4 << 20
	// defaultProcessorQubits is the qubit count of a processor not in
	// processorQubits (UNCERTAIN).
	defaultProcessorQubits = 84
)

// processorQubits are the known processors' qubit counts (Ankaa-3 has 84
// qubits; Cepheus-1-108Q 108, as its name says).
var processorQubits = map[string]int{"Ankaa-3": 84, "Cepheus-1-108Q": 108}

// execution is one run of an encrypted job.
type execution struct {
	id        string
	processor string
	created   time.Time
	canceled  bool
	// readout holds, per readout stream ("q<qubit>"), one value per shot.
	readout map[string][]int32
	shots   int
}

// rawCodec passes messages through as bytes: the emulator decodes them
// with protowire, field by field, as the real protos number them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("rigettisim: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rigettisim: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// GRPC returns the emulator's gRPC server: the QCS Translation and
// Controller services. Serve it on its own listener (as
// grpc.qcs.rigetti.com is its own host), or let ServeHTTP hand it gRPC
// requests that arrive over HTTP/2 (h2c included).
func (e *Emulator) GRPC() *grpc.Server { return e.grpc }

func (e *Emulator) newGRPC() *grpc.Server {
	return grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(e.handleGRPC),
		grpc.MaxRecvMsgSize(maxGRPCMessage),
	)
}

// isGRPC reports whether r is a gRPC call.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// handleGRPC serves every unary method by name.
func (e *Emulator) handleGRPC(_ any, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "no method")
	}
	var handler func(context.Context, []byte) ([]byte, error)
	switch method {
	case MethodTranslate:
		handler = e.translate
	case MethodExecute:
		handler = e.execute
	case MethodBatchExecute:
		handler = e.batchExecute
	case MethodResults:
		handler = e.results
	case MethodCancel:
		handler = e.cancel
	case MethodStatus:
		handler = e.jobStatus
	default:
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	if err := e.grpcAuth(stream.Context()); err != nil {
		return err
	}
	var req []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	resp, err := handler(stream.Context(), req)
	if err != nil {
		return err
	}
	return stream.SendMsg(&resp)
}

// grpcAuth checks the call's metadata: exactly one "authorization: Bearer
// <access token>" that this emulator signed and that has not expired.
func (e *Emulator) grpcAuth(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "exactly one authorization: Bearer metadata entry is required")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return status.Error(codes.Unauthenticated, "malformed authorization; expected Bearer <access token>")
	}
	if _, err := e.verifyAccess(tok); err != nil {
		if errors.Is(err, errExpired) {
			return status.Error(codes.Unauthenticated, "the access token has expired")
		}
		return status.Error(codes.Unauthenticated, "the access token is invalid")
	}
	return nil
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (e *Emulator) processorKnown(id string) bool {
	return slices.Contains(e.cfg.QuantumProcessors, id)
}

// translate serves TranslateQuilToEncryptedControllerJob:
// {quantum_processor_id 1, quil_program 2, num_shots_value 3 (oneof
// num_shots), options 4} → {job 1: EncryptedControllerJob, metadata 2:
// QuilTranslationMetadata}.
func (e *Emulator) translate(_ context.Context, req []byte) ([]byte, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	var processor, program string
	shots, hasShots := uint64(0), false
	for _, f := range fs {
		switch f.num {
		case 1:
			processor, err = f.str()
		case 2:
			program, err = f.str()
		case 3:
			err = f.wantType(protowire.VarintType)
			shots, hasShots = uint64(uint32(f.v)), true
		case 4:
			err = f.wantType(protowire.BytesType) // translation options: the emulator has one backend
		}
		if err != nil {
			return nil, invalid("malformed request: %v", err)
		}
	}
	switch {
	case processor == "":
		return nil, invalid("quantum_processor_id is required")
	case !e.processorKnown(processor):
		return nil, status.Errorf(codes.NotFound, "quantum processor %q not found", truncate(processor))
	case !hasShots || shots == 0:
		// UNCERTAIN: what QCS does without num_shots; the emulator needs it.
		return nil, invalid("num_shots_value must be set and positive")
	case shots > uint64(e.maxShots()):
		return nil, invalid("num_shots_value %d exceeds the maximum of %d for %s", shots, e.maxShots(), processor)
	}
	prog, err := quil.Parse([]byte(program))
	if err != nil {
		return nil, invalid("quil_program: %v", err)
	}
	nq := processorQubits[processor]
	if nq == 0 {
		nq = defaultProcessorQubits
	}
	for _, q := range prog.Qubits {
		if q >= nq {
			return nil, invalid("quil_program: qubit %d does not exist on %s (%d qubits)", q, processor, nq)
		}
	}
	if len(prog.Qubits) > sim.MaxQubits {
		return nil, invalid("quil_program uses %d qubits; the emulator simulates at most %d", len(prog.Qubits), sim.MaxQubits)
	}
	// The "controller job": the processor, shots and program, sealed under
	// the emulator's key so that only this emulator can execute it.
	var plain []byte
	plain = pbString(plain, 1, processor)
	plain = pbVarint(plain, 2, shots, true)
	plain = pbString(plain, 3, program)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	sealed := e.jobAEAD.Seal(nil, nonce, plain, []byte(e.jobKeyID))

	var enc []byte
	enc = pbString(enc, 1, e.jobKeyID)
	enc = pbBytes(enc, 2, nonce)
	var job []byte
	job = pbBytes(job, 1, sealed)
	job = pbBytes(job, 2, enc)

	// metadata.readout_mappings: "ro[i]" → the readout stream of the
	// measured qubit (UNCERTAIN: QCS's stream names; the emulator uses
	// "q<qubit>").
	var meta []byte
	for _, m := range prog.Measures {
		if m.Region == "" {
			continue
		}
		var entry []byte
		entry = pbString(entry, 1, m.Region+"["+strconv.Itoa(m.Index)+"]")
		entry = pbString(entry, 2, "q"+strconv.Itoa(m.Qubit))
		meta = pbBytes(meta, 1, entry)
	}
	var resp []byte
	resp = pbBytes(resp, 1, job)
	resp = pbBytes(resp, 2, meta)
	return resp, nil
}

// openJob decrypts an EncryptedControllerJob this emulator made.
func (e *Emulator) openJob(b []byte) (processor string, shots int, program string, err error) {
	fs, err := pbDecode(b)
	if err != nil {
		return "", 0, "", err
	}
	var sealed, encBytes []byte
	for _, f := range fs {
		switch f.num {
		case 1:
			err = f.wantType(protowire.BytesType)
			sealed = f.b
		case 2:
			err = f.wantType(protowire.BytesType)
			encBytes = f.b
		}
		if err != nil {
			return "", 0, "", err
		}
	}
	efs, err := pbDecode(encBytes)
	if err != nil {
		return "", 0, "", err
	}
	var keyID string
	var nonce []byte
	for _, f := range efs {
		switch f.num {
		case 1:
			keyID, err = f.str()
		case 2:
			err = f.wantType(protowire.BytesType)
			nonce = f.b
		}
		if err != nil {
			return "", 0, "", err
		}
	}
	if keyID != e.jobKeyID || len(nonce) != e.jobAEAD.NonceSize() {
		return "", 0, "", errors.New("unknown encryption key")
	}
	plain, err := e.jobAEAD.Open(nil, nonce, sealed, []byte(keyID))
	if err != nil {
		return "", 0, "", errors.New("the job does not decrypt")
	}
	pfs, err := pbDecode(plain)
	if err != nil {
		return "", 0, "", err
	}
	for _, f := range pfs {
		switch f.num {
		case 1:
			processor = string(f.b)
		case 2:
			shots = int(f.v)
		case 3:
			program = string(f.b)
		}
	}
	return processor, shots, program, nil
}

// execute serves ExecuteControllerJob: {execution_configurations 3
// (repeated), encrypted 201 (oneof job), quantum_processor_id 101 |
// endpoint_id 102 (oneof target)} → {job_execution_ids 1 (repeated)}.
func (e *Emulator) execute(_ context.Context, req []byte) ([]byte, error) {
	ids, err := e.executeOne(req)
	if err != nil {
		return nil, err
	}
	var resp []byte
	for _, id := range ids {
		resp = pbString(resp, 1, id)
	}
	return resp, nil
}

func (e *Emulator) executeOne(req []byte) ([]string, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	var configs int
	var job []byte
	var processor, endpoint string
	for _, f := range fs {
		switch f.num {
		case 3:
			if err = f.wantType(protowire.BytesType); err == nil {
				err = e.checkConfiguration(f.b)
			}
			configs++
		case 201:
			err = f.wantType(protowire.BytesType)
			job = f.b
		case 101:
			processor, err = f.str()
			endpoint = ""
		case 102:
			endpoint, err = f.str()
			processor = ""
		}
		if err != nil {
			return nil, invalid("malformed request: %v", err)
		}
	}
	switch {
	case job == nil:
		return nil, invalid("an encrypted job is required")
	case endpoint != "":
		// UNCERTAIN: the emulator has no endpoints.
		return nil, status.Errorf(codes.NotFound, "endpoint %q not found", truncate(endpoint))
	case processor == "":
		return nil, invalid("a target (quantum_processor_id or endpoint_id) is required")
	case !e.processorKnown(processor):
		return nil, status.Errorf(codes.NotFound, "quantum processor %q not found", truncate(processor))
	case configs == 0:
		return nil, invalid("at least one execution configuration is required")
	}
	jobProcessor, shots, program, err := e.openJob(job)
	if err != nil {
		return nil, invalid("the encrypted job was not produced by this service: %v", err)
	}
	if jobProcessor != processor {
		return nil, invalid("the job was translated for %s, not %s", jobProcessor, processor)
	}
	prog, err := quil.Parse([]byte(program))
	if err != nil { // translated programs parse; a key compromise would not
		return nil, status.Errorf(codes.Internal, "job program: %v", err)
	}
	ids := make([]string, 0, configs)
	for range configs {
		readout, err := run(prog, shots)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "execution: %v", err)
		}
		x := &execution{id: "ex-" + randomToken()[:22], processor: processor, created: e.now(), readout: readout, shots: shots}
		e.storeExecution(x)
		ids = append(ids, x.id)
	}
	return ids, nil
}

// checkConfiguration reads a JobExecutionConfiguration: memory_values
// (field 3) must be empty, since the accepted Quil subset declares no
// parameters to patch.
func (e *Emulator) checkConfiguration(b []byte) error {
	fs, err := pbDecode(b)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.num == 3 {
			return errors.New("execution_configurations: memory_values patch a region the program does not declare")
		}
	}
	return nil
}

// batchExecute serves BatchExecuteControllerJobs: {requests 1 (repeated
// ExecuteControllerJobRequest)} → {responses 1 (repeated
// ExecuteControllerJobResponse)}.
func (e *Emulator) batchExecute(_ context.Context, req []byte) ([]byte, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	var resp []byte
	for _, f := range fs {
		if f.num != 1 {
			continue
		}
		if err := f.wantType(protowire.BytesType); err != nil {
			return nil, invalid("malformed request: %v", err)
		}
		ids, err := e.executeOne(f.b)
		if err != nil {
			return nil, err
		}
		var one []byte
		for _, id := range ids {
			one = pbString(one, 1, id)
		}
		resp = pbBytes(resp, 1, one)
	}
	return resp, nil
}

// run simulates prog for shots shots and returns, per measured qubit's
// readout stream, one bit per shot.
func run(prog *quil.Program, shots int) (map[string][]int32, error) {
	dense := map[int]int{}
	for i, q := range prog.Qubits {
		dense[q] = i
	}
	n := max(len(prog.Qubits), 1)
	st, err := sim.New(n)
	if err != nil {
		return nil, err
	}
	for _, op := range prog.Ops {
		switch op.Name {
		case "i":
		case "cnot", "cz":
			m, _ := sim.GateMatrix(map[string]string{"cnot": "x", "cz": "z"}[op.Name], 0)
			err = st.ApplyMatrix(m, dense[op.Qubits[1]], dense[op.Qubits[0]])
		default:
			var rot float64
			if len(op.Params) > 0 {
				rot = op.Params[0]
			}
			var m sim.Matrix
			if m, err = sim.GateMatrix(op.Name, rot); err == nil {
				err = st.ApplyMatrix(m, dense[op.Qubits[0]])
			}
		}
		if err != nil {
			return nil, err
		}
	}
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	outcomes := make([]int, 0, shots)
	for state, c := range st.Sample(shots, rng) {
		for range c {
			outcomes = append(outcomes, state)
		}
	}
	rng.Shuffle(len(outcomes), func(i, j int) { outcomes[i], outcomes[j] = outcomes[j], outcomes[i] })
	out := map[string][]int32{}
	for _, m := range prog.Measures {
		if m.Region == "" {
			continue
		}
		vals := make([]int32, len(outcomes))
		bit := dense[m.Qubit]
		for i, s := range outcomes {
			vals[i] = int32(s >> bit & 1)
		}
		out["q"+strconv.Itoa(m.Qubit)] = vals
	}
	return out, nil
}

func (e *Emulator) storeExecution(x *execution) {
	e.execMu.Lock()
	defer e.execMu.Unlock()
	if len(e.execOrder) >= maxExecutions {
		delete(e.execs, e.execOrder[0])
		e.execOrder = e.execOrder[1:]
	}
	e.execs[x.id] = x
	e.execOrder = append(e.execOrder, x.id)
}

// state returns an execution's status now: queued for the first half of
// the delay, running for the second, then succeeded (or canceled).
func (e *Emulator) state(x *execution) int {
	age := e.now().Sub(x.created)
	switch {
	case x.canceled:
		return StatusCanceled
	case age < e.execDelay()/2:
		return StatusQueued
	case age < e.execDelay():
		return StatusRunning
	}
	return StatusSucceeded
}

func (e *Emulator) lookup(id string) (*execution, int, bool) {
	e.execMu.Lock()
	defer e.execMu.Unlock()
	x, ok := e.execs[id]
	if !ok {
		return nil, 0, false
	}
	return x, e.state(x), true
}

// jobStatus serves GetControllerJobStatus: {job_id 1} → {status 1}.
func (e *Emulator) jobStatus(_ context.Context, req []byte) ([]byte, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	var id string
	for _, f := range fs {
		if f.num == 1 {
			if id, err = f.str(); err != nil {
				return nil, invalid("malformed request: %v", err)
			}
		}
	}
	_, st, ok := e.lookup(id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", truncate(id))
	}
	return pbVarint(nil, 1, uint64(st), true), nil
}

// results serves GetControllerJobResults: {job_execution_id 1,
// quantum_processor_id 101 | endpoint_id 102} → {result 1:
// ControllerJobExecutionResult{readout_values 2 map<string,
// ReadoutValues{integer_values 1 {values 1}}>, status 3,
// execution_duration_microseconds 5}}. It waits for an unfinished
// execution to finish (UNCERTAIN: whether QCS long-polls or refuses).
func (e *Emulator) results(ctx context.Context, req []byte) ([]byte, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	var id, processor string
	for _, f := range fs {
		switch f.num {
		case 1:
			id, err = f.str()
		case 101:
			processor, err = f.str()
		case 102:
			return nil, status.Error(codes.NotFound, "endpoint not found")
		}
		if err != nil {
			return nil, invalid("malformed request: %v", err)
		}
	}
	if processor == "" {
		return nil, invalid("a target (quantum_processor_id) is required")
	}
	for {
		x, st, ok := e.lookup(id)
		if !ok || x.processor != processor {
			return nil, status.Errorf(codes.NotFound, "job execution %q not found on %s", truncate(id), truncate(processor))
		}
		if st == StatusSucceeded || st == StatusCanceled {
			return encodeResult(x, st), nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(e.execDelay() / 4):
		}
	}
}

func encodeResult(x *execution, st int) []byte {
	var res []byte
	if st == StatusSucceeded {
		keys := make([]string, 0, len(x.readout))
		for k := range x.readout {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var packed []byte
			for _, v := range x.readout[k] {
				packed = protowire.AppendVarint(packed, uint64(int64(v)))
			}
			var ints []byte
			if len(packed) > 0 {
				ints = pbBytes(ints, 1, packed)
			}
			rv := pbBytes(nil, 1, ints) // ReadoutValues.integer_values
			var entry []byte
			entry = pbString(entry, 1, k)
			entry = pbBytes(entry, 2, rv)
			res = pbBytes(res, 2, entry)
		}
		res = pbVarint(res, 3, resultSuccess, true)
		res = pbVarint(res, 5, uint64(x.shots)*10, false) // 10 µs a shot
	} else {
		res = pbVarint(res, 3, resultUserCancellation, true)
		res = pbString(res, 4, "canceled before execution")
	}
	return pbBytes(nil, 1, res)
}

// cancel serves CancelControllerJobs: {job_ids 1 (repeated)} → {}. Only
// queued executions are canceled; others, and unknown ids, are left as
// they are (best effort, as the proto documents).
func (e *Emulator) cancel(_ context.Context, req []byte) ([]byte, error) {
	fs, err := pbDecode(req)
	if err != nil {
		return nil, invalid("malformed request: %v", err)
	}
	e.execMu.Lock()
	defer e.execMu.Unlock()
	for _, f := range fs {
		if f.num != 1 {
			continue
		}
		id, err := f.str()
		if err != nil {
			return nil, invalid("malformed request: %v", err)
		}
		if x, ok := e.execs[id]; ok && e.state(x) == StatusQueued {
			x.canceled = true
		}
	}
	return []byte{}, nil
}

func (e *Emulator) maxShots() int {
	if e.cfg.MaxShots > 0 {
		return e.cfg.MaxShots
	}
	return DefaultMaxShots
}

func (e *Emulator) execDelay() time.Duration {
	if e.cfg.ExecutionDelay > 0 {
		return e.cfg.ExecutionDelay
	}
	return DefaultExecutionDelay
}

// newJobKey makes the key encrypted jobs are sealed under.
func newJobKey() (cipher.AEAD, string, error) {
	var k [32]byte
	_, _ = rand.Read(k[:])
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, "", err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(k[:])
	return aead, "emu-" + hex.EncodeToString(sum[:6]), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
