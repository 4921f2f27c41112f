#!/usr/bin/env node
// A stand-in for GitHub in the OAuth tests: the parts of GitHub's OAuth web flow and REST API that
// mcp-bastion's GitHub preset uses, laid out like GitHub Enterprise Server (the web flow at the
// root, the REST API below /api/v3), with the shapes of the real answers. It is the third party of
// the tests, not the thing under test. No dependencies beyond Node itself.
//
//   GET  /login/oauth/authorize       a login form (any login, any password; `prompt=login`, the
//                                     field the tests' browsers fill), then 302 to the callback
//                                     with `code` and `state`
//   POST /login/oauth/access_token    form or JSON body; PKCE S256 checked when the authorization
//                                     had a challenge; JSON with `Accept: application/json`,
//                                     form-encoded otherwise; a refused code is a 200 with `error`
//   GET  /api/v3/user                 {login, id, node_id, name, email (public: null), type, …}
//   GET  /api/v3/user/emails          with `user:email` (or `user`): [{email, primary, verified, visibility}]
//   GET  /api/v3/user/orgs            with `read:org`: the organisations
//   GET  /api/v3/user/memberships/orgs/{org}                with `read:org`: {state, role, organization, user}, or 404
//   GET  /api/v3/orgs/{org}/teams/{team}/memberships/{user} with `read:org`: {url, role, state}, or 404
//   GET  /api/v3/user/teams           with `read:org`: [{id, name, slug, organization}]
//
// A user is whoever logs in: id 1000 + the position of the login in the order first seen (stable
// for the run), `<login>@example.com` verified and primary, `<login>@unverified.example` not
// verified. Memberships come from the command line.
//
// Usage:
//   node tests/clients/github_api.mjs --client-id ID --client-secret S --redirect-uri URI \
//       [--org acme=alice,bob] [--team acme/platform=alice] [--pending acme=carol] [--port 0] \
//       [--print-secrets]
//
// With --print-secrets, every secret of a flow it sees or issues (mcp-bastion's `state` and PKCE
// verifier, the codes, the access tokens) is printed on stderr as `secret-of-the-flow VALUE`, for
// the tests that check none of them reaches mcp-bastion's logs.
//
// Prints `github stand-in listening on http://127.0.0.1:PORT` on stderr once it listens.

import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    "redirect-uri": { type: "string" },
    org: { type: "string", multiple: true, default: [] },
    team: { type: "string", multiple: true, default: [] },
    pending: { type: "string", multiple: true, default: [] },
    "print-secrets": { type: "boolean", default: false },
  },
});
if (!args["client-id"] || !args["client-secret"] || !args["redirect-uri"]) {
  console.error("usage: github_api.mjs --client-id ID --client-secret S --redirect-uri URI [--org ORG=LOGIN,…] [--team ORG/TEAM=LOGIN,…]");
  process.exit(2);
}

/** `name=a,b` options as a map of lower-cased name -> set of logins. */
function members(list) {
  const map = new Map();
  for (const item of list) {
    const [name, logins] = item.split("=");
    map.set(name.toLowerCase(), new Set((logins ?? "").split(",").filter(Boolean)));
  }
  return map;
}
const orgs = members(args.org);
const teams = members(args.team);
const pending = members(args.pending);

const users = new Map(); // login -> user
function user(login) {
  if (!users.has(login)) {
    const id = 1000 + users.size;
    users.set(login, {
      login,
      id,
      node_id: Buffer.from(`04:User${id}`).toString("base64"),
      avatar_url: `https://avatars.example/u/${id}`,
      type: "User",
      site_admin: false,
      name: login.charAt(0).toUpperCase() + login.slice(1),
      email: null,
    });
  }
  return users.get(login);
}

const reveal = (value) => {
  if (args["print-secrets"] && value) console.error(`secret-of-the-flow ${value}`);
  return value;
};

const codes = new Map(); // code -> {login, scope, challenge, redirect_uri}
const tokens = new Map(); // token -> {login, scope}
const random = (prefix) => prefix + randomBytes(18).toString("base64url");

function send(res, status, body, headers = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/html; charset=utf-8" : "application/json; charset=utf-8",
    ...headers,
  });
  res.end(text);
}

const notFound = { message: "Not Found", documentation_url: "https://docs.github.com/rest", status: "404" };

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  if ((req.headers["content-type"] ?? "").includes("application/json")) return JSON.parse(text || "{}");
  return Object.fromEntries(new URLSearchParams(text));
}

const entities = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (s) => s.replace(/[&<>"']/g, (c) => entities[c]);

function authorize(req, res, url) {
  const q = url.searchParams;
  if (q.get("client_id") !== args["client-id"]) {
    return send(res, 404, "<h1>Not Found</h1><p>unknown client_id</p>");
  }
  // GitHub accepts the registered callback URL or a path below it; this stand-in wants it exactly
  const redirectUri = q.get("redirect_uri") ?? args["redirect-uri"];
  if (redirectUri !== args["redirect-uri"]) {
    return send(res, 400, "<h1>The redirect_uri MUST match the registered callback URL for this application.</h1>");
  }
  if (req.method === "GET") {
    const action = escape(`/login/oauth/authorize?${q.toString()}`);
    return send(
      res,
      200,
      `<!doctype html><title>Sign in to GitHub stand-in</title><form method="post" action="${action}">` +
        `<input type="hidden" name="prompt" value="login"><input name="login"><input name="password" type="password">` +
        `<button>Sign in</button></form>`,
    );
  }
  return body(req).then((form) => {
    const login = String(form.login ?? "").trim();
    if (!login) return send(res, 400, "<h1>login required</h1>");
    user(login);
    reveal(q.get("state"));
    const code = reveal(randomBytes(10).toString("hex"));
    codes.set(code, {
      login,
      scope: (q.get("scope") ?? "").split(/[ ,]+/).filter(Boolean),
      challenge: q.get("code_challenge"),
      method: q.get("code_challenge_method"),
      redirect_uri: redirectUri,
    });
    const back = new URL(redirectUri);
    back.searchParams.set("code", code);
    if (q.get("state") !== null) back.searchParams.set("state", q.get("state"));
    res.writeHead(302, { location: back.toString() });
    res.end();
  });
}

async function accessToken(req, res) {
  const form = await body(req);
  const wantsJson = (req.headers.accept ?? "").includes("application/json");
  const answer = (fields) => {
    if (wantsJson) return send(res, 200, fields);
    res.writeHead(200, { "content-type": "application/x-www-form-urlencoded; charset=utf-8" });
    res.end(new URLSearchParams(fields).toString());
  };
  // GitHub takes the client's credentials in the form or in Basic
  let [clientId, secret] = [form.client_id, form.client_secret];
  const basic = (req.headers.authorization ?? "").match(/^Basic (.+)$/);
  if (basic) [clientId, secret] = Buffer.from(basic[1], "base64").toString().split(":").map(decodeURIComponent);
  if (clientId !== args["client-id"] || secret !== args["client-secret"]) {
    return answer({ error: "incorrect_client_credentials", error_description: "The client_id and/or client_secret passed are incorrect." });
  }
  const grant = codes.get(form.code);
  codes.delete(form.code);
  const refused = { error: "bad_verification_code", error_description: "The code passed is incorrect or expired." };
  if (!grant) return answer(refused);
  if (form.redirect_uri && form.redirect_uri !== grant.redirect_uri) {
    return answer({ error: "redirect_uri_mismatch", error_description: "The redirect_uri MUST match the registered callback URL for this application." });
  }
  if (grant.challenge) {
    const verifier = reveal(form.code_verifier ?? "");
    const computed = createHash("sha256").update(verifier).digest("base64url");
    if (grant.method !== "S256" || computed !== grant.challenge) return answer(refused);
  }
  const token = reveal(random("gho_"));
  tokens.set(token, { login: grant.login, scope: grant.scope });
  return answer({ access_token: token, token_type: "bearer", scope: grant.scope.join(",") });
}

function api(req, res, path) {
  if (!req.headers["user-agent"]) {
    return send(res, 403, { message: "Request forbidden by administrative rules. Please make sure your request has a User-Agent header." });
  }
  const auth = (req.headers.authorization ?? "").match(/^(?:Bearer|token) (.+)$/i);
  const session = auth && tokens.get(auth[1]);
  if (!session) {
    return send(res, 401, { message: "Bad credentials", documentation_url: "https://docs.github.com/rest", status: "401" });
  }
  const me = user(session.login);
  const has = (...scopes) => scopes.some((s) => session.scope.includes(s));
  const readOrg = () => has("read:org", "write:org", "admin:org");
  const orgJson = (login) => ({ login, id: 5000 + [...orgs.keys()].indexOf(login), url: `${origin}/api/v3/orgs/${login}`, description: null });
  let m;
  if (path === "/user") return send(res, 200, me);
  if (path === "/user/emails") {
    if (!has("user:email", "user")) return send(res, 404, notFound);
    return send(res, 200, [
      { email: `${me.login}@example.com`, primary: true, verified: true, visibility: "private" },
      { email: `${me.login}@unverified.example`, primary: false, verified: false, visibility: null },
    ]);
  }
  if (path === "/user/orgs") {
    if (!readOrg()) return send(res, 200, []);
    return send(res, 200, [...orgs].filter(([, who]) => who.has(me.login)).map(([org]) => orgJson(org)));
  }
  if ((m = path.match(/^\/user\/memberships\/orgs\/([^/]+)$/))) {
    if (!readOrg()) return send(res, 403, { message: "You need at least read:org scope or user scope to list your organization memberships." });
    const org = decodeURIComponent(m[1]).toLowerCase();
    const state = orgs.get(org)?.has(me.login) ? "active" : pending.get(org)?.has(me.login) ? "pending" : null;
    if (!state) return send(res, 404, notFound);
    return send(res, 200, {
      url: `${origin}/api/v3/orgs/${org}/memberships/${me.login}`,
      state,
      role: "member",
      organization_url: `${origin}/api/v3/orgs/${org}`,
      organization: orgJson(org),
      user: { login: me.login, id: me.id, type: "User" },
    });
  }
  if ((m = path.match(/^\/orgs\/([^/]+)\/teams\/([^/]+)\/memberships\/([^/]+)$/))) {
    if (!readOrg()) return send(res, 404, notFound);
    const [org, team, login] = m.slice(1).map((s) => decodeURIComponent(s).toLowerCase());
    // only members of the team's organisation may look
    if (!orgs.get(org)?.has(me.login)) return send(res, 404, notFound);
    const who = [...(teams.get(`${org}/${team}`) ?? [])].find((l) => l.toLowerCase() === login);
    if (!who) return send(res, 404, notFound);
    return send(res, 200, { url: `${origin}/api/v3/teams/1/memberships/${who}`, role: "member", state: "active" });
  }
  if (path === "/user/teams") {
    if (!readOrg()) return send(res, 200, []);
    return send(
      res,
      200,
      [...teams]
        .filter(([, who]) => who.has(me.login))
        .map(([name], i) => {
          const [org, slug] = name.split("/");
          return { id: 7000 + i, name: slug, slug, privacy: "closed", organization: orgJson(org) };
        }),
    );
  }
  return send(res, 404, notFound);
}

let origin = "";
const server = createServer((req, res) => {
  const url = new URL(req.url, origin);
  Promise.resolve()
    .then(() => {
      if (url.pathname === "/login/oauth/authorize") return authorize(req, res, url);
      if (url.pathname === "/login/oauth/access_token" && req.method === "POST") return accessToken(req, res);
      if (url.pathname.startsWith("/api/v3/") && req.method === "GET") return api(req, res, url.pathname.slice("/api/v3".length));
      return send(res, 404, notFound);
    })
    .catch((e) => {
      console.error(`github stand-in: ${e}`);
      if (!res.headersSent) send(res, 500, { message: "stand-in error" });
    });
});
server.listen(Number(args.port), "127.0.0.1", () => {
  origin = `http://127.0.0.1:${server.address().port}`;
  console.error(`github stand-in listening on ${origin}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
