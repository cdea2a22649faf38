package braketsim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	maxPresignAge   = 7 * 24 * time.Hour
)

// scope is the credential scope of a request, as far as it could be parsed.
type scope struct {
	keyID, date, region, service string
}

// sigInput is what a request claims about its signature.
type sigInput struct {
	scope         scope
	signedHeaders string // as sent: lower-case names joined by ';'
	signature     string
	amzDate       string
	token         string
	presigned     bool
	expires       time.Duration // presigned only
}

// principal is the authenticated caller.
type principal struct {
	arn    string   // IAM user or assumed-role session ARN
	userID string   // AIDA… or AROA…:session
	sess   *session // nil for the long-term (root) key
}

// authenticate verifies r's SigV4 signature over body and returns the
// caller. The scope is returned even on failure so that the error can be
// rendered in the addressed service's shape.
func (e *Emulator) authenticate(r *http.Request, body []byte) (*principal, scope, *apiError) {
	in, problem, ok := readSigInput(r)
	if !ok {
		return nil, scope{}, authError(guessService(r), authMissing, "")
	}
	svc := in.scope.service
	switch svc {
	case svcSTS, svcBraket, svcS3, svcIAM:
	default:
		guessed := guessService(r)
		if problem != "" {
			return nil, scope{}, authError(guessed, authIncomplete, problem)
		}
		return nil, scope{}, authError(guessed, authBadSignature,
			fmt.Sprintf("Credential should be scoped to correct service: '%s'.", guessed))
	}
	sc := in.scope
	if problem != "" {
		return nil, sc, authError(svc, authIncomplete, problem)
	}
	if svc == svcIAM && sc.region != iamSigningRegion {
		// IAM is global: its one endpoint takes only us-east-1 signatures.
		return nil, sc, authError(svc, authBadSignature, fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", sc.region))
	}
	if svc != svcIAM && !e.regions[sc.region] {
		if svc == svcS3 {
			return nil, sc, authError(svc, authIncomplete, fmt.Sprintf(
				"The authorization header is malformed; the region '%s' is wrong; expecting '%s'", sc.region, e.cfg.Region))
		}
		return nil, sc, authError(svc, authBadSignature, "Credential should be scoped to a valid region.")
	}
	t, err := time.Parse(amzDateFormat, in.amzDate)
	if err != nil {
		return nil, sc, authError(svc, authIncomplete, fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'.", in.amzDate))
	}
	if sc.date != in.amzDate[:8] {
		return nil, sc, authError(svc, authBadSignature, fmt.Sprintf(
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			sc.date, in.amzDate[:8], in.amzDate))
	}
	signed := strings.Split(in.signedHeaders, ";")
	if !slices.Contains(signed, "host") {
		return nil, sc, authError(svc, authIncomplete, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if aerr := e.checkTime(svc, in, t); aerr != nil {
		return nil, sc, aerr
	}
	payloadHash, aerr := payloadHash(svc, r, in, body)
	if aerr != nil {
		return nil, sc, aerr
	}
	p, secret, aerr := e.lookupKey(svc, in)
	if aerr != nil {
		return nil, sc, aerr
	}
	if !signatureMatches(r, in, signed, len(body), payloadHash, secret, t) {
		return nil, sc, authError(svc, authBadSignature, "")
	}
	return p, sc, nil
}

// readSigInput extracts the claimed signature from the Authorization header
// or, failing that, from presigned query parameters. ok is false when the
// request carries no credentials at all; problem describes a malformed one.
func readSigInput(r *http.Request) (in sigInput, problem string, ok bool) {
	authz := r.Header.Values("Authorization")
	q := r.URL.Query()
	switch {
	case len(authz) > 1:
		return in, "Only one Authorization header may be sent.", true
	case len(authz) == 1:
		in, problem = parseAuthorization(authz[0])
		in.amzDate = r.Header.Get("X-Amz-Date")
		if in.amzDate == "" && problem == "" {
			problem = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
		}
		in.token = r.Header.Get("X-Amz-Security-Token")
		if len(r.Header.Values("X-Amz-Security-Token")) > 1 && problem == "" {
			problem = "Only one X-Amz-Security-Token header may be sent."
		}
		return in, problem, true
	case q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential") || q.Has("X-Amz-Signature"):
		in, problem = parsePresigned(q)
		return in, problem, true
	default:
		return in, "", false
	}
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
// Signature=…".
func parseAuthorization(v string) (sigInput, string) {
	var in sigInput
	alg, rest, _ := strings.Cut(v, " ")
	if alg != sigAlgorithm {
		return in, fmt.Sprintf("Unsupported AWS 'algorithm': '%s'.", alg)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, val, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return in, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters as key=value pairs."
		}
		if _, dup := fields[k]; dup {
			return in, fmt.Sprintf("Authorization header repeats the '%s' parameter.", k)
		}
		fields[k] = val
	}
	var problem string
	in.scope, problem = parseCredential(fields["Credential"])
	in.signedHeaders = fields["SignedHeaders"]
	in.signature = fields["Signature"]
	for _, name := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[name] == "" && problem == "" {
			problem = fmt.Sprintf("Authorization header requires '%s' parameter.", name)
		}
	}
	return in, problem
}

// parsePresigned reads the X-Amz-* query parameters of a presigned URL.
func parsePresigned(q url.Values) (sigInput, string) {
	in := sigInput{presigned: true}
	for k, vs := range q {
		if strings.HasPrefix(k, "X-Amz-") && len(vs) > 1 {
			return in, fmt.Sprintf("Query parameter %s may appear only once.", k)
		}
	}
	var problem string
	in.scope, problem = parseCredential(q.Get("X-Amz-Credential"))
	in.signedHeaders = q.Get("X-Amz-SignedHeaders")
	in.signature = q.Get("X-Amz-Signature")
	in.amzDate = q.Get("X-Amz-Date")
	in.token = q.Get("X-Amz-Security-Token")
	for _, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if q.Get(name) == "" && problem == "" {
			problem = fmt.Sprintf("Query-string authentication requires the %s parameter.", name)
		}
	}
	if alg := q.Get("X-Amz-Algorithm"); alg != sigAlgorithm && problem == "" {
		problem = fmt.Sprintf("Unsupported AWS 'algorithm': '%s'.", alg)
	}
	if problem == "" {
		secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignAge {
			problem = "X-Amz-Expires must be a number of seconds from 1 to 604800."
		}
		in.expires = time.Duration(secs) * time.Second
	}
	return in, problem
}

// parseCredential parses "AKID/yyyymmdd/region/service/aws4_request".
func parseCredential(v string) (scope, string) {
	parts := strings.Split(v, "/")
	if len(parts) != 5 {
		return scope{}, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term."
	}
	sc := scope{keyID: parts[0], date: parts[1], region: parts[2], service: parts[3]}
	if parts[4] != "aws4_request" {
		return sc, fmt.Sprintf("Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", parts[4])
	}
	if sc.keyID == "" {
		return sc, "Credential must name an access key id."
	}
	return sc, ""
}

// checkTime enforces the clock skew, and a presigned URL's expiry.
func (e *Emulator) checkTime(svc string, in sigInput, t time.Time) *apiError {
	now := e.now().UTC()
	skew := e.cfg.MaxClockSkew
	mins := int(skew / time.Minute)
	if in.presigned {
		if t.After(now.Add(skew)) {
			return authError(svc, authSkew, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %d min.)",
				in.amzDate, now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), mins))
		}
		if !now.Before(t.Add(in.expires)) {
			if svc == svcS3 {
				return &apiError{status: http.StatusForbidden, code: "AccessDenied", msg: "Request has expired"}
			}
			return authError(svc, authSkew, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d sec.)",
				t.Add(in.expires).Format(amzDateFormat), now.Format(amzDateFormat), now.Format(amzDateFormat), int(in.expires/time.Second)))
		}
		return nil
	}
	switch {
	case t.Before(now.Add(-skew)):
		return authError(svc, authSkew, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d min.)",
			in.amzDate, now.Add(-skew).Format(amzDateFormat), now.Format(amzDateFormat), mins))
	case t.After(now.Add(skew)):
		return authError(svc, authSkew, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %d min.)",
			in.amzDate, now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), mins))
	}
	return nil
}

// payloadHash returns the payload hash to sign with. S3 takes it from
// x-amz-content-sha256, which must match the body unless it is
// UNSIGNED-PAYLOAD; the other services hash the body received.
func payloadHash(svc string, r *http.Request, in sigInput, body []byte) (string, *apiError) {
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	if svc != svcS3 {
		return actual, nil
	}
	claimed := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case claimed == "" && in.presigned:
		return unsignedPayload, nil
	case claimed == "":
		return "", authError(svc, authMissingContentSHA, "")
	case claimed == unsignedPayload:
		return claimed, nil
	case strings.HasPrefix(claimed, "STREAMING-"):
		return "", &apiError{status: http.StatusNotImplemented, code: "NotImplemented", msg: "The emulator does not support streaming (chunked) payload signing."}
	case claimed != actual:
		return "", authError(svc, authContentSHA, "")
	}
	return actual, nil
}

// lookupKey finds the secret of the access key in in.scope, checking the
// session token and expiry of session keys.
func (e *Emulator) lookupKey(svc string, in sigInput) (*principal, string, *apiError) {
	keyID := in.scope.keyID
	if e.cfg.RootAccessKeyID != "" && subtle.ConstantTimeCompare([]byte(keyID), []byte(e.cfg.RootAccessKeyID)) == 1 {
		if in.token != "" {
			// A session token sent with a long-term key is refused.
			return nil, "", authError(svc, authBadToken, "")
		}
		p := &principal{arn: fmt.Sprintf("arn:aws:iam::%s:user/%s", e.cfg.AccountID, e.cfg.RootUserName), userID: e.rootID}
		return p, e.cfg.RootSecretAccessKey, nil
	}
	e.mu.Lock()
	s, ok := e.sessions[keyID]
	e.mu.Unlock()
	if !ok {
		return nil, "", authError(svc, authUnknownKey, "")
	}
	if in.token == "" {
		if svc == svcS3 {
			return nil, "", authError(svc, authUnknownKey, "")
		}
		return nil, "", authError(svc, authBadToken, "")
	}
	got := sha256.Sum256([]byte(in.token))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
		return nil, "", authError(svc, authBadToken, "")
	}
	if !e.now().Before(s.expiration) {
		return nil, "", authError(svc, authExpired, "")
	}
	return &principal{arn: s.arn(e.cfg.AccountID), userID: s.roleID + ":" + s.name, sess: s}, s.secret, nil
}

// signatureMatches recomputes the signature with aws-sdk-go-v2's signer over
// a clone of r that carries exactly the signed headers, and compares it in
// constant time.
func signatureMatches(r *http.Request, in sigInput, signed []string, bodyLen int, payloadHash, secret string, t time.Time) bool {
	c := r.Clone(r.Context())
	c.Body = http.NoBody
	c.Header = http.Header{}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "host" || lk == "content-length" || lk == "authorization" || !slices.Contains(signed, lk) {
			continue
		}
		c.Header[k] = slices.Clone(vs)
	}
	c.ContentLength = 0
	if slices.Contains(signed, "content-length") {
		c.ContentLength = int64(bodyLen)
	}
	svc, region := in.scope.service, in.scope.region
	creds := aws.Credentials{AccessKeyID: in.scope.keyID, SecretAccessKey: secret}
	opts := func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = svc == svcS3
		o.DisableSessionToken = true // the token, if signed, is among the copied headers or query
		o.DisableHeaderHoisting = true
	}
	signer := v4.NewSigner()
	var want, wantHeaders string
	if in.presigned {
		q := c.URL.Query()
		q.Del("X-Amz-Signature")
		c.URL.RawQuery = q.Encode()
		uri, _, err := signer.PresignHTTP(r.Context(), creds, c, payloadHash, svc, region, t, opts)
		if err != nil {
			return false
		}
		u, err := url.Parse(uri)
		if err != nil {
			return false
		}
		want, wantHeaders = u.Query().Get("X-Amz-Signature"), u.Query().Get("X-Amz-SignedHeaders")
	} else {
		if err := signer.SignHTTP(r.Context(), creds, c, payloadHash, svc, region, t, opts); err != nil {
			return false
		}
		got, _ := parseAuthorization(c.Header.Get("Authorization"))
		want, wantHeaders = got.signature, got.signedHeaders
	}
	sigOK := subtle.ConstantTimeCompare([]byte(want), []byte(in.signature)) == 1
	return sigOK && wantHeaders == in.signedHeaders
}
