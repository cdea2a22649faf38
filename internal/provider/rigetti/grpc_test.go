package rigetti

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/qbroker/qbroker/internal/circuit/quil"
	"github.com/qbroker/qbroker/internal/provider"
)

const bell = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"

func str(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func msg(b []byte, num protowire.Number, m []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
}

func vint(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func translation(shots uint64) []byte { return vint(str(str(nil, 1, "Ankaa-3"), 2, bell), 3, shots) }

func TestParseSubmit(t *testing.T) {
	s, err := Adapter{}.ParseSubmit(translation(500))
	if err != nil {
		t.Fatal(err)
	}
	if s.Device != "Ankaa-3" || s.Shots != 500 || s.Qubits != 2 || s.ProgramSHA256 != quil.Digest([]byte(bell)) {
		t.Fatalf("got %+v", s)
	}
	// Translation options that only pick a backend are fine.
	if _, err := (Adapter{}).ParseSubmit(msg(translation(10), 4, msg(nil, 102, nil))); err != nil {
		t.Fatalf("options v2: %v", err)
	}
	for _, tc := range []struct {
		what string
		in   []byte
		want string
	}{
		{"no shots", str(str(nil, 1, "Ankaa-3"), 2, bell), "num_shots_value is required"},
		{"zero shots", translation(0), "num_shots_value is required"},
		{"shots twice", vint(translation(10), 3, 100000), "more than once"},
		{"processor twice", str(translation(10), 1, "Cepheus-1-108Q"), "more than once"},
		{"unknown field", str(translation(10), 9, "x"), "field 9"},
		{"wrong wire type", vint(str(nil, 1, "Ankaa-3"), 2, 1), "wire type"},
		{"backend options", msg(translation(10), 4, msg(nil, 101, []byte{8, 1})), "backend options"},
		{"two backends", msg(translation(10), 4, msg(msg(nil, 101, nil), 102, nil)), "more than one translation backend"},
		{"no processor", vint(str(nil, 2, bell), 3, 1), "quantum_processor_id"},
		{"quil outside the subset", vint(str(str(nil, 1, "Ankaa-3"), 2, "PRAGMA X\n"+bell), 3, 1), "PRAGMA"},
		{"shots beyond uint32", translation(1 << 33), "uint32"},
		{"truncated", translation(10)[:5], "unexpected EOF"},
	} {
		if _, err := (Adapter{}).ParseSubmit(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
}

func encrypted(job, key, nonce string) []byte {
	return msg(str(nil, 1, job), 2, str(str(nil, 1, key), 2, nonce))
}

func TestTicketAndExecute(t *testing.T) {
	job := encrypted("sealed", "k1", "nonce")
	answer := msg(msg(nil, 1, job), 2, msg(nil, 1, str(str(nil, 1, "ro[0]"), 2, "q0")))
	ticket, err := Adapter{}.Ticket(answer)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(extra []byte, job []byte) []byte {
		return append(str(msg(msg(nil, 3, nil), 201, job), 101, "Ankaa-3"), extra...)
	}
	x, err := Adapter{}.ParseExecute(exec(nil, job))
	if err != nil || x.Ticket != ticket || x.Device != "Ankaa-3" {
		t.Fatalf("execute %+v %v, ticket %s", x, err, ticket)
	}
	// Re-encoded with the fields in another order: the same ticket.
	reordered := msg(msg(nil, 2, str(str(nil, 2, "nonce"), 1, "k1")), 1, []byte("sealed"))
	if x, err := (Adapter{}).ParseExecute(exec(nil, reordered)); err != nil || x.Ticket != ticket {
		t.Fatalf("reordered: %+v %v", x, err)
	}
	if x, _ := (Adapter{}).ParseExecute(exec(nil, encrypted("sealed", "k1", "other"))); x.Ticket == ticket {
		t.Fatal("another nonce gives the same ticket")
	}
	for _, tc := range []struct {
		what string
		in   []byte
		want string
	}{
		{"two configurations", exec(msg(nil, 3, nil), job), "exactly one execution configuration"},
		{"memory values", str(msg(msg(nil, 3, msg(nil, 3, nil)), 201, job), 101, "Ankaa-3"), "memory_values"},
		{"endpoint", str(msg(msg(nil, 3, nil), 201, job), 102, "e1"), "endpoint_id"},
		{"no target", msg(msg(nil, 3, nil), 201, job), "quantum_processor_id"},
		{"no job", str(msg(nil, 3, nil), 101, "Ankaa-3"), "encrypted job is required"},
		{"two jobs", exec(msg(nil, 201, job), job), "more than once"},
		{"unknown field", exec(str(nil, 4, "x"), job), "field 4"},
		{"unknown job field", exec(nil, append(bytes(job), str(nil, 3, "x")...)), "field 3"},
	} {
		if _, err := (Adapter{}).ParseExecute(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
	if id, err := (Adapter{}).ExecutedJob(str(nil, 1, "ex-1")); err != nil || id != "ex-1" {
		t.Fatalf("executed job %q %v", id, err)
	}
	if _, err := (Adapter{}).ExecutedJob(str(str(nil, 1, "a"), 1, "b")); err == nil {
		t.Fatal("two execution ids accepted")
	}
}

func bytes(b []byte) []byte { return append([]byte(nil), b...) }

func TestParseJobsAndOutcome(t *testing.T) {
	a := Adapter{}
	ref, err := a.ParseJobs(provider.GRPCResult, str(str(nil, 1, "ex-1"), 101, "Ankaa-3"))
	if err != nil || len(ref.IDs) != 1 || ref.Device != "Ankaa-3" {
		t.Fatalf("results ref %+v %v", ref, err)
	}
	if ref, err := a.ParseJobs(provider.GRPCCancel, str(str(nil, 1, "a"), 1, "b")); err != nil || len(ref.IDs) != 2 {
		t.Fatalf("cancel ref %+v %v", ref, err)
	}
	for _, tc := range []struct {
		kind provider.GRPCKind
		in   []byte
	}{
		{provider.GRPCRead, str(str(nil, 1, "a"), 1, "b")},   // job_id is singular
		{provider.GRPCRead, str(str(nil, 1, "a"), 101, "x")}, // status has no target
		{provider.GRPCResult, str(str(nil, 1, "a"), 102, "e")},
		{provider.GRPCRead, nil},
	} {
		if _, err := a.ParseJobs(tc.kind, tc.in); err == nil {
			t.Errorf("kind %d %x accepted", tc.kind, tc.in)
		}
	}
	if o, ok, _ := a.Outcome(provider.GRPCRead, vint(nil, 1, 3)); !ok || !o.Terminal || o.Status != "succeeded" {
		t.Fatalf("succeeded: %+v", o)
	}
	if o, ok, _ := a.Outcome(provider.GRPCRead, vint(nil, 1, 1)); !ok || o.Terminal {
		t.Fatalf("queued: %+v", o)
	}
	o, ok, _ := a.Outcome(provider.GRPCResult, msg(nil, 1, vint(vint(nil, 3, 1), 5, 2_500_000)))
	if !ok || o.Status != "succeeded" || o.QPUSeconds == nil || *o.QPUSeconds != 2.5 {
		t.Fatalf("result: %+v", o)
	}
	if m, b := a.CancelCall("ex-1"); m != MethodCancel || string(b) != string(str(nil, 1, "ex-1")) {
		t.Fatal("cancel call")
	}
	if a.Classify(MethodBatchExecute) != provider.GRPCRefused || a.Classify("/x.Y/Z") != provider.GRPCRefused || a.Classify(MethodTranslate) != provider.GRPCSubmit {
		t.Fatal("classify")
	}
}

// FuzzParse: no message makes the adapter panic, and an accepted
// submission is consistent with what it read.
func FuzzParse(f *testing.F) {
	job := encrypted("sealed", "k1", "nonce")
	for _, seed := range [][]byte{translation(10), msg(translation(10), 4, msg(nil, 101, nil)),
		str(msg(msg(nil, 3, nil), 201, job), 101, "Ankaa-3"), msg(msg(nil, 1, job), 2, nil), vint(nil, 1, 3),
		str(str(nil, 1, "ex-1"), 101, "Ankaa-3"), {0xff, 0xff}} {
		f.Add(seed)
	}
	a := Adapter{}
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := a.ParseSubmit(b); err == nil && (s.Shots < 1 || s.Device == "" || len(s.ProgramSHA256) != 64) {
			t.Fatalf("accepted %+v", s)
		}
		if x, err := a.ParseExecute(b); err == nil && (x.Device == "" || len(x.Ticket) != 64) {
			t.Fatalf("accepted %+v", x)
		}
		_, _ = a.Ticket(b)
		_, _ = a.ExecutedJob(b)
		for _, k := range []provider.GRPCKind{provider.GRPCRead, provider.GRPCResult, provider.GRPCCancel} {
			if ref, err := a.ParseJobs(k, b); err == nil && len(ref.IDs) == 0 {
				t.Fatal("accepted a call naming no job")
			}
			_, _, _ = a.Outcome(k, b)
		}
	})
}
