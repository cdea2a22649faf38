package server

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
	"github.com/qbroker/qbroker/internal/provider/azure"
	"github.com/qbroker/qbroker/internal/provider/ibm"
	"github.com/qbroker/qbroker/internal/provider/quantinuum"
	"github.com/qbroker/qbroker/internal/provider/rigetti"
)

// awsCredentials turns providers.aws into the broker's AWS minter, or nil
// when no AWS role is configured.
func awsCredentials(c config.AWS) *broker.AWSCredentials {
	if len(c.Roles) == 0 {
		return nil
	}
	out := &broker.AWSCredentials{Minter: awsbraket.NewMinter(c.Region, c.STSEndpoint, nil), Revoker: awsbraket.NewRevoker(c.IAMEndpoint, nil)}
	for _, r := range c.Roles {
		out.Roles = append(out.Roles, awsbraket.Role{Name: r.Name, RoleARN: r.RoleARN, DeviceARNs: r.DeviceARNs,
			S3Bucket: r.S3Bucket, S3Prefix: r.S3Prefix, Duration: r.Duration, BrokerRoles: r.BrokerRoles})
	}
	return out
}

// GatewayFronts are the provider fronts beyond IonQ that the configuration
// enables: /braket when AWS roles are configured.
func GatewayFronts(cfg *config.Config) ([]gateway.Front, error) {
	var out []gateway.Front
	if a := cfg.Providers.AWS; len(a.Roles) > 0 {
		endpoint := a.BraketEndpoint
		if endpoint == "" {
			endpoint = "https://braket." + a.Region + ".amazonaws.com"
		}
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("providers.aws.braket_endpoint: %w", err)
		}
		devices := map[string]string{}
		for _, d := range cfg.Devices {
			if d.Provider == "aws" && d.ARN != "" {
				devices[d.Name] = d.ARN
			}
		}
		s3 := a.S3Endpoint
		if s3 == "" {
			s3 = "https://s3." + a.Region + ".amazonaws.com"
		}
		out = append(out, gateway.Front{Prefix: "/braket", Adapter: awsbraket.Adapter{Region: a.Region, Braket: endpoint, S3: s3}, Upstream: u, Devices: devices})
	}
	if c := cfg.Providers.IBM; c.InstanceCRN != "" {
		base := c.BaseURL
		if base == "" {
			base = "https://quantum.cloud.ibm.com"
		}
		u, err := url.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("providers.ibm.base_url: %w", err)
		}
		out = append(out, gateway.Front{Prefix: "/ibm", Adapter: ibm.Adapter{InstanceCRN: c.InstanceCRN}, Upstream: u, Devices: providerDevices(cfg, "ibm")})
	}
	if c := cfg.Providers.Quantinuum; c.Enabled {
		base := c.BaseURL
		if base == "" {
			base = "https://qapi.quantinuum.com"
		}
		u, err := url.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("providers.quantinuum.base_url: %w", err)
		}
		out = append(out, gateway.Front{Prefix: "/quantinuum", Adapter: quantinuum.Adapter{MaxCostHQC: c.MaxCostHQC, Group: c.Group}, Upstream: u, Devices: providerDevices(cfg, "quantinuum")})
	}
	if c := cfg.Providers.Azure; c.Workspace != "" {
		public := ""
		if cfg.Gateway.PublicURL != "" {
			public = strings.TrimSuffix(cfg.Gateway.PublicURL, "/") + "/azure"
		}
		a, err := azure.New(azure.Config{Endpoint: c.Endpoint, SubscriptionID: c.SubscriptionID, ResourceGroup: c.ResourceGroup,
			Workspace: c.Workspace, Storage: c.Storage, PublicURL: public, Prefix: "/azure"})
		if err != nil {
			return nil, fmt.Errorf("providers.azure: %w", err)
		}
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("providers.azure.endpoint: %w", err)
		}
		out = append(out, gateway.Front{Prefix: "/azure", Adapter: a, Upstream: u, Devices: providerDevices(cfg, "azure")})
	}
	return out, nil
}

// GatewayGRPCFronts are the gRPC provider fronts the configuration
// enables: Rigetti QCS execution when providers.rigetti is enabled.
func GatewayGRPCFronts(cfg *config.Config) ([]gateway.GRPCFront, error) {
	var out []gateway.GRPCFront
	if c := cfg.Providers.Rigetti; c.Enabled {
		base := c.GRPCURL
		if base == "" {
			base = rigetti.DefaultGRPCURL
		}
		u, err := url.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("providers.rigetti.grpc_url: %w", err)
		}
		out = append(out, gateway.GRPCFront{Adapter: rigetti.Adapter{}, Upstream: u, Devices: providerDevices(cfg, "rigetti")})
	}
	return out, nil
}

// providerDevices maps a provider's catalogue names to its own device ids
// (the catalogue's arn field).
func providerDevices(cfg *config.Config, prov string) map[string]string {
	out := map[string]string{}
	for _, d := range cfg.Devices {
		if d.Provider == prov && d.ARN != "" {
			out[d.Name] = d.ARN
		}
	}
	return out
}

// providerMinters are the upstream credential minters beyond AWS's.
func providerMinters(cfg *config.Config) map[string]provider.Minter {
	out := map[string]provider.Minter{}
	if c := cfg.Providers.IBM; c.InstanceCRN != "" {
		out["ibm"] = &ibm.Minter{IAMURL: c.IAMURL}
	}
	if c := cfg.Providers.Azure; c.Workspace != "" {
		out["azure"] = &azure.Minter{Authority: c.Authority}
	}
	if c := cfg.Providers.Quantinuum; c.Enabled {
		out["quantinuum"] = &quantinuum.Minter{BaseURL: c.BaseURL}
	}
	if c := cfg.Providers.Rigetti; c.Enabled {
		out["rigetti"] = &rigetti.Minter{Issuer: c.Issuer, ClientID: c.ClientID}
	}
	return out
}
