package server

import (
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
)

// awsCredentials turns providers.aws into the broker's AWS minter, or nil
// when no AWS role is configured.
func awsCredentials(c config.AWS) *broker.AWSCredentials {
	if len(c.Roles) == 0 {
		return nil
	}
	out := &broker.AWSCredentials{Minter: awsbraket.NewMinter(c.Region, c.STSEndpoint, nil)}
	for _, r := range c.Roles {
		out.Roles = append(out.Roles, awsbraket.Role{Name: r.Name, RoleARN: r.RoleARN, DeviceARNs: r.DeviceARNs,
			S3Bucket: r.S3Bucket, S3Prefix: r.S3Prefix, Duration: r.Duration, BrokerRoles: r.BrokerRoles})
	}
	return out
}
