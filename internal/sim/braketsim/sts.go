package braketsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	stsVersion       = "2011-06-15"
	stsNS            = "https://sts.amazonaws.com/doc/2011-06-15/"
	sessionKeyPrefix = "ASIA"
	maxPolicyChars   = 2048
	maxTokenSize     = 4096 // bytes; the bound of MinimumSessionTokenSize
	maxSessionTags   = 50
	minDuration      = 900
	maxDuration      = 43200
	defaultDuration  = 3600
)

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]*$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
	tagRE         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	roleARNRE     = regexp.MustCompile(`^arn:aws:iam::([0-9]{12}):role/((?:[\x21-\x7e]+/)*)([\w+=,.@-]{1,64})$`)
	tagParamRE    = regexp.MustCompile(`^Tags\.member\.([1-9][0-9]*)\.(Key|Value)$`)
	transitiveRE  = regexp.MustCompile(`^TransitiveTagKeys\.member\.[1-9][0-9]*$`)
)

// session is one set of temporary credentials issued by AssumeRole.
type session struct {
	keyID          string
	secret         string
	tokenHash      [32]byte
	roleARN        string
	roleName       string
	roleID         string // AROA…
	name           string // RoleSessionName
	issued         time.Time
	expiration     time.Time
	policy         *policyDoc // nil: the role's own permissions (everything)
	sourceIdentity string
	tags           []Tag
}

// Tag is a session tag.
type Tag struct{ Key, Value string }

func (s *session) arn(account string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, s.roleName, s.name)
}

// SessionInfo describes a live STS session, without its secrets.
type SessionInfo struct {
	AccessKeyID    string
	ARN            string
	RoleARN        string
	SessionName    string
	Expiration     time.Time
	Policy         string // the inline session policy as sent, or ""
	SourceIdentity string
	Tags           []Tag
}

// Session returns what the emulator remembers of the session whose access
// key id is keyID.
func (e *Emulator) Session(keyID string) (SessionInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[keyID]
	if !ok {
		return SessionInfo{}, false
	}
	info := SessionInfo{AccessKeyID: s.keyID, ARN: s.arn(e.cfg.AccountID), RoleARN: s.roleARN, SessionName: s.name,
		Expiration: s.expiration, SourceIdentity: s.sourceIdentity, Tags: slices.Clone(s.tags)}
	if s.policy != nil {
		info.Policy = s.policy.text
	}
	return info, true
}

// parseRoleARN returns the role name of a role ARN of account.
func parseRoleARN(arn, account string) (string, bool) {
	m := roleARNRE.FindStringSubmatch(arn)
	if m == nil || m[1] != account || len(m[2])+1 > 512 {
		return "", false
	}
	return m[3], true
}

func (e *Emulator) serveSTS(c *call) {
	params, aerr := stsParams(c)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	action, version := params.Get("Action"), params.Get("Version")
	if version != stsVersion {
		c.fail(&apiError{status: 400, code: "InvalidAction", msg: fmt.Sprintf("Could not find operation %s for version %s", action, version)})
		return
	}
	switch action {
	case "AssumeRole":
		e.assumeRole(c, params)
	case "GetCallerIdentity":
		e.getCallerIdentity(c, params)
	default:
		c.fail(&apiError{status: 400, code: "InvalidAction", msg: fmt.Sprintf("Could not find operation %s for version %s", action, version)})
	}
}

// stsParams returns the query-protocol parameters of c: the form body of a
// POST, or the query of a GET (presigning parameters excluded).
func stsParams(c *call) (url.Values, *apiError) {
	if c.r.URL.EscapedPath() != "/" {
		return nil, &apiError{status: 404, code: "NotFound", msg: "STS is served at /"}
	}
	params := url.Values{}
	for k, vs := range c.r.URL.Query() {
		if !strings.HasPrefix(k, "X-Amz-") {
			params[k] = vs
		}
	}
	switch c.r.Method {
	case http.MethodPost:
		mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, &apiError{status: 400, code: "InvalidParameterValue", msg: "Content-Type must be application/x-www-form-urlencoded"}
		}
		form, err := url.ParseQuery(string(c.body))
		if err != nil {
			return nil, &apiError{status: 400, code: "MalformedQueryString", msg: "The request body is not a valid form encoding."}
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	case http.MethodGet:
	default:
		return nil, &apiError{status: 405, code: "InvalidAction", msg: fmt.Sprintf("Method %s is not supported", c.r.Method)}
	}
	for k, vs := range params {
		if len(vs) > 1 {
			return nil, &apiError{status: 400, code: "ValidationError", msg: fmt.Sprintf("Parameter %s appears more than once.", k)}
		}
	}
	return params, nil
}

// validationErrors collects AWS-style constraint violations.
type validationErrors []string

func (v *validationErrors) add(format string, args ...any) {
	*v = append(*v, fmt.Sprintf(format, args...))
}

func (v validationErrors) err(code string) *apiError {
	if len(v) == 0 {
		return nil
	}
	noun := "error"
	if len(v) > 1 {
		noun = "errors"
	}
	return &apiError{status: 400, code: code, msg: fmt.Sprintf("%d validation %s detected: %s", len(v), noun, strings.Join(v, "; "))}
}

// checkString validates an optional string member; present reports whether
// the parameter was sent.
func (v *validationErrors) checkString(member, val string, present bool, required bool, minLen, maxLen int, re *regexp.Regexp) {
	if !present {
		if required {
			v.add("Value null at '%s' failed to satisfy constraint: Member must not be null", member)
		}
		return
	}
	n := len([]rune(val))
	switch {
	case n < minLen:
		v.add("Value '%s' at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", val, member, minLen)
	case n > maxLen:
		v.add("Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", member, maxLen)
	case re != nil && !re.MatchString(val):
		v.add("Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", val, member, re.String())
	}
}

func (e *Emulator) assumeRole(c *call, params url.Values) {
	var verrs validationErrors
	has := func(k string) bool { _, ok := params[k]; return ok }
	tags := map[int]*Tag{}
	for k := range params {
		switch {
		case slices.Contains([]string{"Action", "Version", "RoleArn", "RoleSessionName", "DurationSeconds", "Policy",
			"SourceIdentity", "ExternalId", "MinimumSessionTokenSize"}, k):
		case tagParamRE.MatchString(k):
			m := tagParamRE.FindStringSubmatch(k)
			n, _ := strconv.Atoi(m[1])
			if tags[n] == nil {
				tags[n] = &Tag{}
			}
		case transitiveRE.MatchString(k):
		case strings.HasPrefix(k, "PolicyArns."):
			c.fail(&apiError{status: 400, code: "ValidationError", msg: "The emulator has no managed policies: PolicyArns cannot be honoured."})
			return
		default:
			c.fail(&apiError{status: 400, code: "ValidationError", msg: fmt.Sprintf("Parameter %s is not supported by AssumeRole in this emulator.", k)})
			return
		}
	}
	roleARN, sessName := params.Get("RoleArn"), params.Get("RoleSessionName")
	verrs.checkString("roleArn", roleARN, has("RoleArn"), true, 20, 2048, nil)
	verrs.checkString("roleSessionName", sessName, has("RoleSessionName"), true, 2, 64, sessionNameRE)
	duration := defaultDuration
	if has("DurationSeconds") {
		d, err := strconv.Atoi(params.Get("DurationSeconds"))
		switch {
		case err != nil:
			verrs.add("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", params.Get("DurationSeconds"))
		case d < minDuration:
			verrs.add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to %d", d, minDuration)
		case d > maxDuration:
			verrs.add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to %d", d, maxDuration)
		}
		duration = d
	}
	minTokenSize := 0
	if has("MinimumSessionTokenSize") {
		n, err := strconv.Atoi(params.Get("MinimumSessionTokenSize"))
		if err != nil || n < 0 || n > maxTokenSize {
			verrs.add("Value '%s' at 'minimumSessionTokenSize' failed to satisfy constraint: Member must have value between 0 and %d", params.Get("MinimumSessionTokenSize"), maxTokenSize)
		}
		minTokenSize = n
	}
	policyText := params.Get("Policy")
	verrs.checkString("policy", policyText, has("Policy"), false, 1, maxPolicyChars, nil)
	sourceID := params.Get("SourceIdentity")
	verrs.checkString("sourceIdentity", sourceID, has("SourceIdentity"), false, 2, 64, sessionNameRE)
	verrs.checkString("externalId", params.Get("ExternalId"), has("ExternalId"), false, 2, 1224, externalIDRE)
	if len(tags) > maxSessionTags {
		verrs.add("Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to %d", maxSessionTags)
	}
	var tagList []Tag
	for n := 1; n <= len(tags); n++ {
		if tags[n] == nil {
			verrs.add("Tags.member.%d is missing: tags must be numbered from 1 without gaps", n)
			break
		}
		key, val := fmt.Sprintf("Tags.member.%d.Key", n), fmt.Sprintf("Tags.member.%d.Value", n)
		verrs.checkString(fmt.Sprintf("tags.%d.member.key", n), params.Get(key), has(key), true, 1, 128, tagRE)
		verrs.checkString(fmt.Sprintf("tags.%d.member.value", n), params.Get(val), has(val), true, 0, 256, tagRE)
		tagList = append(tagList, Tag{Key: params.Get(key), Value: params.Get(val)})
	}
	if aerr := verrs.err("ValidationError"); aerr != nil {
		c.fail(aerr)
		return
	}
	if strings.HasPrefix(strings.ToLower(sourceID), "aws:") {
		c.fail(&apiError{status: 400, code: "ValidationError", msg: "SourceIdentity must not start with the reserved prefix aws:"})
		return
	}
	seenKeys := map[string]bool{}
	for _, t := range tagList {
		if seenKeys[strings.ToLower(t.Key)] {
			c.fail(&apiError{status: 400, code: "InvalidParameterValue", msg: fmt.Sprintf("Duplicate tag keys found. Please note that Tag keys are case insensitive: %s", t.Key)})
			return
		}
		seenKeys[strings.ToLower(t.Key)] = true
	}

	// Authorization: the account's IAM user may assume the account's roles.
	denied := func() {
		c.fail(&apiError{status: 403, code: "AccessDenied", msg: fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.p.arn, roleARN)})
	}
	if c.p.sess != nil {
		if d, src := e.evaluate(c.p, "sts:AssumeRole", roleARN); d != decisionAllow {
			c.fail(accessDenied(c, d, src, "sts:AssumeRole", roleARN))
			return
		}
		denied() // the emulated roles trust only the account's IAM user
		return
	}
	if d, src := e.evaluate(c.p, "sts:AssumeRole", roleARN); d != decisionAllow {
		c.fail(accessDenied(c, d, src, "sts:AssumeRole", roleARN))
		return
	}
	roleName, ok := parseRoleARN(roleARN, e.cfg.AccountID)
	if !ok || (len(e.cfg.Roles) > 0 && !slices.Contains(e.cfg.Roles, roleARN)) {
		denied()
		return
	}
	if time.Duration(duration)*time.Second > e.cfg.MaxSessionDuration {
		c.fail(&apiError{status: 400, code: "ValidationError", msg: "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."})
		return
	}
	var policy *policyDoc
	packed := 0
	if has("Policy") {
		var err error
		policy, err = parsePolicy(policyText)
		if err != nil {
			c.fail(&apiError{status: 400, code: "MalformedPolicyDocument", msg: err.Error()})
			return
		}
		packed = policy.packedLen
	}
	for _, t := range tagList {
		packed += len(t.Key) + len(t.Value)
	}
	packedPct := (packed*100 + maxPolicyChars - 1) / maxPolicyChars
	if packedPct > 100 {
		c.fail(&apiError{status: 400, code: "PackedPolicyTooLarge", msg: fmt.Sprintf("Packed policy consumes %d%% of allotted space, please use smaller policy.", packedPct)})
		return
	}

	now := e.now().UTC().Truncate(time.Second)
	s := &session{
		keyID:          sessionKeyPrefix + randomID(16),
		secret:         randomSecret(30),
		roleARN:        roleARN,
		roleName:       roleName,
		name:           sessName,
		issued:         now,
		expiration:     now.Add(time.Duration(duration) * time.Second),
		policy:         policy,
		sourceIdentity: sourceID,
		tags:           tagList,
	}
	token := "IQoJb3JpZ2luX2VjE" + randomSecret(300)
	if pad := minTokenSize - len(token); pad > 0 {
		token += randomSecret(pad)[:pad]
	}
	s.tokenHash = sha256.Sum256([]byte(token))
	if aerr := e.addSession(s); aerr != nil {
		c.fail(aerr)
		return
	}
	e.log.Debug("braketsim: session issued", "access_key_id", s.keyID, "role", roleARN, "session", sessName,
		"expires", s.expiration, "session_policy", policy != nil)

	type credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type assumedRoleUser struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	}
	type result struct {
		Credentials             credentials     `xml:"Credentials"`
		AssumedRoleUser         assumedRoleUser `xml:"AssumedRoleUser"`
		PackedPolicySize        *int            `xml:"PackedPolicySize,omitempty"`
		SessionTokenSize        int             `xml:"SessionTokenSize"`
		SessionTokenUtilization int             `xml:"SessionTokenUtilization"`
		SourceIdentity          string          `xml:"SourceIdentity,omitempty"`
	}
	type response struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
		Result    result   `xml:"AssumeRoleResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	res := result{
		Credentials: credentials{AccessKeyID: s.keyID, SecretAccessKey: s.secret, SessionToken: token,
			Expiration: s.expiration.Format(time.RFC3339)},
		AssumedRoleUser:         assumedRoleUser{Arn: s.arn(e.cfg.AccountID), AssumedRoleID: s.roleID + ":" + s.name},
		SourceIdentity:          sourceID,
		SessionTokenSize:        len(token),
		SessionTokenUtilization: (len(token)*100 + maxTokenSize - 1) / maxTokenSize,
	}
	if policy != nil || len(tagList) > 0 {
		res.PackedPolicySize = &packedPct
	}
	c.writeXML(http.StatusOK, response{Result: res, RequestID: c.reqID})
}

// addSession stores s, dropping expired sessions when the table is full,
// and assigns the role's stable unique id.
func (e *Emulator) addSession(s *session) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sessions) >= e.cfg.MaxSessions {
		now := e.now()
		for id, old := range e.sessions {
			if !now.Before(old.expiration) {
				delete(e.sessions, id)
			}
		}
		if len(e.sessions) >= e.cfg.MaxSessions {
			return &apiError{status: 400, code: "Throttling", msg: fmt.Sprintf("too many live sessions (limit %d)", e.cfg.MaxSessions)}
		}
	}
	id, ok := e.roleIDs[s.roleARN]
	if !ok {
		id = "AROA" + randomID(17)
		e.roleIDs[s.roleARN] = id
	}
	s.roleID = id
	e.sessions[s.keyID] = s
	return nil
}

func (e *Emulator) getCallerIdentity(c *call, params url.Values) {
	for k := range params {
		if k != "Action" && k != "Version" {
			c.fail(&apiError{status: 400, code: "ValidationError", msg: fmt.Sprintf("Parameter %s is not supported by GetCallerIdentity.", k)})
			return
		}
	}
	type result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}
	type response struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
		Result    result   `xml:"GetCallerIdentityResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	c.writeXML(http.StatusOK, response{Result: result{Arn: c.p.arn, UserID: c.p.userID, Account: e.cfg.AccountID}, RequestID: c.reqID})
}

// randomSecret returns n random bytes, base64-encoded without padding.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}
