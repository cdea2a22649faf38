package braketsim

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
)

// apiError is an error answer. code is the AWS error code of the service
// the call was addressed to; the renderer picks the wire shape.
type apiError struct {
	status int
	code   string
	msg    string
	// s3Extra are additional elements of an S3 <Error> (Key, BucketName…).
	s3Extra []xmlField
}

type xmlField struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// authKind is a class of authentication failure; each service names it
// differently.
type authKind int

const (
	authMissing           authKind = iota // no credentials at all
	authIncomplete                        // malformed Authorization / query auth
	authBadSignature                      // signature or scope mismatch
	authSkew                              // X-Amz-Date too far from now
	authUnknownKey                        // access key id not known
	authBadToken                          // session key with a missing or wrong token
	authExpired                           // session expired
	authContentSHA                        // S3: x-amz-content-sha256 does not match the body
	authMissingContentSHA                 // S3: x-amz-content-sha256 absent
)

// authError returns the error svc answers for a failure of kind k. msg
// replaces the service's standard message when not empty.
func authError(svc string, k authKind, msg string) *apiError {
	type answer struct {
		status    int
		code, msg string
	}
	const (
		sigMsg   = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
		s3SigMsg = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
		tokenMsg = "The security token included in the request is invalid."
		expMsg   = "The security token included in the request is expired"
	)
	var a answer
	switch svc {
	case svcBraket:
		switch k {
		case authMissing:
			a = answer{403, "MissingAuthenticationTokenException", "Missing Authentication Token"}
		case authIncomplete:
			a = answer{400, "IncompleteSignatureException", "Authorization header is malformed."}
		case authBadSignature, authSkew:
			a = answer{403, "InvalidSignatureException", sigMsg}
		case authUnknownKey, authBadToken:
			a = answer{403, "UnrecognizedClientException", tokenMsg}
		case authExpired:
			a = answer{403, "ExpiredTokenException", expMsg}
		default:
			a = answer{403, "InvalidSignatureException", sigMsg}
		}
	case svcSTS, svcIAM:
		switch k {
		case authMissing:
			a = answer{403, "MissingAuthenticationToken", "Request is missing Authentication Token"}
		case authIncomplete:
			a = answer{400, "IncompleteSignature", "Authorization header is malformed."}
		case authBadSignature, authSkew:
			a = answer{403, "SignatureDoesNotMatch", sigMsg}
		case authUnknownKey, authBadToken:
			a = answer{403, "InvalidClientTokenId", tokenMsg}
		case authExpired:
			a = answer{403, "ExpiredToken", expMsg}
		default:
			a = answer{403, "SignatureDoesNotMatch", sigMsg}
		}
	default: // s3
		switch k {
		case authMissing:
			a = answer{403, "AccessDenied", "Access Denied"}
		case authIncomplete:
			a = answer{400, "AuthorizationHeaderMalformed", "The authorization header is malformed."}
		case authBadSignature:
			a = answer{403, "SignatureDoesNotMatch", s3SigMsg}
		case authSkew:
			a = answer{403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."}
		case authUnknownKey:
			a = answer{403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."}
		case authBadToken:
			a = answer{400, "InvalidToken", "The provided token is malformed or otherwise invalid."}
		case authExpired:
			a = answer{400, "ExpiredToken", "The provided token has expired."}
		case authContentSHA:
			a = answer{400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}
		case authMissingContentSHA:
			a = answer{400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"}
		}
	}
	if msg != "" && !(svc == svcS3 && k == authSkew) {
		a.msg = msg
	}
	return &apiError{status: a.status, code: a.code, msg: a.msg}
}

func tooLargeCode(svc string) string {
	switch svc {
	case svcS3:
		return "EntityTooLarge"
	case svcSTS, svcIAM:
		return "ValidationError"
	default:
		return "ValidationException"
	}
}

func badRequestCode(svc string) string {
	switch svc {
	case svcS3:
		return "InvalidRequest"
	case svcSTS, svcIAM:
		return "InvalidParameterValue"
	default:
		return "ValidationException"
	}
}

// fail writes e in the wire shape of c's service.
func (c *call) fail(e *apiError) {
	switch c.svc {
	case svcBraket:
		h := c.w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-Errortype", e.code)
		h.Set("X-Amzn-Requestid", c.reqID)
		body, _ := json.Marshal(map[string]string{"__type": e.code, "message": e.msg})
		c.w.WriteHeader(e.status)
		_, _ = c.w.Write(body)
	case svcSTS, svcIAM:
		type stsError struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		type stsErrorResponse struct {
			XMLName   xml.Name
			Error     stsError `xml:"Error"`
			RequestID string   `xml:"RequestId"`
		}
		kind := "Sender"
		if e.status >= 500 {
			kind = "Receiver"
		}
		ns := stsNS
		if c.svc == svcIAM {
			ns = iamNS
		}
		c.writeXML(e.status, stsErrorResponse{XMLName: xml.Name{Space: ns, Local: "ErrorResponse"}, Error: stsError{Type: kind, Code: e.code, Message: e.msg}, RequestID: c.reqID})
	default:
		type s3Error struct {
			XMLName   xml.Name   `xml:"Error"`
			Code      string     `xml:"Code"`
			Message   string     `xml:"Message"`
			Extra     []xmlField `xml:",any"`
			RequestID string     `xml:"RequestId"`
			HostID    string     `xml:"HostId"`
		}
		c.w.Header().Set("X-Amz-Request-Id", c.reqID)
		if c.r.Method == http.MethodHead {
			c.w.WriteHeader(e.status)
			return
		}
		c.writeXML(e.status, s3Error{Code: e.code, Message: e.msg, Extra: e.s3Extra, RequestID: c.reqID, HostID: c.reqID})
	}
}

func (c *call) writeXML(status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		c.w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h := c.w.Header()
	if c.svc == svcSTS || c.svc == svcIAM {
		h.Set("Content-Type", "text/xml")
		h.Set("X-Amzn-Requestid", c.reqID)
	} else {
		h.Set("Content-Type", "application/xml")
	}
	h.Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write([]byte(xml.Header))
	_, _ = c.w.Write(body)
}

// writeJSON writes a Braket success answer.
func (c *call) writeJSON(status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		c.fail(&apiError{status: 500, code: "InternalServiceException", msg: "could not encode the response"})
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Requestid", c.reqID)
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}
