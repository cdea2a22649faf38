package mcp_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/mcp"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

// The same tools on AWS Braket's SV1, through the gateway's secretless
// /braket front against the Braket emulator: the agent's role is an AWS
// one, the circuit is OpenQASM 3 (and IonQ JSON, converted), the result is
// a Bell pair, and the AWS root secret appears nowhere.
func TestBellPairOnBraket(t *testing.T) {
	var sb [24]byte
	if _, err := rand.Read(sb[:]); err != nil {
		t.Fatal(err)
	}
	const rootID = "AKIAQBROKERMCPTEST01"
	rootSecret := hex.EncodeToString(sb[:])
	sim, err := braketsim.New(braketsim.Config{RootAccessKeyID: rootID, RootSecretAccessKey: rootSecret, StepDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() { simSrv.Close(); sim.Close() })

	var demo string
	for _, f := range policy.DefaultFiles() {
		if f.Name == "demo.cedar" {
			demo = string(f.Data)
		}
	}
	if demo == "" {
		t.Fatal("no demo.cedar")
	}
	policies := filepath.Join(t.TempDir(), "policies.cedar")
	if err := os.WriteFile(policies, []byte(demo+`
@id("lab-sv1") permit (principal in Role::"lab", action == Action::"SubmitJob", resource == Device::"aws/sv1");
@id("lab-own-jobs") permit (principal in Role::"lab", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	st := newStack(t, nil, func(o *server.DevOptions) {
		o.PolicyFiles = []string{policies}
		o.AWS = config.AWS{
			Region: "us-east-1", STSEndpoint: simSrv.URL, BraketEndpoint: simSrv.URL, S3Endpoint: simSrv.URL,
			Roles: []config.AWSRole{{Name: "braket-lab", RoleARN: "arn:aws:iam::123456789012:role/qbroker-braket", DeviceARNs: []string{braketsim.SV1ARN},
				S3Bucket: "amazon-braket-qbroker-results", S3Prefix: "tenants/lab", BrokerRoles: []string{"lab"}}},
		}
	})
	ctx := context.Background()
	if err := st.root.SetProviderCredential(ctx, "aws", rootID+":"+rootSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := st.root.PutRole(ctx, "lab", api.Role{Provider: "aws", Devices: []string{"sv1"}, MaxShots: 1000}); err != nil {
		t.Fatal(err)
	}
	roleID, err := st.root.RoleID(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := st.root.NewSecretID(ctx, "lab", api.SecretIDRequest{Agent: "lab-agent"})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := st.broker.AppRoleLogin(ctx, roleID, sid.SecretID)
	if err != nil {
		t.Fatal(err)
	}
	// The MCP server acts for the lab agent.
	st.token = lab.ClientToken
	st.srv, err = mcp.New(mcp.Options{Broker: client.New(st.d.BrokerURL, nil), Token: lab.ClientToken, GatewayURL: st.d.GatewayURL})
	if err != nil {
		t.Fatal(err)
	}
	s := st.connect(t, "qbroker-go-test")

	var devs struct {
		Devices []struct {
			ID          string `json:"id"`
			ARN         string `json:"arn"`
			Submittable bool   `json:"submittable"`
		} `json:"devices"`
	}
	s.ok("list_devices", nil, &devs)
	var found bool
	for _, d := range devs.Devices {
		if d.ID == "aws/sv1" {
			found = d.ARN == braketsim.SV1ARN && d.Submittable
		}
	}
	if !found {
		t.Fatalf("aws/sv1 with its ARN, submittable, not in %+v", devs.Devices)
	}

	for _, c := range []struct{ format, circuit string }{{"qasm3", bellQASM}, {"ionq", bellIonQ}} {
		var sub submission
		s.ok("submit_circuit", map[string]any{"circuit": c.circuit, "format": c.format, "device": "aws/sv1", "shots": 200}, &sub)
		if sub.Status != "submitted" || !strings.HasPrefix(sub.JobID, "arn:aws:braket:") {
			t.Fatalf("%s: submission %+v", c.format, sub)
		}
		s.waitJob(sub.JobID)
		var r result
		s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
		checkBell(t, r, 200)
	}

	// The role's ceiling and the device binding hold here too.
	if msg := s.refused("submit_circuit", map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "aws/sv1", "shots": 5000}); !strings.Contains(msg, "allows at most 1000 shots") {
		t.Errorf("over the role's shots: %q", msg)
	}
	if msg := s.refused("job_status", map[string]any{"job_id": "arn:aws:braket:us-east-1:123456789012:quantum-task/../../x"}); !strings.Contains(msg, "not a Braket quantum-task ARN") {
		t.Errorf("malformed ARN: %q", msg)
	}

	tr := s.transcript.String()
	st.noSecrets(t, "MCP transcript (Braket)", tr)
	if strings.Contains(tr, rootSecret) || strings.Contains(tr, rootID) {
		t.Error("the AWS root credential reached the MCP transcript")
	}
}
