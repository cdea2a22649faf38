package quantinuumsim

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]Config{
		"email without password": {Email: "a@b"},
		"MFA without account":    {MFACode: "123456"},
		"refresh shorter":        {IDTokenTTL: time.Hour, RefreshTokenTTL: time.Minute},
		"machine unnamed":        {Machines: []Machine{{Qubits: 2, SystemType: SystemEmulator}}},
		"machine qubits":         {Machines: []Machine{{Name: "X", SystemType: SystemEmulator}}},
		"machine type":           {Machines: []Machine{{Name: "X", Qubits: 2, SystemType: "quantum"}}},
		"machine state":          {Machines: []Machine{{Name: "X", Qubits: 2, SystemType: SystemEmulator, State: "busy"}}},
		"duplicate machine":      {Machines: []Machine{DefaultMachines()[0], DefaultMachines()[0]}},
	}
	for name, cfg := range cases {
		if e, err := New(cfg); err == nil {
			e.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(e.Machines()) != 6 {
		t.Fatalf("default machines: %v", e.Machines())
	}
	if e.SetMachineState("H1-1", "busy") == nil || e.SetMachineState("Z-9", StateOffline) == nil {
		t.Fatal("SetMachineState accepted a bad state or machine")
	}
}

func TestPasswordLogin(t *testing.T) {
	h := newHarness(t, nil)
	id, refresh := h.login()
	if id == refresh {
		t.Fatal("id-token equals refresh token")
	}
	if code, b := h.do("GET", "/v1/machine/?config=true", id, ""); code != http.StatusOK {
		t.Fatalf("id-token refused: %d %s", code, b)
	}
	id2, _ := h.login()
	if id2 == id {
		t.Fatal("two logins gave the same id-token")
	}

	cases := []struct {
		name string
		body string
		code int
	}{
		{"wrong password", `{"email":"alice@example.com","password":"nope"}`, 401},
		{"wrong email", `{"email":"mallory@example.com","password":"` + testPassword + `"}`, 401},
		{"email in other case", `{"email":"ALICE@example.com","password":"` + testPassword + `"}`, 401},
		{"empty password", `{"email":"alice@example.com","password":""}`, 401},
		{"no password", `{"email":"alice@example.com"}`, 400},
		{"unknown field", `{"email":"alice@example.com","password":"x","admin":true}`, 400},
		{"both forms", `{"email":"alice@example.com","password":"` + testPassword + `","refresh-token":"x"}`, 400},
		{"federated", `{"provider-token":"x"}`, 400},
		{"not JSON", `email=alice`, 400},
		{"two objects", `{"email":"alice@example.com","password":"` + testPassword + `"}{}`, 400},
		{"empty", ``, 400},
	}
	for _, c := range cases {
		code, b := h.do("POST", "/v1/login", "", c.body)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, b, c.code)
			continue
		}
		if e := errOf(t, b); e.Code == codeMFARequired || strings.Contains(string(b), "id-token\"") {
			t.Errorf("%s: answer %s", c.name, b)
		}
		if strings.Contains(string(b), testPassword) {
			t.Errorf("%s: answer echoes the password", c.name)
		}
	}

	// An emulator without an account refuses every password login, even
	// one with empty credentials.
	none := newHarness(t, func(c *Config) { c.Email, c.Password = "", "" })
	if code, b := none.do("POST", "/v1/login", "", `{"email":"","password":""}`); code != 401 {
		t.Fatalf("login without account: %d %s", code, b)
	}
}

func TestMFALogin(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MFACode = "246810" })
	creds := `"email":"alice@example.com","password":"` + testPassword + `"`
	code, b := h.do("POST", "/v1/login", "", "{"+creds+"}")
	if code != 401 || errOf(t, b).Code != codeMFARequired {
		t.Fatalf("login without code: %d %s, want 401 code 73", code, b)
	}
	code, b = h.do("POST", "/v1/login", "", "{"+creds+`,"code":"000000"}`)
	if code != 401 || errOf(t, b).Code == codeMFARequired {
		t.Fatalf("wrong code: %d %s", code, b)
	}
	// The MFA code does not replace the password.
	code, b = h.do("POST", "/v1/login", "", `{"email":"alice@example.com","password":"x","code":"246810"}`)
	if code != 401 || errOf(t, b).Code == codeMFARequired {
		t.Fatalf("right code, wrong password: %d %s", code, b)
	}
	code, b = h.do("POST", "/v1/login", "", "{"+creds+`,"code":"246810"}`)
	if code != 200 || !strings.Contains(string(b), `"id-token"`) {
		t.Fatalf("right code: %d %s", code, b)
	}
}

func TestRefresh(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IDTokenTTL, c.RefreshTokenTTL = time.Hour, 3*time.Hour })
	id, refresh := h.login()

	code, lr, b := h.refresh(refresh)
	if code != 200 || lr["id-token"] == "" || lr["id-token"] == id || lr["refresh-token"] != refresh {
		t.Fatalf("refresh: %d %s", code, b)
	}
	fresh := lr["id-token"]
	if code, b := h.do("GET", "/v1/machine/H1-1E", fresh, ""); code != 200 {
		t.Fatalf("refreshed id-token refused: %d %s", code, b)
	}
	// The old id-token stays valid until it expires.
	if code, _ := h.do("GET", "/v1/machine/H1-1E", id, ""); code != 200 {
		t.Fatal("old id-token refused before expiry")
	}

	for name, tok := range map[string]string{"id-token as refresh token": id, "unknown": "bm90LWEtdG9rZW4", "empty": ""} {
		code, _, b := h.refresh(tok)
		if code != 400 || !strings.Contains(errOf(t, b).Text, "Invalid Refresh Token") {
			t.Errorf("%s: %d %s, want 400 Invalid Refresh Token", name, code, b)
		}
	}

	// 2h30 later: the refresh token still works, but the id-token it gives
	// dies with the refresh token (at 3h), not an hour later.
	h.clock.Advance(150 * time.Minute)
	code, lr, b = h.refresh(refresh)
	if code != 200 {
		t.Fatalf("refresh before expiry: %d %s", code, b)
	}
	late := lr["id-token"]
	h.clock.Advance(31 * time.Minute)
	if code, b := h.do("GET", "/v1/machine/H1-1E", late, ""); code != 401 || !strings.Contains(errOf(t, b).Text, "expired") {
		t.Fatalf("id-token outlived its refresh token: %d %s", code, b)
	}
	if code, _, b := h.refresh(refresh); code != 400 || !strings.Contains(errOf(t, b).Text, "Invalid Refresh Token") {
		t.Fatalf("expired refresh token: %d %s", code, b)
	}
}

// An expired id-token is refused with 401 (advancing Config.Now), and a
// refresh brings access back.
func TestExpiredIDTokenRefused(t *testing.T) {
	h := newHarness(t, nil)
	id, refresh := h.login()
	h.clock.Advance(DefaultIDTokenTTL - time.Second)
	if code, b := h.do("GET", "/v1/machine/H1-1E", id, ""); code != 200 {
		t.Fatalf("id-token refused before expiry: %d %s", code, b)
	}
	h.clock.Advance(time.Second)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/machine/H1-1E", ""},
		{"GET", "/v1/machine/?config=true", ""},
		{"POST", "/v1/job", jobBody(t, "H1-1E", 10, bellQASM, nil)},
		{"GET", "/v1/job/0123", ""},
		{"POST", "/v1/job/0123/cancel", ""},
	} {
		code, b := h.do(req.method, req.path, id, req.body)
		if code != 401 || !strings.Contains(errOf(t, b).Text, "expired") {
			t.Errorf("%s %s with expired id-token: %d %s", req.method, req.path, code, b)
		}
	}
	if h.e.jobCount() != 0 {
		t.Fatal("a job was created with an expired id-token")
	}
	code, lr, b := h.refresh(refresh)
	if code != 200 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	if code, b := h.do("GET", "/v1/machine/H1-1E", lr["id-token"], ""); code != 200 {
		t.Fatalf("refreshed id-token: %d %s", code, b)
	}
}

func TestAuthorizationHeader(t *testing.T) {
	h := newHarness(t, nil)
	id, refresh := h.login()
	for name, auth := range map[string]string{
		"missing":                  "",
		"Bearer scheme":            "Bearer " + id,
		"lower-case bearer":        "bearer " + id,
		"other scheme":             "IdToken " + id,
		"refresh token as id":      refresh,
		"unknown token":            "bm90LWEtdG9rZW4",
		"id-token with extra byte": id + "x",
	} {
		code, b := h.do("GET", "/v1/machine/H1-1E", auth, "")
		if code != 401 {
			t.Errorf("%s: %d %s, want 401", name, code, b)
			continue
		}
		errOf(t, b)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/machine/H1-1E", nil)
	req.Header.Add("Authorization", id)
	req.Header.Add("Authorization", id)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("two Authorization headers: %d", resp.StatusCode)
	}
	// The login route itself needs no id-token.
	if code, _ := h.do("POST", "/v1/login", "Bearer whatever", mustJSON(t, map[string]string{"email": testEmail, "password": testPassword})); code != 200 {
		t.Fatalf("login with a stray Authorization header: %d", code)
	}
}

func TestRoutes(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v1/login", 405},
		{"DELETE", "/v1/job/abc", 405},
		{"GET", "/v2/job", 404},
		{"GET", "/v1/jobs", 404},
	} {
		code, b := h.do(c.method, c.path, id, "")
		if code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, b, c.code)
			continue
		}
		errOf(t, b)
	}
}

// Passwords, MFA codes and tokens never reach the log.
func TestNoSecretsInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, func(c *Config) { c.Logger = log; c.MFACode = "135790" })
	h.do("POST", "/v1/login", "", `{"email":"alice@example.com","password":"`+testPassword+`"}`)
	h.do("POST", "/v1/login", "", `{"email":"alice@example.com","password":"`+testPassword+`","code":"999999"}`)
	h.do("POST", "/v1/login", "", `{"email":"alice@example.com","password":"wrong-password-123"}`)
	code, b := h.do("POST", "/v1/login", "", `{"email":"alice@example.com","password":"`+testPassword+`","code":"135790"}`)
	if code != 200 {
		t.Fatalf("login: %d %s", code, b)
	}
	var lr map[string]string
	mustDecode(t, b, &lr)
	h.refresh(lr["refresh-token"])
	h.refresh("stale-refresh-token-xyz")
	j := h.submit(lr["id-token"], jobBody(t, "H1-1E", 10, bellQASM, nil))
	h.wait(lr["id-token"], j)
	if buf.Len() == 0 {
		t.Fatal("nothing logged at debug level")
	}
	for _, secret := range []string{testPassword, "wrong-password-123", "135790", "999999", lr["id-token"], lr["refresh-token"], "stale-refresh-token-xyz"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}
