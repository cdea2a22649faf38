// Package braketsim is an in-process emulator of the AWS services a Braket
// client touches: STS (AssumeRole, GetCallerIdentity), IAM role inline
// policies (PutRolePolicy, GetRolePolicy, DeleteRolePolicy,
// ListRolePolicies), Amazon Braket's
// restJson1 API (quantum tasks and devices) and the slice of S3 that reads
// task results. It is one http.Handler; each request is routed by the
// service named in its SigV4 credential scope (sts, iam, braket or s3), so
// one listener stands for all four endpoints. Circuits run on the state-vector
// simulator of package sim, so results are physically right.
//
// It is meant to be as strict as AWS where AWS's behaviour is known:
//
//   - Every request must be SigV4-signed (Authorization header, or presigned
//     query parameters). The emulator parses the credential scope, finds the
//     secret (the configured long-term key, or an STS session key, which
//     also needs its X-Amz-Security-Token), and recomputes the signature
//     with aws-sdk-go-v2's v4.Signer over a clone of the request carrying
//     exactly the signed headers, the same X-Amz-Date, the path as received
//     (EscapedPath: Braket and STS double-encode it, S3 does not) and the
//     hash of the body actually received; the comparison is constant-time.
//     S3 requires x-amz-content-sha256, which must match the body unless it
//     is UNSIGNED-PAYLOAD. A signed header that the SDK signer never signs
//     (user-agent, x-amzn-trace-id, expect, transfer-encoding) cannot be
//     reproduced and fails; so does a Date header used instead of X-Amz-Date.
//   - Refusals use each service's codes and shapes: Braket answers
//     {"__type","message"} JSON with X-Amzn-ErrorType (403
//     InvalidSignatureException for a wrong or stale signature,
//     UnrecognizedClientException for an unknown key or bad token,
//     ExpiredTokenException, 403 MissingAuthenticationTokenException); STS
//     answers <ErrorResponse> XML (SignatureDoesNotMatch — also for "Signature
//     expired" —, InvalidClientTokenId, ExpiredToken); S3 answers <Error> XML
//     (SignatureDoesNotMatch, RequestTimeTooSkewed, InvalidAccessKeyId,
//     ExpiredToken, XAmzContentSHA256Mismatch). X-Amz-Date may be at most
//     MaxClockSkew (15 minutes by default, as AWS) from Config.Now.
//   - Requests may be scoped to the home region or to the region of any
//     configured device; other regions are refused. Task ARNs carry the
//     region the request was scoped to, and a device whose ARN names another
//     region is invisible there, as at AWS.
//   - AssumeRole (query protocol, only callable with the long-term key)
//     validates RoleArn, RoleSessionName (2–64 of [\w+=,.@-]),
//     DurationSeconds (900–43200, and at most the role's
//     MaxSessionDuration, 1 hour unless configured), Policy (≤2048 chars, a
//     valid IAM policy without Principal), SourceIdentity, ExternalId and up
//     to 50 Tags.member.N; PolicyArns and unknown parameters are refused
//     rather than ignored, since ignoring a managed session policy would
//     widen the session. It returns ASIA… keys and remembers the session's
//     policy, source identity and tags (see Emulator.Session).
//   - Session credentials are checked against their inline session policy:
//     Allow/Deny, Action/NotAction and Resource/NotResource with * and ?
//     wildcards; an explicit Deny wins; default deny. Condition blocks and
//     policy variables fail closed unless the emulator can evaluate them: an
//     Allow that has one never applies, a Deny that has one always applies.
//     Evaluated: the String*, Arn*, Date*, Bool and Null operators (and
//     …IfExists) on aws:TokenIssueTime (the session's issue time, to the
//     second), aws:userid (AROA…:session-name), aws:SourceIdentity,
//     aws:PrincipalArn (the role ARN), aws:PrincipalTag/…, aws:CurrentTime,
//     aws:EpochTime, aws:PrincipalAccount and aws:PrincipalType; a key
//     absent from the request makes a positive operator false and a negated
//     one true, as IAM. Without a session policy a session has the role's
//     permissions, which the emulator takes to be everything (less its
//     inline Denies, below); the long-term key may do everything (less
//     Config.RootDeniedActions).
//     Actions and resources: braket:CreateQuantumTask on the device ARN and
//     on the new quantum-task ARN (AWS requires both; tags also need
//     braket:TagResource on the task), braket:GetQuantumTask and
//     braket:CancelQuantumTask on the task ARN, braket:GetDevice on the
//     device ARN, braket:SearchDevices on "*", s3:GetObject on
//     arn:aws:s3:::bucket/key (and s3:ListBucket on the bucket before a
//     missing key is reported as NoSuchKey), sts:AssumeRole on the role.
//     Refusals read "User: arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION is
//     not authorized to perform: ACTION on resource: RESOURCE because no
//     session policy allows the ACTION action".
//   - IAM (global: signed for us-east-1 only, query protocol version
//     2010-05-08) keeps inline policies on the roles (the roles of
//     Config.Roles, or any role of the account when it is empty), validates
//     names and documents (MalformedPolicyDocument, 404 NoSuchEntity, 409
//     LimitExceeded past 10,240 non-whitespace characters per role) and
//     returns documents URL-encoded as IAM does. Every call made with a
//     session's credentials is checked against its role's inline policies
//     too: an explicit Deny there wins over any Allow and is refused "… with
//     an explicit deny in an identity-based policy" — which is how AWS cuts
//     off STS sessions already issued (a Deny on aws:TokenIssueTime). The
//     long-term key may do anything Config.RootDeniedActions does not list
//     (refused "because no identity-based policy allows …").
//   - CreateQuantumTask validates members as the model does, then
//     authorizes, then checks the device (unknown or other region → 400
//     ValidationException, OFFLINE → 424 DeviceOfflineException, RETIRED →
//     410 DeviceRetiredException), shots (0 only on simulators, at most the
//     device's shotsRange), the bucket, and the action: a JSON string holding
//     braket.ir.openqasm.program v1 whose source must parse with package
//     qasm and fit the device's qubits. It is idempotent by clientToken (a
//     different body with a used token is 409 ConflictException). Program
//     inputs, program sets, hybrid jobs and reservations are refused.
//   - A task moves CREATED → QUEUED → RUNNING → COMPLETED one StepDelay at a
//     time; cancelling moves it to CANCELLING, then CANCELLED at the next
//     step. Results are written, before the task turns COMPLETED, to
//     s3://outputS3Bucket/outputS3KeyPrefix/<task-id>/results.json as a
//     braket.task_result.gate_model_task_result v1: one measurements row per
//     shot, measuredQubits (the measured qubits in ascending order, or all
//     qubits if the program measures none) with measuredQubits[0] first, as
//     Braket orders bitstrings. Shots = 0 gives exact
//     measurementProbabilities instead (the emulator's stand-in for result
//     types, which it does not implement).
//   - S3 is path-style (/bucket/key) and read-only: GetObject and
//     HeadObject. Range requests are served whole.
package braketsim
