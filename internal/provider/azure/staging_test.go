package azure

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve sends one request to the staging area.
func serve(a *Adapter, method, uri string, h map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, uri, strings.NewReader(body))
	for k, v := range h {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.ServeStaging(w, r, strings.TrimPrefix(r.URL.EscapedPath(), "/azure"))
	return w
}

func TestGrantAnswersAStagingContainer(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	uri := grant(t, a, "jti-1")
	if !strings.HasPrefix(uri, "https://gw.example/azure/storage/qbroker-") || !strings.Contains(uri, "se=") || !strings.Contains(uri, "sig=") {
		t.Fatalf("sasUri %q", uri)
	}
	if uri2 := grant(t, a, "jti-1"); uri2 == uri {
		t.Fatal("two grants share a container")
	}
	// Without PublicURL the answer names the host the agent used.
	b := newTestAdapter(t, "https://eastus.quantum.azure.com", func(c *Config) { c.PublicURL = "" })
	r := httptest.NewRequest(http.MethodPost, "http://gateway.local:8080/azure"+wsPath+"/storage/sasUri", strings.NewReader(`{"containerName":"job-1"}`))
	w := httptest.NewRecorder()
	b.Grant(w, r, "jti", time.Now().Add(time.Minute))
	if !strings.Contains(w.Body.String(), `"sasUri":"http://gateway.local:8080/azure/storage/qbroker-`) {
		t.Fatalf("derived sasUri: %s", w.Body)
	}
	for what, body := range map[string]string{
		"read grant":     `{"containerName":"job-1","blobName":"rawOutputData"}`,
		"no name":        `{}`,
		"unknown member": `{"containerName":"job-1","permissions":"rwdl"}`,
		"not json":       `x`,
	} {
		r := httptest.NewRequest(http.MethodPost, "https://gw.example/azure"+wsPath+"/storage/sasUri", strings.NewReader(body))
		w := httptest.NewRecorder()
		a.Grant(w, r, "jti-9", time.Now().Add(time.Minute))
		if w.Code < 400 || strings.Contains(w.Body.String(), "sasUri") {
			t.Errorf("%s: %d %s", what, w.Code, w.Body)
		}
	}
	r = httptest.NewRequest(http.MethodPost, "https://gw.example/azure"+wsPath+"/storage/sasUri", strings.NewReader(`{"containerName":"job-1"}`))
	w = httptest.NewRecorder()
	a.Grant(w, r, "jti-9", time.Now().Add(-time.Second))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("expired token granted: %d", w.Code)
	}
}

func TestStagingIsTheSDKsSliceOfBlobStorage(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	uri := grant(t, a, "jti-1")
	base, query, _ := strings.Cut(uri, "?")
	// ContainerClient.exists(), then create_container() (already there).
	if w := serve(a, http.MethodGet, uri+"&restype=container", nil, ""); w.Code != http.StatusOK {
		t.Fatalf("container properties: %d %s", w.Code, w.Body)
	}
	if w := serve(a, http.MethodPut, uri+"&restype=container", nil, ""); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "<Code>ContainerAlreadyExists</Code>") {
		t.Fatalf("create container: %d %s", w.Code, w.Body)
	}
	up := map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "application/json", "If-None-Match": "*"}
	for what, tc := range map[string]struct {
		method, uri string
		h           map[string]string
		status      int
		code        string
	}{
		"no sig":          {http.MethodPut, base + "/" + InputBlob, up, 403, "AuthenticationFailed"},
		"wrong sig":       {http.MethodPut, base + "/" + InputBlob + "?sig=x", up, 403, "AuthenticationFailed"},
		"two sigs":        {http.MethodPut, base + "/" + InputBlob + "?" + query + "&sig=x", up, 403, "AuthenticationFailed"},
		"unknown":         {http.MethodPut, "https://gw.example/azure/storage/qbroker-ab/" + InputBlob + "?" + query, up, 403, "AuthenticationFailed"},
		"another blob":    {http.MethodPut, base + "/program2?" + query, up, 403, "AuthorizationPermissionMismatch"},
		"read the blob":   {http.MethodGet, base + "/" + InputBlob + "?" + query, nil, 403, "AuthorizationPermissionMismatch"},
		"block upload":    {http.MethodPut, base + "/" + InputBlob + "?" + query + "&comp=block&blockid=AA", up, 403, "AuthorizationPermissionMismatch"},
		"delete":          {http.MethodDelete, uri + "&restype=container", nil, 403, "AuthorizationPermissionMismatch"},
		"append blob":     {http.MethodPut, base + "/" + InputBlob + "?" + query, map[string]string{"x-ms-blob-type": "AppendBlob"}, 400, "InvalidHeaderValue"},
		"gzip":            {http.MethodPut, base + "/" + InputBlob + "?" + query, map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-encoding": "gzip"}, 400, "InvalidHeaderValue"},
		"list containers": {http.MethodGet, "https://gw.example/azure/storage/?comp=list", nil, 403, "AuthenticationFailed"},
	} {
		if w := serve(a, tc.method, tc.uri, tc.h, bellIonQ); w.Code != tc.status || w.Header().Get("x-ms-error-code") != tc.code {
			t.Errorf("%s: %d %s %s", what, w.Code, w.Header().Get("x-ms-error-code"), w.Body)
		}
	}
	if n, _ := a.stage.held(); n != 1 {
		t.Fatalf("%d containers held", n)
	}
	if code, body := putInput(a, uri, bellIonQ, map[string]string{"If-None-Match": "*"}); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	// Written once: the same bytes again are a harmless retry, other bytes
	// (or If-None-Match: * on an existing blob) are refused.
	if code, _ := putInput(a, uri, bellIonQ, nil); code != http.StatusCreated {
		t.Fatalf("identical retry: %d", code)
	}
	if code, body := putInput(a, uri, ghzIonQ, nil); code != http.StatusConflict || !strings.Contains(body, "BlobAlreadyExists") {
		t.Fatalf("overwrite: %d %s", code, body)
	}
	if code, _ := putInput(a, uri, bellIonQ, map[string]string{"If-None-Match": "*"}); code != http.StatusConflict {
		t.Fatalf("If-None-Match on an existing blob: %d", code)
	}
	if _, bytes := a.stage.held(); bytes != len(bellIonQ) {
		t.Fatalf("%d bytes held", bytes)
	}
}

func TestStagingLimits(t *testing.T) {
	var clock atomic.Int64
	start := time.Now()
	now := func() time.Time { return start.Add(time.Duration(clock.Load())) }
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", func(c *Config) {
		c.Now = now
		c.Staging = StagingLimits{MaxContainers: 3, MaxBytes: 150, MaxBlobBytes: 100, PerToken: 2, TTL: time.Minute}
	})
	g := func(jti string) (int, string) {
		r := httptest.NewRequest(http.MethodPost, "https://gw.example/azure"+wsPath+"/storage/sasUri", strings.NewReader(`{"containerName":"job-1"}`))
		w := httptest.NewRecorder()
		a.Grant(w, r, jti, now().Add(5*time.Minute))
		return w.Code, w.Body.String()
	}
	u1, u2 := grant(t, a, "a"), grant(t, a, "a")
	if code, _ := g("a"); code != http.StatusTooManyRequests {
		t.Fatalf("third container for one token: %d", code)
	}
	u3 := grant(t, a, "b")
	if code, _ := g("c"); code != http.StatusServiceUnavailable {
		t.Fatalf("container beyond the total: %d", code)
	}
	if code, _ := putInput(a, u1, strings.Repeat(" ", 101), nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized input: %d", code)
	}
	if code, _ := putInput(a, u1, strings.Repeat(" ", 100), nil); code != http.StatusCreated {
		t.Fatalf("input at the limit: %d", code)
	}
	if code, _ := putInput(a, u2, strings.Repeat(" ", 60), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("input beyond the byte budget: %d", code)
	}
	// The TTL passes: everything is dropped, its memory freed and its SAS dead.
	clock.Add(int64(time.Minute))
	if code, _ := putInput(a, u3, "x", nil); code != http.StatusForbidden {
		t.Fatalf("upload after expiry: %d", code)
	}
	if _, err := a.ParseSubmit(jobBody(jobID, u1, nil)); err == nil {
		t.Fatal("expired input submitted")
	}
	if code, body := g("a"); code != http.StatusOK {
		t.Fatalf("grant after expiry: %d %s", code, body)
	}
	if n, b := a.stage.held(); n != 1 || b != 0 {
		t.Fatalf("after expiry %d containers, %d bytes held", n, b)
	}
}
