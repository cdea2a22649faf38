package azure

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
)

// Uploads is what a gateway drives, besides provider.Adapter, for a
// provider whose program is uploaded in one request and named by the job
// creation in another (Azure Quantum's blob flow). Every type in it is
// from the standard library or package provider, so a gateway can declare
// the same interface itself and find it by type assertion.
//
// The sequence (see the package documentation for the full text):
//
//  1. UploadRoute first; "" means the request is the adapter's Route's.
//  2. UploadGrant: the gateway reads the job token with Token, verifies it
//     (signature, expiry; provider must be Name()) WITHOUT redeeming it,
//     and calls Grant with its jti and expiry.
//  3. UploadStaging: the gateway calls ServeStaging; the staging SAS in
//     the URL is the credential (no qbroker token, no upstream call).
//  4. Submit, Read and Cancel routes run as provider.Adapter routes do,
//     except that the upstream call is Send (after Redeem, for Submit)
//     instead of forwarding the request or FetchResult.
type Uploads interface {
	// UploadRoute classifies a request under the prefix: UploadGrant,
	// UploadStaging, or "" for none.
	UploadRoute(method, escapedPath string) string
	// Grant answers POST …/storage/sasUri for the holder of a verified,
	// unredeemed job token (jti, expiring at expires) with the SAS URI of
	// a fresh staging container in the gateway.
	Grant(w http.ResponseWriter, r *http.Request, jti string, expires time.Time)
	// ServeStaging answers a blob-storage request to the staging area
	// (escapedPath is the path under the prefix).
	ServeStaging(w http.ResponseWriter, r *http.Request, escapedPath string)
	// Send makes the upstream calls of a Submit, Read or Cancel route with
	// the broker-minted credential, sending each request it builds with
	// send, and returns the answer for the agent, with no upstream SAS in
	// it. For Submit, body is Prepare's output and Send must be called
	// after the job token is redeemed. For a cancel the gateway makes on
	// its own (a job it could not record), escapedPath may be empty and
	// route.JobID names the job.
	Send(ctx context.Context, route provider.Route, escapedPath string, body []byte, c provider.Credential, send func(*http.Request) (*http.Response, error)) (*http.Response, error)
}

// UploadRoute results.
const (
	UploadGrant   = "grant"   // POST {ws}/storage/sasUri
	UploadStaging = "staging" // any request under /storage/
)

// UploadRoute implements Uploads.
func (a *Adapter) UploadRoute(method, escapedPath string) string {
	if strings.HasPrefix(escapedPath, "/storage/") || escapedPath == "/storage" {
		return UploadStaging
	}
	if rest, ok := a.jobPath(escapedPath); ok && method == http.MethodPost && len(rest) == 2 && rest[0] == "storage" && rest[1] == "sasUri" {
		return UploadGrant
	}
	return ""
}

// Grant implements Uploads. The request body is BlobDetails
// {"containerName"} as the SDKs send it; the name is not used (the
// staging container gets a random one, so agents cannot collide), and a
// blobName (a read grant) is refused: output is read at GET
// {ws}/jobs/{id}/output.
func (a *Adapter) Grant(w http.ResponseWriter, r *http.Request, jti string, expires time.Time) {
	var req struct {
		ContainerName string  `json:"containerName"`
		BlobName      *string `json:"blobName"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	switch {
	case err != nil:
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestContent", "the body must be {\"containerName\": \"…\"}")
		return
	case req.ContainerName == "" || len(req.ContainerName) > 63:
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestContent", "containerName is required")
		return
	case req.BlobName != nil:
		writeAPIError(w, http.StatusForbidden, "AuthorizationFailed", "the qbroker gateway grants upload containers only; read a job's output at GET …/jobs/{id}/output")
		return
	}
	c, err := a.stage.grant(jti, expires)
	if err != nil {
		var se *errStaging
		if errors.As(err, &se) {
			writeAPIError(w, se.status, se.code, se.msg)
			return
		}
		writeAPIError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "no upload container")
		return
	}
	q := url.Values{"sv": {"qbroker-1"}, "sr": {"c"}, "sp": {"cw"}, "se": {c.expires.UTC().Format(time.RFC3339)}, "sig": {c.sig}}
	uri := a.publicBase(r) + "/storage/" + c.name + "?" + q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.Marshal(map[string]string{"sasUri": uri})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// publicBase is the external URL of the front for request r.
func (a *Adapter) publicBase(r *http.Request) string {
	if a.public != "" {
		return a.public
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + a.prefix
}

// ServeStaging implements Uploads: the slice of Blob Storage an Azure SDK
// uses to upload job input, path-style (/storage/<container>[/<blob>]):
// Get Container Properties (GET/HEAD ?restype=container, 200), Create
// Container (409: it exists from the grant) and Put Blob of inputData
// (BlockBlob, no content encoding, at most MaxBlobBytes, written once).
// The sig of the granted SAS authorizes; everything else is refused.
func (a *Adapter) ServeStaging(w http.ResponseWriter, r *http.Request, escapedPath string) {
	rest := strings.TrimPrefix(escapedPath, "/storage/")
	name, blob, hasBlob := strings.Cut(rest, "/")
	q := r.URL.Query()
	sig := ""
	if len(q["sig"]) == 1 {
		sig = q.Get("sig")
	}
	if _, err := a.stage.lookup(name, sig); err != nil {
		writeStorageError(w, r, err)
		return
	}
	switch {
	case !hasBlob && q.Get("restype") == "container" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		storageHeaders(w)
		w.WriteHeader(http.StatusOK)
	case !hasBlob && q.Get("restype") == "container" && r.Method == http.MethodPut:
		writeStorageError(w, r, &errStaging{status: http.StatusConflict, code: "ContainerAlreadyExists", msg: "The specified container already exists."})
	case hasBlob && blob == InputBlob && r.Method == http.MethodPut && !q.Has("comp") && !q.Has("restype"):
		a.putInput(w, r, name, sig)
	default:
		writeStorageError(w, r, &errStaging{status: http.StatusForbidden, code: "AuthorizationPermissionMismatch",
			msg: "Only Put Blob of " + InputBlob + " and container properties are available through the qbroker gateway."})
	}
}

func (a *Adapter) putInput(w http.ResponseWriter, r *http.Request, name, sig string) {
	switch {
	case r.Header.Get("x-ms-blob-type") != "BlockBlob":
		writeStorageError(w, r, &errStaging{status: http.StatusBadRequest, code: "InvalidHeaderValue", msg: "x-ms-blob-type must be BlockBlob."})
		return
	case r.Header.Get("x-ms-blob-content-encoding") != "" || r.Header.Get("Content-Encoding") != "":
		writeStorageError(w, r, &errStaging{status: http.StatusBadRequest, code: "InvalidHeaderValue", msg: "Encoded job input (gzip) cannot be checked by the gateway; upload it plain."})
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(a.stage.limits.MaxBlobBytes)+1))
	if err != nil {
		writeStorageError(w, r, &errStaging{status: http.StatusBadRequest, code: "InvalidInput", msg: "The request body could not be read."})
		return
	}
	ct := r.Header.Get("x-ms-blob-content-type")
	b, err := a.stage.put(name, sig, data, ct, r.Header.Get("If-None-Match") == "*")
	if err != nil {
		writeStorageError(w, r, err)
		return
	}
	sum := md5.Sum(b.data)
	storageHeaders(w)
	w.Header().Set("ETag", b.etag)
	w.Header().Set("Last-Modified", b.modified.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	w.Header().Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
}

func storageHeaders(w http.ResponseWriter) {
	w.Header().Set("x-ms-version", storageVersion)
}

// writeStorageError answers in Blob Storage's XML error shape.
func writeStorageError(w http.ResponseWriter, r *http.Request, err error) {
	se := &errStaging{status: http.StatusInternalServerError, code: "InternalError", msg: "The staging area failed."}
	errors.As(err, &se)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-error-code", se.code)
	storageHeaders(w)
	w.WriteHeader(se.status)
	if r.Method == http.MethodHead {
		return
	}
	out, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: se.code, Message: se.msg}) // strings always marshal
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}
