package rigetti

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/qbroker/qbroker/internal/circuit/quil"
	"github.com/qbroker/qbroker/internal/provider"
)

// QCS gRPC methods (full names, as on the wire), from
// qcs-api-client-grpc's translation/service.proto and
// controller/service.proto.
const (
	MethodTranslate    = "/services.translation.Translation/TranslateQuilToEncryptedControllerJob"
	MethodExecute      = "/services.controller.Controller/ExecuteControllerJob"
	MethodBatchExecute = "/services.controller.Controller/BatchExecuteControllerJobs"
	MethodStatus       = "/services.controller.Controller/GetControllerJobStatus"
	MethodResults      = "/services.controller.Controller/GetControllerJobResults"
	MethodCancel       = "/services.controller.Controller/CancelControllerJobs"
)

// DefaultGRPCURL is QCS's gRPC endpoint.
const DefaultGRPCURL = "https://grpc.qcs.rigetti.com"

// maxProgram bounds quil_program (the gateway's body limit also applies).
const maxProgram = 1 << 20

// Adapter is the Rigetti QCS gRPC front's provider.GRPCAdapter: it reads
// the QCS request and answer messages with protowire, by the real protos'
// field numbers.
type Adapter struct{}

var _ provider.GRPCAdapter = Adapter{}

// Name implements provider.GRPCAdapter.
func (Adapter) Name() string { return "rigetti" }

// Classify implements provider.GRPCAdapter. BatchExecuteControllerJobs
// and every method not listed are refused.
func (Adapter) Classify(method string) provider.GRPCKind {
	switch method {
	case MethodTranslate:
		return provider.GRPCSubmit
	case MethodExecute:
		return provider.GRPCExecute
	case MethodStatus:
		return provider.GRPCRead
	case MethodResults:
		return provider.GRPCResult
	case MethodCancel:
		return provider.GRPCCancel
	}
	return provider.GRPCRefused
}

// field is one decoded protobuf field.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// fields decodes msg, refusing fields not in allowed, a singular field
// that appears twice (protobuf keeps the last, so a gateway reading the
// first would be fooled), and wire types other than varint and bytes.
func fields(msg []byte, allowed map[protowire.Number]protowire.Type, repeated ...protowire.Number) ([]field, error) {
	var out []field
	seen := map[protowire.Number]bool{}
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, fmt.Errorf("malformed message: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		want, ok := allowed[num]
		if !ok {
			return nil, fmt.Errorf("field %d is not accepted by the gateway", num)
		}
		if typ != want {
			return nil, fmt.Errorf("field %d has wire type %d, want %d", num, typ, want)
		}
		if seen[num] && !slices.Contains(repeated, num) {
			return nil, fmt.Errorf("field %d appears more than once", num)
		}
		seen[num] = true
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(msg)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(msg)
		default:
			return nil, fmt.Errorf("field %d: wire type %d is not accepted", num, typ)
		}
		if n < 0 {
			return nil, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		msg = msg[n:]
		out = append(out, f)
	}
	return out, nil
}

func (f field) str() (string, error) {
	if !utf8.Valid(f.b) {
		return "", fmt.Errorf("field %d is not valid UTF-8", f.num)
	}
	return string(f.b), nil
}

const (
	varint = protowire.VarintType
	bytes_ = protowire.BytesType
)

// ParseSubmit implements provider.GRPCAdapter for
// TranslateQuilToEncryptedControllerJobRequest{quantum_processor_id 1,
// quil_program 2, num_shots_value 3 (oneof num_shots), options 4}:
// num_shots_value must be present; options, if sent, may only select a
// translation backend (v1 101 or v2 102, both empty messages); the
// program must parse as the Quil subset of package quil (its digest is
// quil.Digest of the program as sent).
func (Adapter) ParseSubmit(msg []byte) (provider.Submission, error) {
	fs, err := fields(msg, map[protowire.Number]protowire.Type{1: bytes_, 2: bytes_, 3: varint, 4: bytes_})
	if err != nil {
		return provider.Submission{}, err
	}
	var s provider.Submission
	var program string
	hasShots := false
	for _, f := range fs {
		switch f.num {
		case 1:
			s.Device, err = f.str()
		case 2:
			program, err = f.str()
		case 3:
			if f.v > 1<<32-1 {
				return provider.Submission{}, errors.New("num_shots_value is not a uint32")
			}
			s.Shots, hasShots = int(f.v), true
		case 4:
			err = checkOptions(f.b)
		}
		if err != nil {
			return provider.Submission{}, err
		}
	}
	switch {
	case s.Device == "":
		return provider.Submission{}, errors.New("quantum_processor_id is required")
	case !hasShots || s.Shots < 1:
		return provider.Submission{}, errors.New("num_shots_value is required and must be positive")
	case len(program) > maxProgram:
		return provider.Submission{}, fmt.Errorf("quil_program is longer than %d bytes", maxProgram)
	}
	p, err := quil.Parse([]byte(program))
	if err != nil {
		return provider.Submission{}, fmt.Errorf("quil_program: %w", err)
	}
	if n := len(p.Qubits); n > 0 {
		s.Qubits = p.Qubits[n-1] + 1
	}
	s.ProgramSHA256 = quil.Digest([]byte(program))
	return s, nil
}

// checkOptions allows TranslationOptions that only pick a backend.
func checkOptions(b []byte) error {
	fs, err := fields(b, map[protowire.Number]protowire.Type{101: bytes_, 102: bytes_})
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	if len(fs) > 1 {
		return errors.New("options: more than one translation backend")
	}
	for _, f := range fs {
		if len(f.b) != 0 {
			return errors.New("options: backend options are not accepted by the gateway")
		}
	}
	return nil
}

// jobDigest is the ticket of an EncryptedControllerJob{job 1, encryption
// 2 {key_id 1, nonce 2}}: a digest of its three values, so that a client
// re-encoding the message it received gets the same ticket.
func jobDigest(b []byte) (string, error) {
	fs, err := fields(b, map[protowire.Number]protowire.Type{1: bytes_, 2: bytes_})
	if err != nil {
		return "", fmt.Errorf("encrypted job: %w", err)
	}
	var job, enc []byte
	for _, f := range fs {
		if f.num == 1 {
			job = f.b
		} else {
			enc = f.b
		}
	}
	efs, err := fields(enc, map[protowire.Number]protowire.Type{1: bytes_, 2: bytes_})
	if err != nil {
		return "", fmt.Errorf("encrypted job encryption: %w", err)
	}
	var keyID, nonce []byte
	for _, f := range efs {
		if f.num == 1 {
			keyID = f.b
		} else {
			nonce = f.b
		}
	}
	if len(job) == 0 {
		return "", errors.New("encrypted job is empty")
	}
	h := sha256.New()
	for _, part := range [][]byte{job, keyID, nonce} {
		h.Write(protowire.AppendBytes(nil, part))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Ticket implements provider.GRPCAdapter for
// TranslateQuilToEncryptedControllerJobResponse{job 1, metadata 2}.
func (Adapter) Ticket(msg []byte) (string, error) {
	fs, err := lenient(msg)
	if err != nil {
		return "", err
	}
	for _, f := range fs {
		if f.num == 1 && f.typ == bytes_ {
			return jobDigest(f.b)
		}
	}
	return "", errors.New("the translation answer has no encrypted job")
}

// lenient decodes an upstream answer, skipping fields the gateway does
// not read (QCS may add some).
func lenient(msg []byte) ([]field, error) {
	var out []field
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case varint:
			f.v, n = protowire.ConsumeVarint(msg)
		case bytes_:
			f.b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		out = append(out, f)
	}
	return out, nil
}

// ParseExecute implements provider.GRPCAdapter for
// ExecuteControllerJobRequest{execution_configurations 3 (repeated),
// encrypted 201 (oneof job), quantum_processor_id 101 | endpoint_id 102
// (oneof target)}: exactly one configuration, with no memory_values (each
// configuration is a separate run of the translated shots, and
// memory_values patch parameters the job token does not bind); a
// quantum_processor_id target (endpoint_id is refused: the gateway cannot
// tell which processor an endpoint is).
func (Adapter) ParseExecute(msg []byte) (provider.Execution, error) {
	fs, err := fields(msg, map[protowire.Number]protowire.Type{3: bytes_, 201: bytes_, 101: bytes_, 102: bytes_}, 3)
	if err != nil {
		return provider.Execution{}, err
	}
	var x provider.Execution
	configs := 0
	var job []byte
	for _, f := range fs {
		switch f.num {
		case 3:
			configs++
			if len(f.b) != 0 {
				return provider.Execution{}, errors.New("execution_configurations: memory_values are not accepted by the gateway")
			}
		case 201:
			job = f.b
		case 101:
			if x.Device, err = f.str(); err != nil {
				return provider.Execution{}, err
			}
		case 102:
			return provider.Execution{}, errors.New("endpoint_id targets are not accepted by the gateway; use quantum_processor_id")
		}
	}
	switch {
	case configs != 1:
		return provider.Execution{}, fmt.Errorf("exactly one execution configuration is accepted, got %d", configs)
	case job == nil:
		return provider.Execution{}, errors.New("an encrypted job is required")
	case x.Device == "":
		return provider.Execution{}, errors.New("quantum_processor_id is required")
	}
	if x.Ticket, err = jobDigest(job); err != nil {
		return provider.Execution{}, err
	}
	return x, nil
}

// ExecutedJob implements provider.GRPCAdapter for
// ExecuteControllerJobResponse{job_execution_ids 1 (repeated)}: exactly
// one id, as exactly one configuration was sent.
func (Adapter) ExecutedJob(msg []byte) (string, error) {
	fs, err := lenient(msg)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, f := range fs {
		if f.num == 1 && f.typ == bytes_ {
			ids = append(ids, string(f.b))
		}
	}
	if len(ids) != 1 || ids[0] == "" || len(ids[0]) > 256 || !utf8.ValidString(ids[0]) {
		return "", fmt.Errorf("want one job execution id, got %d", len(ids))
	}
	return ids[0], nil
}

// ParseJobs implements provider.GRPCAdapter:
// GetControllerJobStatusRequest{job_id 1},
// GetControllerJobResultsRequest{job_execution_id 1,
// quantum_processor_id 101 | endpoint_id 102 (refused)} and
// CancelControllerJobsRequest{job_ids 1 (repeated)}.
func (Adapter) ParseJobs(kind provider.GRPCKind, msg []byte) (provider.JobRef, error) {
	allowed := map[protowire.Number]protowire.Type{1: bytes_}
	var repeated []protowire.Number
	switch kind {
	case provider.GRPCResult:
		allowed[101], allowed[102] = bytes_, bytes_
	case provider.GRPCCancel:
		repeated = append(repeated, 1)
	}
	fs, err := fields(msg, allowed, repeated...)
	if err != nil {
		return provider.JobRef{}, err
	}
	var ref provider.JobRef
	for _, f := range fs {
		s, err := f.str()
		if err != nil {
			return provider.JobRef{}, err
		}
		switch f.num {
		case 1:
			ref.IDs = append(ref.IDs, s)
		case 101:
			ref.Device = s
		case 102:
			return provider.JobRef{}, errors.New("endpoint_id targets are not accepted by the gateway; use quantum_processor_id")
		}
	}
	if len(ref.IDs) == 0 || slices.Contains(ref.IDs, "") {
		return provider.JobRef{}, errors.New("a job id is required")
	}
	if len(ref.IDs) > 100 {
		return provider.JobRef{}, errors.New("at most 100 job ids in one call")
	}
	return ref, nil
}

// Outcome implements provider.GRPCAdapter:
// GetControllerJobStatusResponse{status 1: UNKNOWN 0, QUEUED 1, RUNNING 2,
// SUCCEEDED 3, FAILED 4, CANCELED 5} and GetControllerJobResultsResponse
// {result 1: {status 3: UNKNOWN 0, SUCCESS 1, SERVICE_FAILURE 2,
// USER_FAILURE 3, USER_CANCELLATION 4, execution_duration_microseconds
// 5}} (the duration is reported as QPU time).
func (Adapter) Outcome(kind provider.GRPCKind, msg []byte) (provider.Outcome, bool, error) {
	fs, err := lenient(msg)
	if err != nil {
		return provider.Outcome{}, false, err
	}
	switch kind {
	case provider.GRPCRead:
		for _, f := range fs {
			if f.num == 1 && f.typ == varint {
				st := map[uint64]string{0: "unknown", 1: "queued", 2: "running", 3: "succeeded", 4: "failed", 5: "canceled"}[f.v]
				return provider.Outcome{Status: st, Terminal: f.v >= 3 && f.v <= 5}, st != "", nil
			}
		}
	case provider.GRPCResult:
		for _, f := range fs {
			if f.num != 1 || f.typ != bytes_ {
				continue
			}
			rfs, err := lenient(f.b)
			if err != nil {
				return provider.Outcome{}, false, err
			}
			var o provider.Outcome
			for _, r := range rfs {
				switch {
				case r.num == 3 && r.typ == varint:
					o.Status = map[uint64]string{1: "succeeded", 2: "failed", 3: "failed", 4: "canceled"}[r.v]
					o.Terminal = o.Status != ""
				case r.num == 5 && r.typ == varint:
					secs := float64(r.v) / 1e6
					o.QPUSeconds = &secs
				}
			}
			return o, o.Terminal, nil
		}
	}
	return provider.Outcome{}, false, nil
}

// CancelCall implements provider.GRPCAdapter.
func (Adapter) CancelCall(id string) (string, []byte) {
	b := protowire.AppendTag(nil, 1, bytes_)
	return MethodCancel, protowire.AppendString(b, id)
}
