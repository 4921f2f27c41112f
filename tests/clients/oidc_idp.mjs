#!/usr/bin/env node
// A real OpenID provider for the OAuth tests: `oidc-provider` (OpenID Certified) on loopback, with
// one confidential client (mcp-bastion's upstream registration) and its development login form
// (any login, any password; the login becomes the subject, `<login>@example.com` its verified
// email; `--group NAME=LOGIN,…` puts logins in a group, released as the `groups` claim with the
// `groups` scope). The module is loaded from tests/node/node_modules (`npm ci --prefix tests/node`), or from
// $OIDC_PROVIDER_MODULE (a path to its lib/index.js).
//
// Usage:
//   node tests/clients/oidc_idp.mjs --port 0 --client-id bastion --client-secret S \
//       --redirect-uri http://127.0.0.1:8080/oauth/callback [--group mcp-users=alice] \
//       [--print-secrets] [--refresh-tokens] [--access-token-ttl SECS] \
//       [--tls-cert PEM --tls-key PEM]
//
// With --print-secrets, every secret of a flow the provider sees or issues (the `state`, `nonce`
// and PKCE verifier mcp-bastion sends, the codes, the access, ID and refresh tokens) is printed on
// stderr as `secret-of-the-flow VALUE`, for the tests that check none of them reaches
// mcp-bastion's logs.
// --refresh-tokens issues a refresh token with every code (not only for `offline_access`);
// --access-token-ttl makes access tokens short-lived (for the upstream-token refresh tests).
// --tls-cert and --tls-key serve it over https with that certificate (an identity provider behind
// a private CA, for the `--outbound-ca` tests); the issuer is then `https://127.0.0.1:PORT`.
//
// Prints `oidc-provider listening on http(s)://127.0.0.1:PORT` on stderr once it listens.

import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { pathToFileURL } from "node:url";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    "redirect-uri": { type: "string", multiple: true },
    group: { type: "string", multiple: true, default: [] },
    "print-secrets": { type: "boolean", default: false },
    "refresh-tokens": { type: "boolean", default: false },
    "access-token-ttl": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
  },
});
if (!args["client-id"] || !args["client-secret"] || !args["redirect-uri"]) {
  console.error("usage: oidc_idp.mjs --client-id ID --client-secret S --redirect-uri URI [--port N]");
  process.exit(2);
}

// login -> the groups it is in
const groupsOf = new Map();
for (const item of args.group) {
  const [group, logins] = item.split("=");
  for (const login of (logins ?? "").split(",").filter(Boolean)) {
    groupsOf.set(login, [...(groupsOf.get(login) ?? []), group]);
  }
}

const moduleUrl = process.env.OIDC_PROVIDER_MODULE
  ? pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href
  : new URL("../node/node_modules/oidc-provider/lib/index.js", import.meta.url).href;
const { default: Provider } = await import(moduleUrl);

// the port must be known before the provider (its issuer) is made
const tls = Boolean(args["tls-cert"] && args["tls-key"]);
const server = tls
  ? createTlsServer({ cert: readFileSync(args["tls-cert"]), key: readFileSync(args["tls-key"]) })
  : createServer();
await new Promise((resolve) => server.listen(Number(args.port), "127.0.0.1", resolve));
const issuer = `${tls ? "https" : "http"}://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args["client-id"],
      client_secret: args["client-secret"],
      redirect_uris: args["redirect-uri"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  // the ID token carries the claims itself (mcp-bastion does not call userinfo)
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, name: id, groups: groupsOf.get(id) ?? [] };
      },
    };
  },
  cookies: { keys: ["oauth-test-cookie-key-0123456789"] },
  ...(args["refresh-tokens"]
    ? { issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token") }
    : {}),
  ...(args["access-token-ttl"] ? { ttl: { AccessToken: Number(args["access-token-ttl"]) } } : {}),
});
provider.proxy = false;
if (args["print-secrets"]) {
  provider.use(async (ctx, next) => {
    await next();
    const seen = [];
    let params = {};
    try {
      params = ctx.oidc?.params ?? {};
    } catch {
      // not an OIDC endpoint
    }
    seen.push(params.state, params.nonce, params.code, params.code_verifier, params.refresh_token);
    const location = ctx.response.get("location");
    if (location) seen.push(new URL(location, issuer).searchParams.get("code"));
    if (ctx.body && typeof ctx.body === "object" && !Buffer.isBuffer(ctx.body)) {
      seen.push(ctx.body.access_token, ctx.body.id_token, ctx.body.refresh_token);
    }
    for (const secret of seen) {
      if (typeof secret === "string" && secret.length >= 8) console.error(`secret-of-the-flow ${secret}`);
    }
  });
}
server.on("request", provider.callback());
console.error(`oidc-provider listening on ${issuer}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
