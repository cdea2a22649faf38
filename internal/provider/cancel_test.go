package provider_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
	"github.com/qbroker/qbroker/internal/provider/ibm"
	"github.com/qbroker/qbroker/internal/provider/quantinuum"
)

// Every front the gateway can lose a job on knows how to cancel it, and
// the call it makes is one its own Route classifies as a cancel of that job.
func TestCancelCallsRouteAsCancel(t *testing.T) {
	for _, c := range []struct {
		a  provider.Adapter
		id string
	}{
		{awsbraket.Adapter{}, "arn:aws:braket:us-east-1:123456789012:quantum-task/5b3a8c2e-1f4d-4e6a-9b7c-000000000001"},
		{ibm.Adapter{}, "d1abc234efg5"},
		{quantinuum.Adapter{}, "aed6c666899c04024b135109377038ed"},
	} {
		cc, ok := c.a.(provider.CancelCaller)
		if !ok {
			t.Fatalf("%s cannot cancel upstream", c.a.Name())
		}
		method, path, _ := cc.CancelCall(c.id)
		r := c.a.Route(method, path)
		if r.Kind != provider.Cancel || r.JobID != c.id || !strings.HasPrefix(path, "/") || method == http.MethodGet {
			t.Errorf("%s: %s %s routes as %+v", c.a.Name(), method, path, r)
		}
	}
}
