package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/qbroker/qbroker/api"
)

// RevokeLease revokes one lease (PUT /v1/sys/leases/revoke): for an AWS
// lease, its STS session is cut off. Root, or the agent the lease was
// issued to.
func (c *Client) RevokeLease(ctx context.Context, leaseID string) (api.LeaseRevocationData, error) {
	var out api.LeaseRevocationData
	return out, c.doData(ctx, http.MethodPut, "/v1/sys/leases/revoke", api.RevokeLeaseRequest{LeaseID: leaseID}, &out)
}

// RevokeLeasePrefix revokes every lease under prefix (POST
// /v1/sys/leases/revoke-prefix/<prefix>): aws/creds/<role> cuts off every
// STS session of that AWS role. Root only.
func (c *Client) RevokeLeasePrefix(ctx context.Context, prefix string) (api.LeaseRevocationData, error) {
	var out api.LeaseRevocationData
	segs := strings.Split(strings.Trim(prefix, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/leases/revoke-prefix/"+strings.Join(segs, "/"), nil, &out)
}
