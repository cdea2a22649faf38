package provider

// GRPCKind is what a unary gRPC call does at a provider whose API is gRPC
// (Rigetti QCS), where a job is created in two calls: a submission the
// gateway can read (the job token is checked and redeemed there) that
// returns an opaque ticket, then an execution of exactly that ticket.
type GRPCKind int

// gRPC call kinds.
const (
	GRPCRefused GRPCKind = iota // never forwarded
	GRPCSubmit                  // the readable submission: needs a job token
	GRPCExecute                 // runs a ticket a GRPCSubmit returned: once, by the same agent
	GRPCRead                    // a job's status: the owner's broker token
	GRPCResult                  // a job's results: the owner's broker token
	GRPCCancel                  // cancels jobs: the owner's broker token
)

// Execution is what an execute call names: the ticket (a digest of the
// opaque job a submission returned) and the provider's device id.
type Execution struct {
	Ticket string
	Device string
}

// JobRef is what a read or cancel names: the job ids, and the device id
// when the call carries one ("" when it does not).
type JobRef struct {
	IDs    []string
	Device string
}

// GRPCAdapter is one gRPC provider's gateway front. Messages are the
// protobuf bytes of one unary request or answer. Parsing is strict:
// unknown and repeated singular fields are refused, since the upstream's
// reading of them (protobuf keeps the last) could differ from the
// gateway's.
type GRPCAdapter interface {
	// Name is the provider id in job tokens and job records.
	Name() string
	// Classify names what the full method ("/pkg.Service/Method") does.
	Classify(method string) GRPCKind
	// ParseSubmit reads a GRPCSubmit request.
	ParseSubmit(msg []byte) (Submission, error)
	// Ticket reads the opaque job's digest from a GRPCSubmit answer.
	Ticket(msg []byte) (string, error)
	// ParseExecute reads a GRPCExecute request.
	ParseExecute(msg []byte) (Execution, error)
	// ExecutedJob reads the new job's id from a GRPCExecute answer.
	ExecutedJob(msg []byte) (string, error)
	// ParseJobs reads the job ids a GRPCRead, GRPCResult or GRPCCancel
	// request names.
	ParseJobs(kind GRPCKind, msg []byte) (JobRef, error)
	// Outcome reads a job's state from a GRPCRead or GRPCResult answer;
	// ok is false when the answer says nothing about it.
	Outcome(kind GRPCKind, msg []byte) (o Outcome, ok bool, err error)
	// CancelCall is the request that cancels job id.
	CancelCall(id string) (method string, msg []byte)
}
