#!/usr/bin/env node
// The official TypeScript SDK's OAuth client (@modelcontextprotocol/sdk 1.x, an
// `OAuthClientProvider` held in memory) logs in to mcp-bastion's authorization server and calls a
// tool; this script plays the browser (fetch without automatic redirects, one cookie jar).
//
// Usage: node tests/clients/ts_oauth.mjs --url URL [--transport streamable|sse] [--login NAME]
//            [--redirect-uri URI] [--cimd-cert CERT --cimd-key KEY] [--probe-url URL]
//            [--whoami-env VAR] [--profile NAME]
//
// The SDK gets the 401, reads the RFC 9728 and RFC 8414 metadata, registers dynamically (or,
// with --cimd-cert/--cimd-key, uses a Client ID Metadata Document this script serves over https on loopback
// with that certificate and key), and
// hands its authorization URL to the browser: mcp-bastion sends it to the identity provider
// (oidc-provider's development login form, then its consent prompt), back to mcp-bastion's consent
// page (approved), and to the client's redirect URI, whose code goes to `finishAuth`. Then:
// initialize and the `whoami` tool; a refresh (the access token replaced by a dead one, so the
// SDK's 401 handling refreshes) and the tool again; then the refresh token is revoked (RFC 7009)
// and the last access token must be refused (401). With --whoami-env VAR, the caller is read from
// variable VAR of the `get-env` tool's answer (a stdio server-everything behind the binary, given
// the subject with `--principal-env VAR=subject`) instead of a `whoami` tool. With --profile NAME
// (a profile of profiles.json, e.g. `everything` for server-everything behind the binary), the first
// authenticated session also runs ts_client.mjs's full scenario of that profile (tools listed and
// called, progress, sampling, elicitation, a resource read, a prompt got) after the caller check.
//
// Prints one JSON line {"whoami", "client_id", "metadata_document", "refreshed", "revoked_status",
// "pages", "secrets", "scenario" (the scenario's steps, or null without --profile)} (secrets: the code and tokens of the flow, for the test's log check); exit
// status 1 with the failing step on stderr otherwise.

import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { parseArgs } from "node:util";

const SDK = new URL("../node/node_modules/@modelcontextprotocol/sdk/dist/esm/", import.meta.url);
const { Client } = await import(new URL("client/index.js", SDK).href);
const { StreamableHTTPClientTransport } = await import(new URL("client/streamableHttp.js", SDK).href);
const { SSEClientTransport } = await import(new URL("client/sse.js", SDK).href);
const { UnauthorizedError } = await import(new URL("client/auth.js", SDK).href);
const { OneClient, loadProfile } = await import(new URL("./ts_client.mjs", import.meta.url).href);

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    login: { type: "string", default: "alice" },
    // the subject whoami must answer (default --login; a GitHub login's subject is its numeric id)
    "expect-subject": { type: "string" },
    "redirect-uri": { type: "string", default: "http://127.0.0.1:53682/callback" },
    transport: { type: "string", default: "streamable" },
    "cimd-cert": { type: "string" },
    "cimd-key": { type: "string" },
    "probe-url": { type: "string" },
    "whoami-env": { type: "string" },
    profile: { type: "string" },
  },
});
if (!args.url) {
  console.error("usage: ts_oauth.mjs --url URL [--login NAME] [--redirect-uri URI]");
  process.exit(2);
}
const REDIRECT = args["redirect-uri"];

class Browser {
  cookies = new Map();
  pages = [];

  async send(method, url, form) {
    const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ") };
    let body;
    if (form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      if (i > 0) this.cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1));
    }
    this.pages.push(`${method} ${new URL(url).pathname} -> ${res.status}`);
    return res;
  }

  async authorize(start) {
    let url = start;
    let form;
    for (let i = 0; i < 30; i++) {
      if (url.startsWith(REDIRECT)) return new URL(url);
      const res = await this.send(form ? "POST" : "GET", url, form);
      form = undefined;
      const location = res.headers.get("location");
      if (location) {
        url = new URL(location, url).href;
        continue;
      }
      const html = await res.text();
      const action = /<form[^>]*action="([^"]+)"/.exec(html);
      if (res.status !== 200 || !action) throw new Error(`${url} answered ${res.status}: ${html.slice(0, 300)}`);
      url = new URL(action[1].replaceAll("&amp;", "&"), url).href;
      const field = (name) => (new RegExp(`name="${name}" value="([^"]+)"`).exec(html) ?? [])[1];
      if (html.includes('name="prompt" value="login"')) {
        form = { prompt: "login", login: args.login, password: "any" };
      } else if (html.includes('name="prompt" value="consent"')) {
        form = { prompt: "consent" };
      } else if (html.includes('name="consent_id"')) {
        form = { consent_id: field("consent_id"), csrf: field("csrf"), decision: "approve" };
      } else {
        throw new Error(`an unknown form at ${url}: ${html.slice(0, 300)}`);
      }
    }
    throw new Error("too many redirects");
  }
}

/** Serves the Client ID Metadata Document over https on loopback; its URL. */
async function serveCimd(cert, key) {
  let url;
  const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    const found = req.url === "/client.json";
    res.writeHead(found ? 200 : 404, { "content-type": "application/json" });
    res.end(
      found
        ? JSON.stringify({
            client_id: url,
            client_name: "ts-oauth-cimd",
            redirect_uris: [REDIRECT],
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
            token_endpoint_auth_method: "none",
          })
        : "{}",
    );
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  url = `https://127.0.0.1:${server.address().port}/client.json`;
  return url;
}

const clientMetadataUrl = args["cimd-cert"] ? await serveCimd(args["cimd-cert"], args["cimd-key"]) : undefined;

const memory = {};
const provider = {
  clientMetadataUrl,
  get redirectUrl() {
    return REDIRECT;
  },
  get clientMetadata() {
    return {
      client_name: "ts-oauth-test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "mcp",
    };
  },
  clientInformation: () => memory.client,
  saveClientInformation: (c) => {
    memory.client = c;
  },
  tokens: () => memory.tokens,
  saveTokens: (t) => {
    memory.tokens = t;
  },
  redirectToAuthorization: (url) => {
    memory.authorizationUrl = url;
  },
  saveCodeVerifier: (v) => {
    memory.verifier = v;
  },
  codeVerifier: () => memory.verifier,
};

function transportFor() {
  const Transport = args.transport === "sse" ? SSEClientTransport : StreamableHTTPClientTransport;
  return new Transport(new URL(args.url), { authProvider: provider });
}

/**
 * The caller, from `whoami` (or variable --whoami-env of `get-env`); then, with `scenario` (a
 * ts_client.mjs `OneClient`), its full scenario on the same session (steps in `scenario.summary`).
 */
async function whoami(scenario) {
  const client = scenario ? scenario.makeClient() : new Client({ name: "ts-oauth-test", version: "1.0.0" });
  const transport = transportFor();
  await client.connect(transport);
  try {
    const env = args["whoami-env"];
    const result = await client.callTool({ name: env ? "get-env" : "whoami", arguments: {} });
    const caller = env ? (JSON.parse(result.content[0].text)[env] ?? "") : result.content[0].text;
    if (scenario) {
      scenario.done("initialize", { protocolVersion: transport.protocolVersion });
      try {
        await scenario.full(client);
      } catch (e) {
        throw new Error(`scenario step ${JSON.stringify(scenario.step)}: ${e?.message ?? e}`);
      }
    }
    return caller;
  } finally {
    await client.close();
  }
}

const browser = new Browser();
let step = "401 and registration";
try {
  const transport = transportFor();
  try {
    await new Client({ name: "ts-oauth-test", version: "1.0.0" }).connect(transport);
    throw new Error("connected without logging in");
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  step = "login";
  const back = await browser.authorize(memory.authorizationUrl.href);
  const code = back.searchParams.get("code");
  await transport.finishAuth(code);
  step = args.profile ? `whoami, then the ${JSON.stringify(args.profile)} scenario` : "whoami";
  const scenario = args.profile
    ? new OneClient({ headers: {}, url: args.url, transport: args.transport, scenario: "full", timeout: 60, verbose: false }, loadProfile(args.profile), 0)
    : undefined;
  const who = await whoami(scenario);
  const expected = args["expect-subject"] ?? args.login;
  if (who !== expected) throw new Error(`whoami answered ${who}`);
  step = "refresh";
  const first = memory.tokens;
  memory.tokens = { ...first, access_token: "dead.access.token" };
  const again = await whoami();
  const second = memory.tokens;
  const refreshed = second.refresh_token !== first.refresh_token && second.access_token !== first.access_token;
  if (again !== expected || !refreshed) throw new Error("the refresh did not bring new tokens");
  step = "revoke";
  const origin = new URL(args.url).origin;
  const meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json();
  const revoked = await fetch(meta.revocation_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: second.refresh_token, client_id: memory.client.client_id }).toString(),
  });
  if (revoked.status !== 200) throw new Error(`revocation answered ${revoked.status}`);
  const probe = await fetch(args["probe-url"] ?? args.url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${second.access_token}`,
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
  });
  console.log(
    JSON.stringify({
      whoami: who,
      client_id: memory.client.client_id,
      metadata_document: clientMetadataUrl !== undefined && memory.client.client_id === clientMetadataUrl,
      refreshed,
      revoked_status: probe.status,
      scenario: scenario ? scenario.summary.steps : null,
      pages: browser.pages,
      // for the test's check that none of them reached the server's logs
      secrets: [code, first.access_token, first.refresh_token, second.access_token, second.refresh_token],
    }),
  );
} catch (e) {
  console.error(`ts_oauth: step ${step} failed: ${e?.stack ?? e}; browser: ${JSON.stringify(browser.pages)}`);
  process.exit(1);
}
