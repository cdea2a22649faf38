package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/qbroker/qbroker/client"
)

// HTTP paths of the streamable HTTP transport.
const (
	// EndpointPath is the MCP endpoint.
	EndpointPath = "/mcp"
	// MetadataPath is the protected resource metadata (RFC 9728 §3) of the
	// endpoint; it is also served at MetadataPath+EndpointPath, the
	// path-suffixed form the RFC derives from the resource URL.
	MetadataPath = "/.well-known/oauth-protected-resource"
)

// HTTPOptions configures HTTPHandler.
type HTTPOptions struct {
	// PublicURL is the base URL clients reach this server at (scheme, host,
	// optional path prefix; no trailing slash), e.g. https://mcp.example.com.
	// The resource identifier is PublicURL+EndpointPath.
	PublicURL string
	// AuthorizationServer is the issuer of the access tokens: the broker's
	// public URL. Default: the broker client's address.
	AuthorizationServer string
}

// HTTPHandler serves the streamable HTTP transport at EndpointPath as an
// OAuth 2.0 protected resource: every request needs "Authorization: Bearer
// <broker token>", which the broker verifies (auth/token/lookup-self); a
// missing or refused token is 401 with a WWW-Authenticate challenge that
// points at the resource metadata, served at MetadataPath. Each tool call
// acts with the token of the request that carried it; a session stays with
// the agent that opened it.
func (s *Server) HTTPHandler(o HTTPOptions) (http.Handler, error) {
	if s.o.Broker == nil {
		return nil, errors.New("mcp: the HTTP transport checks every bearer token with the broker: a broker client is required (a local agent serves stdio only)")
	}
	base := strings.TrimSuffix(o.PublicURL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("mcp: public URL %q must start with http:// or https://", o.PublicURL)
	}
	as := o.AuthorizationServer
	if as == "" {
		as = s.o.Broker.Addr()
	}
	resource := base + EndpointPath
	metaURL := base + MetadataPath
	meta := &oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{as},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "qbroker MCP server",
		ResourceDocumentation:  "https://github.com/qbroker/qbroker/blob/main/docs/mcp.md",
	}

	srv := s.MCPServer(true)
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Logger:         s.log,
		SessionTimeout: 30 * time.Minute,
	})
	protect := auth.RequireBearerToken(s.verifyToken, &auth.RequireBearerTokenOptions{ResourceMetadataURL: metaURL})

	mux := http.NewServeMux()
	metaHandler := auth.ProtectedResourceMetadataHandler(meta)
	mux.Handle(MetadataPath, metaHandler)
	mux.Handle(MetadataPath+EndpointPath, metaHandler)
	mux.Handle(EndpointPath, protect(mcpHandler))
	return mux, nil
}

// verifyToken asks the broker whether a bearer token is a live broker
// token. The answer names the agent (so a session cannot be taken over
// with another agent's token) and its expiry. Errors never echo the token.
func (s *Server) verifyToken(ctx context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
	info, err := s.o.Broker.WithToken(tok).LookupSelf(ctx)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status < 500 {
			return nil, fmt.Errorf("%w: the broker refused this token (invalid, expired or revoked)", auth.ErrInvalidToken)
		}
		s.log.WarnContext(ctx, "token check failed", "err", redact(err.Error()))
		return nil, errors.New("the broker could not check the token; try again later")
	}
	if info.EntityID == "" {
		return nil, fmt.Errorf("%w: not an agent's token", auth.ErrInvalidToken)
	}
	ti := &auth.TokenInfo{UserID: info.EntityID, Expiration: time.Now().Add(24 * time.Hour)}
	if info.ExpireTime != nil {
		ti.Expiration = *info.ExpireTime
	}
	return ti, nil
}
