// A throwaway OpenID Connect provider for qbroker's e2e tests: the certified
// npm oidc-provider (pinned in package-lock.json), in memory, on 127.0.0.1.
//
//   node server.mjs [PORT]        (or OIDC_PORT=PORT; 0 or unset: a free port)
//
// Prints "listening on http://127.0.0.1:PORT" once it serves; that URL is the
// issuer (discovery at /.well-known/openid-configuration, keys at /jwks).
//
// - Client "quantum-agent" (secret: $OIDC_CLIENT_SECRET, default
//   "quantum-agent-secret", HTTP basic auth) may use client_credentials and
//   the device flow (urn:ietf:params:oauth:grant-type:device_code).
//   Client "other-agent" (same secret, same grants) is a second identity of
//   the same issuer, for tests of claim bindings.
// - Access tokens are RS256 JWTs (RFC 9068, typ at+jwt) for the resource
//   https://broker.test (the default) with scope "quantum". The resource
//   https://other.test exists too so tests can get a validly signed token
//   for the wrong audience. Any other resource: invalid_target.
// - Signing keys are generated at start (not the library's fixed dev keys).
// - Device flow: devInteractions login accepts any login/password; consent
//   is automatic (loadExistingGrant grants the requested scopes).
//
// oidc-provider 9 says "Unsupported runtime. Use Node.js v22.x LTS" on Node
// 20; every flow used here works regardless.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

const CLIENT_ID = 'quantum-agent';
const OTHER_CLIENT_ID = 'other-agent';
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET || 'quantum-agent-secret';
const SCOPE = 'quantum';
const RESOURCES = {
  'https://broker.test': { scope: SCOPE },
  'https://other.test': { scope: SCOPE },
};
const DEFAULT_RESOURCE = 'https://broker.test';

const portArg = process.argv[2] ?? process.env.OIDC_PORT ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`server.mjs: bad port ${JSON.stringify(portArg)}`);
  process.exit(2);
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

function config() {
  return {
    clients: [CLIENT_ID, OTHER_CLIENT_ID].map((id) => ({
      client_id: id,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // OIDC scopes only: "quantum" is a resource scope (getResourceServerInfo).
    // Listing it here too makes it an OIDC scope that the auto-consent grant
    // lacks (consent prompt, reason op_scopes_missing).
    scopes: ['openid', 'offline_access'],
    features: {
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => DEFAULT_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          const rs = RESOURCES[indicator];
          if (!rs) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: rs.scope,
            audience: indicator,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // Auto-consent: the end user only signs in. The grant holds the OIDC
    // scopes asked for and the resource scopes of every requested resource.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) {
          return existing;
        }
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      const requested = ctx.oidc.params?.scope ? String(ctx.oidc.params.scope).split(' ') : [];
      const oidcScopes = requested.filter((s) => s === 'openid' || s === 'offline_access');
      if (oidcScopes.length > 0) {
        grant.addOIDCScope(oidcScopes.join(' '));
      }
      for (const indicator of Object.keys(ctx.oidc.resourceServers ?? {})) {
        grant.addResourceScope(indicator, RESOURCES[indicator]?.scope ?? '');
      }
      await grant.save();
      return grant;
    },
  };
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, config());
  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
  server.on('request', provider.callback());
  console.log(`listening on ${issuer}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
