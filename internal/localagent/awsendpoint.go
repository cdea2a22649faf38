package localagent

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// containerCreds is the body the AWS SDKs expect from the container
// credentials endpoint (the ECS task role format).
type containerCreds struct {
	AccessKeyID     string    `json:"AccessKeyId"`
	SecretAccessKey string    `json:"SecretAccessKey"`
	Token           string    `json:"Token"`
	Expiration      time.Time `json:"Expiration"`
	RoleArn         string    `json:"RoleArn,omitempty"`
}

// isLoopback reports whether r came from this machine's loopback.
func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveAWS is the AWS container-credentials endpoint:
// GET /aws/<session> with Authorization: <the session's token>, as the
// SDKs send AWS_CONTAINER_AUTHORIZATION_TOKEN. Any other user on the
// machine can reach 127.0.0.1; the token is what keeps them out.
func (d *Daemon) serveAWS(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r) {
		writeError(w, errForbidden("only loopback clients are served"))
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/aws/")
	if r.Method != http.MethodGet || !ok || id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	es, ok := d.sessions.byAuth(id, r.Header.Get("Authorization"))
	if !ok {
		d.log.Warn("local agent: AWS container endpoint: refused a request without the session's authorization token", "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":"Unauthorized","message":"missing or wrong authorization token, or the session has ended"}`))
		return
	}
	c, err := d.awsCreds(r.Context(), es.role)
	if err != nil {
		d.log.Warn("local agent: AWS credentials for an exec session failed", "session", es.id, "role", es.role, "err", err)
		writeError(w, err)
		return
	}
	d.log.Info("local agent: AWS credentials served", "session", es.id, "role", es.role, "expires", c.Expiration)
	writeJSON(w, http.StatusOK, containerCreds{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, Token: c.SecurityToken, Expiration: c.Expiration, RoleArn: c.ARN})
}

type forbiddenError string

func (e forbiddenError) Error() string { return string(e) }

func errForbidden(msg string) error { return forbiddenError(msg) }
