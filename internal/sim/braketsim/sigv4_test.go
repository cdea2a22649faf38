package braketsim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const searchAll = `{"filters":[]}`

func TestSignatureRefusals(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume("", 900)
	wrongSecret := aws.Credentials{AccessKeyID: rootKey, SecretAccessKey: "not-the-secret"}
	unknown := aws.Credentials{AccessKeyID: "AKIAUNKNOWNKEY000001", SecretAccessKey: rootSecret}
	noToken := sess
	noToken.SessionToken = ""
	badToken := sess
	badToken.SessionToken = strings.ToLower(sess.SessionToken[:40]) + sess.SessionToken[40:]
	if badToken.SessionToken == sess.SessionToken {
		t.Fatal("test token unchanged")
	}
	rootWithToken := rootCreds
	rootWithToken.SessionToken = sess.SessionToken
	stale := func(o *reqOpts) { o.signTime = h.now().Add(-16 * time.Minute) }
	future := func(o *reqOpts) { o.signTime = h.now().Add(16 * time.Minute) }
	tamper := func(o *reqOpts) {
		o.after = func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"filters":{}}`))
		}
	}
	changeSigned := func(o *reqOpts) { o.after = func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") } }
	otherRegion := func(o *reqOpts) { o.region = "eu-west-2" }

	type tc struct {
		name   string
		creds  aws.Credentials
		opt    func(*reqOpts)
		status int
		code   string
		msg    string
	}
	braket := []tc{
		{"wrong secret", wrongSecret, nil, 403, "InvalidSignatureException", "signature we calculated does not match"},
		{"stale X-Amz-Date", rootCreds, stale, 403, "InvalidSignatureException", "Signature expired"},
		{"future X-Amz-Date", rootCreds, future, 403, "InvalidSignatureException", "Signature not yet current"},
		{"tampered body", rootCreds, tamper, 403, "InvalidSignatureException", "does not match"},
		{"changed signed header", rootCreds, changeSigned, 403, "InvalidSignatureException", "does not match"},
		{"unknown key", unknown, nil, 403, "UnrecognizedClientException", "security token included in the request is invalid"},
		{"session key without token", noToken, nil, 403, "UnrecognizedClientException", "invalid"},
		{"session key with a wrong token", badToken, nil, 403, "UnrecognizedClientException", "invalid"},
		{"long-term key with a token", rootWithToken, nil, 403, "UnrecognizedClientException", "invalid"},
		{"region not served", rootCreds, otherRegion, 403, "InvalidSignatureException", "valid region"},
	}
	for _, c := range braket {
		var opts []func(*reqOpts)
		if c.opt != nil {
			opts = append(opts, c.opt)
		}
		res := h.do(c.creds, svcBraket, http.MethodPost, "/devices", []byte(searchAll), opts...)
		expectRefusal(t, "braket: "+c.name, res, c.status, c.code)
		if !strings.Contains(res.message(), c.msg) {
			t.Errorf("braket: %s: message %q lacks %q", c.name, res.message(), c.msg)
		}
	}

	// The same request with valid credentials passes, so the refusals above
	// are due to what each case changed; 14 minutes of skew is within AWS's 15.
	for name, c := range map[string]aws.Credentials{"root": rootCreds, "session": sess} {
		if res := h.do(c, svcBraket, http.MethodPost, "/devices", []byte(searchAll)); res.status != 200 {
			t.Fatalf("%s: %d %s", name, res.status, res.body)
		}
	}
	if res := h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(searchAll), func(o *reqOpts) { o.signTime = h.now().Add(-14 * time.Minute) }); res.status != 200 {
		t.Fatalf("14 min skew: %d %s", res.status, res.body)
	}
	// An unsigned header added after signing does not matter.
	if res := h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(searchAll), func(o *reqOpts) {
		o.after = func(r *http.Request) { r.Header.Set("X-Unsigned", "1") }
	}); res.status != 200 {
		t.Fatalf("unsigned header: %d %s", res.status, res.body)
	}

	// No credentials at all.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/devices", strings.NewReader(searchAll))
	expectRefusal(t, "braket: anonymous", h.send(req), 403, "MissingAuthenticationTokenException")
	req, _ = http.NewRequest(http.MethodPost, h.srv.URL+"/devices", strings.NewReader(searchAll))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+rootKey+"/20260901/us-east-1/braket/aws4_request")
	req.Header.Set("X-Amz-Date", "20260901T000000Z")
	expectRefusal(t, "braket: incomplete Authorization", h.send(req), 400, "IncompleteSignatureException")

	// S3 names the same failures differently.
	s3 := []tc{
		{"wrong secret", wrongSecret, nil, 403, "SignatureDoesNotMatch", ""},
		{"stale", rootCreds, stale, 403, "RequestTimeTooSkewed", ""},
		{"unknown key", unknown, nil, 403, "InvalidAccessKeyId", ""},
		{"wrong token", badToken, nil, 400, "InvalidToken", ""},
		{"content sha mismatch", rootCreds, func(o *reqOpts) {
			o.before = func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64)) }
		}, 400, "XAmzContentSHA256Mismatch", ""},
		{"content sha missing", rootCreds, func(o *reqOpts) {
			o.after = func(r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }
		}, 400, "InvalidRequest", ""},
	}
	for _, c := range s3 {
		var opts []func(*reqOpts)
		if c.opt != nil {
			opts = append(opts, c.opt)
		}
		expectRefusal(t, "s3: "+c.name, h.do(c.creds, svcS3, http.MethodGet, "/"+testBucket+"/k", nil, opts...), c.status, c.code)
	}
}

func TestSTSRefusalsWithSDK(t *testing.T) {
	h := newHarness(t, nil)
	cases := map[string]struct {
		creds aws.Credentials
		code  string
	}{
		"wrong secret": {aws.Credentials{AccessKeyID: rootKey, SecretAccessKey: "nope"}, "SignatureDoesNotMatch"},
		"unknown key":  {aws.Credentials{AccessKeyID: "AKIAUNKNOWNKEY000001", SecretAccessKey: "x"}, "InvalidClientTokenId"},
	}
	for name, c := range cases {
		_, err := h.stsClient(c.creds).AssumeRole(t.Context(), assumeInput("x1"))
		if apiCode(err) != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	// A stale X-Amz-Date on STS is SignatureDoesNotMatch "Signature expired".
	body := []byte("Action=GetCallerIdentity&Version=2011-06-15")
	res := h.do(rootCreds, svcSTS, http.MethodPost, "/", body, func(o *reqOpts) {
		o.contentType = "application/x-www-form-urlencoded"
		o.signTime = h.now().Add(-20 * time.Minute)
	})
	expectRefusal(t, "sts stale", res, 403, "SignatureDoesNotMatch")
	if !strings.Contains(res.message(), "Signature expired") || !strings.Contains(res.message(), "15 min.") {
		t.Errorf("stale message %q", res.message())
	}
	res = h.do(rootCreds, svcSTS, http.MethodPost, "/", body, func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" })
	if res.status != 200 || !strings.Contains(string(res.body), "<GetCallerIdentityResponse") {
		t.Fatalf("raw GetCallerIdentity: %d %s", res.status, res.body)
	}
}

func TestExpiredSessionCredentials(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(tenantPolicy, 900)
	if res := h.do(sess, svcBraket, http.MethodPost, "/devices", []byte(searchAll)); res.status != 200 {
		t.Fatalf("fresh session: %d %s", res.status, res.body)
	}
	h.advance(901 * time.Second) // requests are signed with the emulator's clock
	res := h.do(sess, svcBraket, http.MethodPost, "/devices", []byte(searchAll))
	expectRefusal(t, "braket: expired session", res, 403, "ExpiredTokenException")
	expectRefusal(t, "s3: expired session", h.do(sess, svcS3, http.MethodGet, "/"+testBucket+"/tenant-a/x", nil), 400, "ExpiredToken")
	res = h.do(sess, svcSTS, http.MethodPost, "/", []byte("Action=GetCallerIdentity&Version=2011-06-15"),
		func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" })
	expectRefusal(t, "sts: expired session", res, 403, "ExpiredToken")
	// The long-term key still works.
	if res := h.do(rootCreds, svcBraket, http.MethodPost, "/devices", []byte(searchAll)); res.status != 200 {
		t.Fatalf("root after advance: %d %s", res.status, res.body)
	}
}

func TestPresignedS3URL(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(tenantPolicy, 900)
	v := h.wait(sess, h.create(sess, createBody(SV1ARN, 10, bellSource(), "tenant-a", nil)))
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/"+testBucket+"/"+v.OutputS3Directory+"/results.json?X-Amz-Expires=60", nil)
	uri, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), sess, req, unsignedPayload, svcS3, "us-east-1", h.now(),
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	get := func(u string) response {
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, vs := range hdr {
			if k != "Host" {
				r.Header[k] = vs
			}
		}
		return h.send(r)
	}
	if res := get(uri); res.status != 200 || !bytes.Contains(res.body, []byte("gate_model_task_result")) {
		t.Fatalf("presigned GET: %d %s", res.status, res.body)
	}
	expectRefusal(t, "presigned, tampered signature", get(strings.Replace(uri, "X-Amz-Signature=", "X-Amz-Signature=0", 1)), 403, "SignatureDoesNotMatch")
	h.advance(61 * time.Second)
	expectRefusal(t, "presigned, expired", get(uri), 403, "AccessDenied")
}
