package azuresim

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Blob storage emulation. The real service hands out SAS URIs for a
// container (or blob) in the workspace's storage account; the client
// uploads the job input there and the provider writes the results there.
// The emulator serves the slice of Azure Blob Storage this needs, path-style
// as Azurite does (/<account>/<container>/<blob>): Create Container
// (PUT ?restype=container), Put Blob (BlockBlob only), Get Blob and
// Get Blob Properties (HEAD). Every request must carry a SAS the emulator
// issued (sv, sr, sp, se, sig); the signature is the emulator's own
// HMAC over those fields and the resource, so a SAS cannot be forged or
// widened, and it binds the container (sr=c) or the one blob (sr=b).
// Permissions: r reads, c creates a new blob or the container, w creates or
// overwrites.

const (
	sasVersion  = "2019-02-02" // the sv of the spec's examples
	sasPerms    = "rcw"
	storageVers = "2021-08-06"
	// maxContainersPerJob bounds containers: at most this many per kept job.
	maxContainersPerJob = 2
)

var containerRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

type blob struct {
	data        []byte
	contentType string
	etag        string
	modified    time.Time
}

type container struct {
	blobs map[string]*blob
}

// sasQuery returns the SAS query string for container (and blob, if not
// empty) with permissions perms, valid for DefaultSASTTL.
func (e *Emulator) sasQuery(cont, blobName, perms string) string {
	sr := "c"
	if blobName != "" {
		sr = "b"
	}
	se := e.now().Add(DefaultSASTTL).UTC().Format(time.RFC3339)
	q := url.Values{}
	q.Set("sv", sasVersion)
	q.Set("sr", sr)
	q.Set("sp", perms)
	q.Set("se", se)
	q.Set("sig", e.sasSig(sr, perms, se, cont, blobName))
	return q.Encode()
}

func (e *Emulator) sasSig(sr, sp, se, cont, blobName string) string {
	mac := hmac.New(sha256.New, e.sasKey)
	fmt.Fprintf(mac, "%s\n%s\n%s\n%s\n/blob/%s/%s/%s", sasVersion, sr, sp, se, e.cfg.StorageAccount, cont, blobName)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// storageBase is scheme://host of the SAS URIs handed out for request r.
func (e *Emulator) storageBase(r *http.Request) string {
	if e.cfg.StorageURL != "" {
		return strings.TrimSuffix(e.cfg.StorageURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// blobURL returns the SAS URL of a container or blob.
func (e *Emulator) blobURL(base, cont, blobName, perms string) string {
	p := base + "/" + e.cfg.StorageAccount + "/" + cont
	if blobName != "" {
		segs := strings.Split(blobName, "/")
		for i := range segs {
			segs[i] = url.PathEscape(segs[i])
		}
		p += "/" + strings.Join(segs, "/")
	}
	return p + "?" + e.sasQuery(cont, blobName, perms)
}

// checkSAS verifies the SAS in q for cont/blobName and returns its
// permissions. A container SAS covers every blob of the container.
func (e *Emulator) checkSAS(q url.Values, cont, blobName string) (string, *storageError) {
	sig := q.Get("sig")
	if sig == "" {
		// Anonymous access to a private container. UNCERTAIN: Azure may
		// answer 404 ResourceNotFound or 409 PublicAccessNotPermitted.
		return "", &storageError{status: http.StatusUnauthorized, code: "NoAuthenticationInformation",
			msg: "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."}
	}
	authFail := &storageError{status: http.StatusForbidden, code: "AuthenticationFailed",
		msg: "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."}
	for _, k := range []string{"sv", "sr", "sp", "se", "sig"} {
		if len(q[k]) != 1 {
			return "", authFail
		}
	}
	sr, sp, se := q.Get("sr"), q.Get("sp"), q.Get("se")
	signed := blobName
	switch sr {
	case "c":
		signed = ""
	case "b":
		if blobName == "" {
			return "", authFail
		}
	default:
		return "", authFail
	}
	want := e.sasSig(sr, sp, se, cont, signed)
	if q.Get("sv") != sasVersion || !hmac.Equal([]byte(sig), []byte(want)) {
		return "", authFail
	}
	exp, err := time.Parse(time.RFC3339, se)
	if err != nil {
		return "", authFail
	}
	if now := e.now(); now.After(exp) {
		return "", &storageError{status: http.StatusForbidden, code: "AuthenticationFailed",
			msg: fmt.Sprintf("Signature not valid in the specified time frame: Start [] - Expiry [%s] - Current [%s]", exp.UTC().Format(http.TimeFormat), now.UTC().Format(http.TimeFormat))}
	}
	return sp, nil
}

func permDenied() *storageError {
	return &storageError{status: http.StatusForbidden, code: "AuthorizationPermissionMismatch",
		msg: "This request is not authorized to perform this operation using this permission."}
}

func (e *Emulator) serveBlob(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/"+e.cfg.StorageAccount+"/")
	cont, blobName, _ := strings.Cut(rest, "/")
	if !containerRE.MatchString(cont) || strings.Contains(cont, "--") {
		e.writeStorageError(w, r, &storageError{status: http.StatusBadRequest, code: "InvalidResourceName", msg: "The specified resource name contains invalid characters."})
		return
	}
	q := r.URL.Query()
	perms, serr := e.checkSAS(q, cont, blobName)
	if serr != nil {
		e.writeStorageError(w, r, serr)
		return
	}
	switch {
	case blobName == "" && r.Method == http.MethodPut && q.Get("restype") == "container":
		serr = e.createContainer(w, cont, perms, q.Get("sr"))
	case blobName == "":
		serr = &storageError{status: http.StatusBadRequest, code: "UnsupportedHttpVerb", msg: "The emulator supports only Create Container on a container."}
	case q.Has("comp") || q.Has("restype"):
		serr = &storageError{status: http.StatusBadRequest, code: "UnsupportedQueryParameter", msg: "One of the query parameters specified in the request URI is not supported."}
	case r.Method == http.MethodPut:
		serr = e.putBlob(w, r, cont, blobName, perms)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		serr = e.getBlob(w, r, cont, blobName, perms)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		serr = &storageError{status: http.StatusMethodNotAllowed, code: "UnsupportedHttpVerb", msg: "The resource doesn't support specified Http Verb."}
	}
	if serr != nil {
		e.writeStorageError(w, r, serr)
	}
}

func storageHeaders(w http.ResponseWriter) {
	w.Header().Set("x-ms-request-id", newUUID())
	w.Header().Set("x-ms-version", storageVers)
}

func (e *Emulator) createContainer(w http.ResponseWriter, cont, perms, sr string) *storageError {
	if sr != "c" || !strings.ContainsAny(perms, "cw") {
		return permDenied()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[cont]; ok {
		return &storageError{status: http.StatusConflict, code: "ContainerAlreadyExists", msg: "The specified container already exists."}
	}
	if !e.roomForContainer() {
		return &storageError{status: http.StatusServiceUnavailable, code: "ServerBusy", msg: "The emulator holds too many containers."}
	}
	e.containers[cont] = &container{blobs: map[string]*blob{}}
	storageHeaders(w)
	w.Header().Set("ETag", `"`+randomB64(9)+`"`)
	w.Header().Set("Last-Modified", e.now().UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// roomForContainer reports whether one more container may be created; call
// with e.mu held.
func (e *Emulator) roomForContainer() bool {
	return len(e.containers) < maxContainersPerJob*e.cfg.MaxJobs
}

// ensureContainer creates cont if it does not exist (sasUri from
// 2026-01-15-preview does this); call with e.mu held.
func (e *Emulator) ensureContainer(cont string) bool {
	if _, ok := e.containers[cont]; ok {
		return true
	}
	if !e.roomForContainer() {
		return false
	}
	e.containers[cont] = &container{blobs: map[string]*blob{}}
	return true
}

func (e *Emulator) putBlob(w http.ResponseWriter, r *http.Request, cont, blobName, perms string) *storageError {
	switch bt := r.Header.Get("x-ms-blob-type"); bt {
	case "BlockBlob":
	case "":
		return &storageError{status: http.StatusBadRequest, code: "MissingRequiredHeader", msg: "An HTTP header that's mandatory for this request is not specified."}
	default:
		return &storageError{status: http.StatusBadRequest, code: "InvalidHeaderValue", msg: "The value for one of the HTTP headers is not in the correct format."}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &storageError{status: http.StatusRequestEntityTooLarge, code: "RequestBodyTooLarge", msg: fmt.Sprintf("The request body is too large and exceeds the emulator's limit of %d bytes.", MaxBodyBytes)}
		}
		return &storageError{status: http.StatusBadRequest, code: "InvalidInput", msg: "The request body could not be read."}
	}
	now := e.now()
	b := &blob{data: data, contentType: r.Header.Get("x-ms-blob-content-type"), etag: `"` + randomB64(12) + `"`, modified: now}
	if b.contentType == "" {
		b.contentType = "application/octet-stream"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[cont]
	if !ok {
		return &storageError{status: http.StatusNotFound, code: "ContainerNotFound", msg: "The specified container does not exist."}
	}
	old, exists := c.blobs[blobName]
	if !strings.Contains(perms, "w") && (exists || !strings.Contains(perms, "c")) {
		return permDenied()
	}
	grow := len(data)
	if exists {
		grow -= len(old.data)
	}
	if e.stored+grow > MaxStorageBytes {
		return &storageError{status: http.StatusServiceUnavailable, code: "ServerBusy", msg: "The emulator's storage is full."}
	}
	e.stored += grow
	c.blobs[blobName] = b
	sum := md5.Sum(data)
	storageHeaders(w)
	w.Header().Set("ETag", b.etag)
	w.Header().Set("Last-Modified", now.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	w.Header().Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (e *Emulator) getBlob(w http.ResponseWriter, r *http.Request, cont, blobName, perms string) *storageError {
	if !strings.Contains(perms, "r") {
		return permDenied()
	}
	e.mu.Lock()
	c, ok := e.containers[cont]
	var b *blob
	if ok {
		b = c.blobs[blobName]
	}
	e.mu.Unlock()
	switch {
	case !ok:
		return &storageError{status: http.StatusNotFound, code: "ContainerNotFound", msg: "The specified container does not exist."}
	case b == nil:
		return &storageError{status: http.StatusNotFound, code: "BlobNotFound", msg: "The specified blob does not exist."}
	}
	storageHeaders(w)
	w.Header().Set("Content-Type", b.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.data)))
	w.Header().Set("ETag", b.etag)
	w.Header().Set("Last-Modified", b.modified.UTC().Format(http.TimeFormat))
	w.Header().Set("x-ms-blob-type", "BlockBlob")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b.data) // blobs are immutable once stored
	}
	return nil
}

// readBlob returns a stored blob's bytes; call with e.mu held.
func (e *Emulator) readBlob(cont, blobName string) ([]byte, bool) {
	c, ok := e.containers[cont]
	if !ok {
		return nil, false
	}
	b, ok := c.blobs[blobName]
	if !ok {
		return nil, false
	}
	return b.data, true
}

// writeBlob stores data as cont/blobName (the provider writing results);
// call with e.mu held.
func (e *Emulator) writeBlob(cont, blobName, contentType string, data []byte) {
	c, ok := e.containers[cont]
	if !ok {
		c = &container{blobs: map[string]*blob{}}
		e.containers[cont] = c
	}
	if old, ok := c.blobs[blobName]; ok {
		e.stored -= len(old.data)
	}
	e.stored += len(data)
	c.blobs[blobName] = &blob{data: data, contentType: contentType, etag: `"` + randomB64(12) + `"`, modified: e.now()}
}

// dropContainer deletes a container and its blobs; call with e.mu held.
func (e *Emulator) dropContainer(cont string) {
	c, ok := e.containers[cont]
	if !ok {
		return
	}
	for _, b := range c.blobs {
		e.stored -= len(b.data)
	}
	delete(e.containers, cont)
}

// parseBlobURI checks that u is a SAS URI of this emulator's storage
// account (by path and signature: the host is not checked, so a gateway in
// front may rewrite it) and returns its container and blob name.
func (e *Emulator) parseBlobURI(u string) (cont, blobName string, err error) {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", "", errors.New("is not an absolute http(s) URL")
	}
	rest, ok := strings.CutPrefix(pu.Path, "/"+e.cfg.StorageAccount+"/")
	if !ok {
		return "", "", errors.New("is not in the workspace's storage account")
	}
	cont, blobName, _ = strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !containerRE.MatchString(cont) {
		return "", "", errors.New("does not name a valid container")
	}
	if _, serr := e.checkSAS(pu.Query(), cont, blobName); serr != nil {
		return "", "", fmt.Errorf("does not carry a valid SAS (%s)", serr.code)
	}
	return cont, blobName, nil
}
