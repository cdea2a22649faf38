package braketsim

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// object is one stored S3 object.
type object struct {
	data     []byte
	etag     string
	modified time.Time
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// validBucket applies S3's bucket naming rules.
func validBucket(b string) bool {
	return bucketRE.MatchString(b) && !strings.Contains(b, "..") && net.ParseIP(b) == nil &&
		!strings.HasPrefix(b, "xn--") && !strings.HasSuffix(b, "-s3alias")
}

// checkBucket validates a task's output bucket.
func (e *Emulator) checkBucket(bucket string) *apiError {
	if !validBucket(bucket) {
		return validation("outputS3Bucket %q is not a valid S3 bucket name.", bucket)
	}
	if len(e.cfg.Buckets) == 0 {
		return nil
	}
	e.mu.Lock()
	_, ok := e.buckets[bucket]
	e.mu.Unlock()
	if !ok {
		return validation("Caller doesn't have access to amazon-braket bucket %s or it doesn't exist.", bucket)
	}
	return nil
}

// putObject stores data; call with e.mu held.
func (e *Emulator) putObject(bucket, key string, data []byte) {
	b := e.buckets[bucket]
	if b == nil {
		b = map[string]*object{}
		e.buckets[bucket] = b
	}
	sum := md5.Sum(data)
	b[key] = &object{data: data, etag: `"` + hex.EncodeToString(sum[:]) + `"`, modified: e.now().UTC()}
}

// serveS3 answers path-style GetObject and HeadObject, the only S3 calls
// the emulator implements (task results are read with them).
func (e *Emulator) serveS3(c *call) {
	escaped := strings.TrimPrefix(c.r.URL.EscapedPath(), "/")
	bucket, rawKey, _ := strings.Cut(escaped, "/")
	for k := range c.r.URL.Query() {
		if k != "x-id" && !strings.HasPrefix(k, "X-Amz-") {
			c.fail(&apiError{status: 501, code: "NotImplemented", msg: fmt.Sprintf("The emulator's S3 does not implement the %q query parameter.", k)})
			return
		}
	}
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		c.fail(&apiError{status: 501, code: "NotImplemented", msg: "The emulator's S3 is read-only: only GetObject and HeadObject are implemented."})
		return
	}
	if bucket == "" || rawKey == "" {
		c.fail(&apiError{status: 501, code: "NotImplemented", msg: "The emulator's S3 implements only GetObject and HeadObject (path-style /bucket/key)."})
		return
	}
	key, ok := pathUnescape(rawKey)
	if !ok {
		c.fail(&apiError{status: 400, code: "InvalidURI", msg: "Couldn't parse the specified URI."})
		return
	}
	objectARN := "arn:aws:s3:::" + bucket + "/" + key
	if aerr := c.authorize([2]string{"s3:GetObject", objectARN}); aerr != nil {
		c.fail(aerr)
		return
	}
	e.mu.Lock()
	b, bucketOK := e.buckets[bucket]
	var obj *object
	if bucketOK {
		obj = b[key]
	}
	e.mu.Unlock()
	if !bucketOK {
		c.fail(&apiError{status: 404, code: "NoSuchBucket", msg: "The specified bucket does not exist",
			s3Extra: []xmlField{field("BucketName", bucket)}})
		return
	}
	if obj == nil {
		// Without s3:ListBucket, S3 does not reveal that a key is absent.
		if aerr := c.authorize([2]string{"s3:ListBucket", "arn:aws:s3:::" + bucket}); aerr != nil {
			c.fail(aerr)
			return
		}
		c.fail(&apiError{status: 404, code: "NoSuchKey", msg: "The specified key does not exist.", s3Extra: []xmlField{field("Key", key)}})
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(obj.data)))
	h.Set("Etag", obj.etag)
	h.Set("Last-Modified", obj.modified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Amz-Request-Id", c.reqID)
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodGet {
		_, _ = c.w.Write(obj.data)
	}
}

func field(name, value string) xmlField {
	f := xmlField{Value: value}
	f.XMLName.Local = name
	return f
}

// pathUnescape decodes an S3 key from its escaped path form.
func pathUnescape(s string) (string, bool) {
	segs, ok := pathSegments("/" + s)
	if !ok {
		return "", false
	}
	return strings.Join(segs, "/"), true
}
