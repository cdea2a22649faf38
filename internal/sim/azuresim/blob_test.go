package azuresim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func storageCode(t *testing.T, r response) string {
	t.Helper()
	if !strings.Contains(string(r.body), "<Error><Code>"+r.header.Get("x-ms-error-code")+"</Code>") {
		t.Errorf("not a storage error body: %s", r.body)
	}
	return r.header.Get("x-ms-error-code")
}

func TestBlobSAS(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	cont := h.sasURI(tok, "job-abc", "")
	blobURL := withBlob(cont, "inputData")
	if r := h.putBlob(blobURL, "hello"); r.code != http.StatusCreated || r.header.Get("ETag") == "" {
		t.Fatalf("put: %d %s", r.code, r.body)
	}
	if r := h.send("GET", blobURL, "", nil); r.code != http.StatusOK || string(r.body) != "hello" ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("x-ms-blob-type") != "BlockBlob" {
		t.Errorf("get: %d %q %v", r.code, r.body, r.header)
	}
	set := func(raw, key, val string) string {
		u, _ := url.Parse(raw)
		q := u.Query()
		if val == "" {
			q.Del(key)
		} else {
			q.Set(key, val)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	// A blob SAS for one blob.
	oneBlob := h.sasURI(tok, "job-abc", "a.json")
	readOnly := func() string { // the read-only outputDataUri-style SAS
		return h.e.blobURL(h.srv.URL, "job-abc", "inputData", "r")
	}()
	cases := []struct {
		name   string
		method string
		url    string
		status int
		code   string
	}{
		{"no SAS", "GET", strings.Split(blobURL, "?")[0], 401, "NoAuthenticationInformation"},
		{"tampered signature", "GET", set(blobURL, "sig", "AAAA"), 403, "AuthenticationFailed"},
		{"widened permissions", "GET", set(blobURL, "sp", "racwdl"), 403, "AuthenticationFailed"},
		{"extended expiry", "GET", set(blobURL, "se", "2099-01-01T00:00:00Z"), 403, "AuthenticationFailed"},
		{"other container", "GET", strings.Replace(blobURL, "/job-abc/", "/job-abd/", 1), 403, "AuthenticationFailed"},
		{"blob SAS on another blob", "GET", strings.Replace(oneBlob, "/a.json", "/inputData", 1), 403, "AuthenticationFailed"},
		{"read-only SAS writes", "PUT", readOnly, 403, "AuthorizationPermissionMismatch"},
		{"missing blob", "GET", withBlob(cont, "nothing"), 404, "BlobNotFound"},
		{"delete", "DELETE", blobURL, 405, "UnsupportedHttpVerb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			if tc.method == "PUT" {
				r = h.putBlob(tc.url, "overwrite")
			} else {
				r = h.send(tc.method, tc.url, "", nil)
			}
			if r.code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.code, tc.status, r.body)
			}
			if got := storageCode(t, r); got != tc.code {
				t.Errorf("code %s, want %s", got, tc.code)
			}
		})
	}
	if r := h.send("GET", blobURL, "", nil); string(r.body) != "hello" {
		t.Errorf("blob changed by a refused write: %q", r.body)
	}
	// Put Blob needs x-ms-blob-type.
	if r := h.send("PUT", blobURL, "x", nil); r.code != http.StatusBadRequest || storageCode(t, r) != "MissingRequiredHeader" {
		t.Errorf("no blob type: %d %s", r.code, r.body)
	}
	// SAS expiry follows the clock.
	h.clock.advance(DefaultSASTTL + 1)
	if r := h.send("GET", blobURL, "", nil); r.code != http.StatusForbidden {
		t.Errorf("expired SAS: %d %s", r.code, r.body)
	}
}

func TestContainerCreation(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	// Before 2026-01-15-preview sasUri does not create the container; the
	// client creates it with the container SAS.
	r := h.ws("POST", "/storage/sasUri", "api-version=2022-09-12-preview", tok, `{"containerName":"job-old"}`)
	cont := r.json(t)["sasUri"].(string)
	if r := h.putBlob(withBlob(cont, "inputData"), "x"); r.code != http.StatusNotFound || storageCode(t, r) != "ContainerNotFound" {
		t.Errorf("upload before container exists: %d %s", r.code, r.body)
	}
	u, _ := url.Parse(cont)
	q := u.Query()
	q.Set("restype", "container")
	u.RawQuery = q.Encode()
	if r := h.send("PUT", u.String(), "", nil); r.code != http.StatusCreated {
		t.Fatalf("create container: %d %s", r.code, r.body)
	}
	if r := h.send("PUT", u.String(), "", nil); r.code != http.StatusConflict || storageCode(t, r) != "ContainerAlreadyExists" {
		t.Errorf("create twice: %d %s", r.code, r.body)
	}
	if r := h.putBlob(withBlob(cont, "inputData"), "x"); r.code != http.StatusCreated {
		t.Errorf("upload after creation: %d %s", r.code, r.body)
	}
	// Container names follow Azure's rules.
	for _, bad := range []string{"UPPER", "ab", "a--b", "-abc"} {
		r := h.ws("POST", "/storage/sasUri", apiV, tok, `{"containerName":"`+bad+`"}`)
		if r.code != http.StatusBadRequest {
			t.Errorf("container name %q: %d %s", bad, r.code, r.body)
		}
	}
	if r := h.ws("POST", "/storage/sasUri", apiV, tok, `{"blobName":"x"}`); r.code != http.StatusBadRequest {
		t.Errorf("no containerName: %d %s", r.code, r.body)
	}
}

func TestStorageURL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StorageURL = "https://gateway.example:8443" })
	tok := h.token(QuantumScope)
	h.sasURI(tok, "job-x", "") // creates the container
	got := h.sasURI(tok, "job-x", "inputData")
	if !strings.HasPrefix(got, "https://gateway.example:8443/"+DefaultStorageAccount+"/job-x/inputData?") {
		t.Errorf("sasUri = %s", got)
	}
	// The host is not part of the check: the same path and SAS through the
	// test server works.
	u, _ := url.Parse(got)
	if r := h.putBlob(h.srv.URL+u.RequestURI(), "x"); r.code != http.StatusCreated {
		t.Errorf("upload through another host: %d %s", r.code, r.body)
	}
}
