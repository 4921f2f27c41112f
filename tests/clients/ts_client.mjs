#!/usr/bin/env node
// Drive an MCP server through the official TypeScript SDK (@modelcontextprotocol/sdk 1.x) and check
// every answer. The SDK is loaded from tests/node/node_modules (`npm ci --prefix tests/node`).
//
// Usage:
//   node tests/clients/ts_client.mjs --url http://127.0.0.1:8080/mcp --transport streamable
//   node tests/clients/ts_client.mjs --url http://127.0.0.1:8080/sse --transport sse --profile everything
//   node tests/clients/ts_client.mjs --url URL --transport streamable --scenario echo --concurrency 50
//
// Scenario `full` (default), per client: initialize; tools/list; tools/call of the echo tool; a tool
// that sends progress notifications; a tool that makes the server send sampling/createMessage (and
// elicitation/create) to this client, answered by this client's handlers; resources/read;
// prompts/get; session end (streamable: terminateSession() = DELETE, then close; sse: close).
// Scenario `echo`: initialize, then `--calls` concurrent echo calls with distinct texts, each
// checked to come back to the caller that sent it, then session end.
//
// The tools, resource and prompt come from a profile (`--profile`): a name from profiles.json next
// to this file, a path to a JSON file, or inline JSON. See profiles.json for the format.
//
// Exit status 0 and one JSON summary line on stdout on success; exit status 1 and a message naming
// the client and the step that failed on stderr otherwise (2 for bad arguments).
//
// Imported as a module (ts_oauth.mjs does), it runs nothing and exports `OneClient` and
// `loadProfile`, so that a session opened elsewhere runs the same scenario.

import { existsSync, readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const PROFILES_PATH = new URL("./profiles.json", import.meta.url);
const SECTIONS = ["echo", "progress", "sampling", "elicitation", "resource", "prompt"];

function usageError(message) {
  process.stderr.write(`ts_client: ${message}\n`);
  process.exit(2);
}

if (!existsSync(new URL("package.json", SDK_ROOT))) {
  usageError(`the TypeScript SDK is not installed at ${SDK_ROOT.pathname}: run \`npm ci --prefix tests/node\``);
}
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { SSEClientTransport } = await sdk("client/sse.js");
const { CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema } = await sdk("types.js");
const SDK_VERSION = JSON.parse(readFileSync(new URL("package.json", SDK_ROOT), "utf8")).version;

class ScenarioError extends Error {}

// ---------------------------------------------------------------------------------------------
// arguments and profile

function parseCli(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        url: { type: "string" },
        transport: { type: "string" },
        profile: { type: "string", default: "everything" },
        scenario: { type: "string" },
        concurrency: { type: "string", default: "1" },
        calls: { type: "string", default: "3" },
        timeout: { type: "string", default: "60" },
        "strict-session-end": { type: "boolean", default: false },
        header: { type: "string", multiple: true, default: [] },
        verbose: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    });
  } catch (err) {
    usageError(err.message);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(
      "usage: ts_client.mjs --url URL --transport streamable|sse [--profile NAME|FILE|JSON]\n" +
        "                     [--scenario full|echo] [--concurrency N] [--calls N] [--timeout S]\n" +
        "                     [--strict-session-end] [--header 'Name: value']... [--verbose]\n",
    );
    process.exit(0);
  }
  if (!v.url) usageError("--url is required");
  if (!["streamable", "sse"].includes(v.transport)) usageError("--transport must be streamable or sse");
  const concurrency = Number.parseInt(v.concurrency, 10);
  const calls = Number.parseInt(v.calls, 10);
  const timeout = Number.parseFloat(v.timeout);
  if (!(concurrency >= 1) || !(calls >= 1) || !(timeout > 0)) usageError("--concurrency/--calls must be >= 1, --timeout > 0");
  const scenario = v.scenario ?? (concurrency === 1 ? "full" : "echo");
  if (!["full", "echo"].includes(scenario)) usageError("--scenario must be full or echo");
  const headers = {};
  for (const spec of v.header) {
    const at = spec.indexOf(":");
    if (at <= 0) usageError(`--header expects 'Name: value', got ${JSON.stringify(spec)}`);
    headers[spec.slice(0, at).trim()] = spec.slice(at + 1).trim();
  }
  return {
    headers,
    url: v.url,
    transport: v.transport,
    profile: v.profile,
    scenario,
    concurrency,
    calls,
    timeout,
    strictSessionEnd: v["strict-session-end"],
    verbose: v.verbose,
  };
}

export function loadProfile(spec) {
  let profile;
  if (spec.trimStart().startsWith("{")) {
    profile = JSON.parse(spec);
  } else if (existsSync(spec)) {
    profile = JSON.parse(readFileSync(spec, "utf8"));
  } else {
    const profiles = JSON.parse(readFileSync(PROFILES_PATH, "utf8"));
    if (spec.startsWith("_") || !(spec in profiles)) {
      const names = Object.keys(profiles).filter((k) => !k.startsWith("_"));
      usageError(`unknown profile ${JSON.stringify(spec)} (known: ${names.join(", ")}; or a JSON file or inline JSON)`);
    }
    profile = profiles[spec];
  }
  const missing = SECTIONS.filter((s) => !(s in profile));
  if (missing.length) usageError(`profile ${JSON.stringify(spec)} lacks section(s) ${missing} (set a section to null to skip it)`);
  return profile;
}

function withNonce(value, nonce) {
  if (typeof value === "string") return value.replaceAll("{nonce}", nonce);
  if (Array.isArray(value)) return value.map((v) => withNonce(v, nonce));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withNonce(v, nonce)]));
  }
  return value;
}

const newNonce = (label) => `${label}-${randomBytes(6).toString("hex")}`;

function short(text, limit = 400) {
  return text.length <= limit ? text : `${text.slice(0, limit)}... (${text.length} chars)`;
}

function toolText(result) {
  const parts = (result.content ?? []).map((b) => b.text ?? "");
  if (result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  return parts.join("\n");
}

// ---------------------------------------------------------------------------------------------
// HTTP observation: the SDK transports take a custom fetch; we record every exchange

class HttpLog {
  constructor(extraHeaders = {}) {
    // --header: sent on every request the SDK makes (e.g. a client token the proxy must not forward)
    this.extraHeaders = extraHeaders;
    this.exchanges = [];
    this.sessionId = undefined;
    this.protocolVersion = undefined;
  }

  fetch() {
    return async (url, init = {}) => {
      const method = (init.method ?? "GET").toUpperCase();
      const headers = new Headers(init.headers ?? {});
      const version = headers.get("mcp-protocol-version");
      if (version) this.protocolVersion = version;
      for (const [name, value] of Object.entries(this.extraHeaders)) headers.set(name, value);
      const response = await fetch(url, { ...init, headers });
      this.exchanges.push({ method, url: String(url), status: response.status });
      const sid = response.headers.get("mcp-session-id");
      if (sid && method !== "DELETE") this.sessionId = sid;
      return response;
    };
  }

  deletes() {
    return this.exchanges.filter((e) => e.method === "DELETE").map((e) => e.status);
  }
}

// ---------------------------------------------------------------------------------------------
// one client

export class OneClient {
  constructor(args, profile, index) {
    this.args = args;
    this.profile = profile;
    this.index = index;
    this.step = "connect";
    this.log = new HttpLog(args.headers);
    this.summary = { client: index, steps: {} };
    this.samplingRequests = [];
    this.samplingAnswer = undefined;
    this.elicitationRequests = [];
    this.elicitationContent = undefined;
    this.timeoutMs = Math.round(args.timeout * 1000);
  }

  done(step, info) {
    this.summary.steps[step] = info ?? "ok";
  }

  makeClient() {
    const capabilities = {};
    if (this.profile.sampling) capabilities.sampling = {};
    if (this.profile.elicitation) capabilities.elicitation = { form: {} };
    const client = new Client({ name: "mcp-bastion-ts-client", version: "0.1.0" }, { capabilities });
    if (this.profile.sampling) {
      client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
        const texts = request.params.messages.map((m) => m.content?.text ?? "");
        this.samplingRequests.push(texts.join("\n"));
        return {
          role: "assistant",
          content: { type: "text", text: this.samplingAnswer ?? newNonce("unexpected-sampling") },
          model: "mcp-bastion-test-model",
          stopReason: "endTurn",
        };
      });
    }
    if (this.profile.elicitation) {
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        this.elicitationRequests.push(request.params.message ?? "");
        if (this.elicitationContent === undefined) return { action: "decline" };
        return { action: "accept", content: this.elicitationContent };
      });
    }
    client.onerror = (err) => {
      if (this.args.verbose) process.stderr.write(`ts_client[${this.index}] transport error: ${err}\n`);
    };
    return client;
  }

  makeTransport() {
    const url = new URL(this.args.url);
    const fetch = this.log.fetch();
    if (this.args.transport === "streamable") {
      return new StreamableHTTPClientTransport(url, { fetch });
    }
    return new SSEClientTransport(url, { fetch });
  }

  async call(client, tool, args, options = {}) {
    const result = await client.callTool({ name: tool, arguments: args }, CallToolResultSchema, {
      timeout: this.timeoutMs,
      ...options,
    });
    if (result.isError) {
      throw new ScenarioError(`tools/call ${JSON.stringify(tool)} returned isError=true: ${short(toolText(result))}`);
    }
    return result;
  }

  async listTools(client, wanted) {
    // server-everything registers its sampling/elicitation tools when it sees
    // notifications/initialized, so give a just-initialized server a moment.
    const deadline = Date.now() + 5000;
    for (;;) {
      const names = [];
      let cursor;
      do {
        const listed = await client.listTools(cursor ? { cursor } : undefined, { timeout: this.timeoutMs });
        names.push(...listed.tools.map((t) => t.name));
        cursor = listed.nextCursor;
      } while (cursor);
      const missing = wanted.filter((w) => !names.includes(w));
      if (!missing.length) return names;
      if (Date.now() > deadline) {
        throw new ScenarioError(`tools/list lacks ${JSON.stringify(missing)}; it listed ${JSON.stringify(names)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async run() {
    const started = performance.now();
    const client = this.makeClient();
    const transport = this.makeTransport();
    try {
      this.step = "initialize";
      await client.connect(transport, { timeout: this.timeoutMs });
      const version = transport.protocolVersion ?? this.log.protocolVersion;
      this.summary.protocolVersion = version;
      this.summary.server = client.getServerVersion()?.name;
      this.done("initialize", { protocolVersion: version });
      if (this.args.scenario === "full") await this.full(client);
      else await this.echoMany(client);
      this.step = "session end";
      this.summary.sessionId = this.args.transport === "streamable" ? transport.sessionId : this.sseSessionId();
      if (this.args.transport === "streamable") await transport.terminateSession();
    } finally {
      await client.close().catch(() => {});
    }
    await this.checkSessionEnded();
    this.summary.seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    return this.summary;
  }

  sseSessionId() {
    const post = this.log.exchanges.find((e) => e.method === "POST");
    if (!post) return undefined;
    const params = new URL(post.url).searchParams;
    return params.get("sessionId") ?? params.get("session_id") ?? undefined;
  }

  async full(client) {
    const p = this.profile;
    this.step = "tools/list";
    const wanted = ["echo", "progress", "sampling", "elicitation"].filter((s) => p[s]).map((s) => p[s].tool);
    const names = await this.listTools(client, wanted);
    this.done("tools/list", { count: names.length });

    if (p.echo) {
      this.step = "tools/call echo";
      const nonce = newNonce(`ts${this.index}-echo`);
      const text = toolText(await this.call(client, p.echo.tool, withNonce(p.echo.arguments, nonce)));
      if (!text.includes(nonce)) throw new ScenarioError(`echo tool did not echo ${JSON.stringify(nonce)}: got ${JSON.stringify(short(text))}`);
      this.done("echo", { text: short(text, 80) });
    } else this.done("echo", { skipped: true });

    if (p.progress) {
      this.step = "tools/call progress";
      const seen = [];
      const nonce = newNonce(`ts${this.index}-progress`);
      await this.call(client, p.progress.tool, withNonce(p.progress.arguments ?? {}, nonce), {
        onprogress: (progress) => seen.push(progress),
      });
      const want = p.progress.min_notifications ?? 2;
      if (seen.length < want) {
        throw new ScenarioError(`progress callback saw ${seen.length} notification(s), wanted >= ${want}: ${JSON.stringify(seen)}`);
      }
      const values = seen.map((s) => s.progress);
      if (values.some((v, i) => i > 0 && v < values[i - 1])) {
        throw new ScenarioError(`progress values are not increasing: ${JSON.stringify(values)}`);
      }
      this.done("progress", { notifications: seen.length });
    } else this.done("progress", { skipped: true });

    if (p.sampling) {
      this.step = "tools/call sampling (server -> client sampling/createMessage)";
      const nonce = newNonce(`ts${this.index}-sampling`);
      this.samplingAnswer = `sampled answer ${newNonce(`ts${this.index}-answer`)}`;
      const result = await this.call(client, p.sampling.tool, withNonce(p.sampling.arguments ?? {}, nonce));
      if (!this.samplingRequests.length) {
        throw new ScenarioError("the sampling tool returned, but this client's sampling handler was never called");
      }
      const last = this.samplingRequests.at(-1);
      if (JSON.stringify(p.sampling.arguments ?? {}).includes("{nonce}") && !last.includes(nonce)) {
        throw new ScenarioError(
          `the sampling request this client got is not the one it caused: wanted ${JSON.stringify(nonce)} in ${JSON.stringify(short(last))}`,
        );
      }
      const text = toolText(result);
      if (!text.includes(this.samplingAnswer)) {
        throw new ScenarioError(`the tool result lacks this client's sampling answer ${JSON.stringify(this.samplingAnswer)}: ${JSON.stringify(short(text))}`);
      }
      this.done("sampling", { requests: this.samplingRequests.length });
    } else this.done("sampling", { skipped: true });

    if (p.elicitation) {
      this.step = "tools/call elicitation (server -> client elicitation/create)";
      const nonce = newNonce(`ts${this.index}-elicit`);
      this.elicitationContent = withNonce(p.elicitation.content ?? {}, nonce);
      const result = await this.call(client, p.elicitation.tool, withNonce(p.elicitation.arguments ?? {}, nonce));
      if (!this.elicitationRequests.length) {
        throw new ScenarioError("the elicitation tool returned, but this client's elicitation handler was never called");
      }
      const text = toolText(result);
      if (JSON.stringify(p.elicitation.content ?? {}).includes("{nonce}") && !text.includes(nonce)) {
        throw new ScenarioError(`the tool result lacks this client's elicitation answer ${JSON.stringify(nonce)}: ${JSON.stringify(short(text))}`);
      }
      this.done("elicitation", { requests: this.elicitationRequests.length });
    } else this.done("elicitation", { skipped: true });

    if (p.resource) {
      this.step = "resources/read";
      const { uri, expect } = p.resource;
      const result = await client.readResource({ uri }, { timeout: this.timeoutMs });
      if (!result.contents?.length) throw new ScenarioError(`resources/read ${JSON.stringify(uri)} returned no contents`);
      const text = result.contents.map((c) => c.text ?? "").join("\n");
      if (expect && !text.includes(expect)) {
        throw new ScenarioError(`resources/read ${JSON.stringify(uri)}: wanted ${JSON.stringify(expect)} in ${JSON.stringify(short(text))}`);
      }
      this.done("resource", { uri });
    } else this.done("resource", { skipped: true });

    if (p.prompt) {
      this.step = "prompts/get";
      const nonce = newNonce(`ts${this.index}-prompt`);
      const { name } = p.prompt;
      const args = withNonce(p.prompt.arguments ?? undefined, nonce);
      const result = await client.getPrompt(args ? { name, arguments: args } : { name }, { timeout: this.timeoutMs });
      if (!result.messages?.length) throw new ScenarioError(`prompts/get ${JSON.stringify(name)} returned no messages`);
      const text = result.messages.map((m) => m.content?.text ?? "").join("\n");
      const expect = withNonce(p.prompt.expect, nonce);
      if (expect && !text.includes(expect)) {
        throw new ScenarioError(`prompts/get ${JSON.stringify(name)}: wanted ${JSON.stringify(expect)} in ${JSON.stringify(short(text))}`);
      }
      this.done("prompt", { name });
    } else this.done("prompt", { skipped: true });
  }

  async echoMany(client) {
    const echo = this.profile.echo;
    if (!echo) throw new ScenarioError("scenario 'echo' needs an echo section in the profile");
    this.step = "concurrent tools/call echo";
    const failures = [];
    await Promise.all(
      Array.from({ length: this.args.calls }, async (_, k) => {
        const nonce = newNonce(`ts-client${this.index}-call${k}`);
        try {
          const text = toolText(await this.call(client, echo.tool, withNonce(echo.arguments, nonce)));
          if (!text.includes(nonce)) failures.push(`call ${k}: sent ${JSON.stringify(nonce)}, got ${JSON.stringify(short(text))}`);
        } catch (err) {
          failures.push(`call ${k}: ${describe(err)}`);
        }
      }),
    );
    if (failures.length) {
      throw new ScenarioError(`${failures.length} of ${this.args.calls} echo calls failed: ${failures.slice(0, 5).join("; ")}`);
    }
    this.done("echo", { calls: this.args.calls });
  }

  async checkSessionEnded() {
    this.step = "session end";
    const sid = this.summary.sessionId;
    if (this.args.transport === "streamable") {
      if (!sid) {
        this.done("session_end", { note: "server assigned no session id (stateless)" });
        return;
      }
      const deletes = this.log.deletes();
      if (!deletes.length) throw new ScenarioError(`the SDK sent no DELETE for session ${JSON.stringify(sid)}`);
      const last = deletes.at(-1);
      if (![200, 202, 204, 405].includes(last)) throw new ScenarioError(`DELETE of session ${JSON.stringify(sid)} answered ${last}`);
      const info = { delete_status: last };
      if (this.args.strictSessionEnd) {
        const status = await this.postAfterEnd(this.args.url, { "mcp-session-id": sid });
        if (status !== 404) throw new ScenarioError(`a request on ended session ${JSON.stringify(sid)} got HTTP ${status}, want 404`);
        info.after_end_status = status;
      }
      this.done("session_end", info);
    } else {
      if (!sid) throw new ScenarioError("the SSE endpoint event carried no session id");
      const info = { closed: true };
      if (this.args.strictSessionEnd) {
        // the server notices the closed stream asynchronously: poll briefly for 404
        const endpoint = this.log.exchanges.find((e) => e.method === "POST").url;
        const deadline = Date.now() + 5000;
        let status;
        for (;;) {
          status = await this.postAfterEnd(endpoint, {});
          if (status === 404) break;
          if (Date.now() > deadline) {
            throw new ScenarioError(`a POST for closed SSE session ${JSON.stringify(sid)} still got HTTP ${status} after 5 s, want 404`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
        info.after_end_status = status;
      }
      this.done("session_end", info);
    }
  }

  async postAfterEnd(url, headers) {
    const allHeaders = {
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      ...this.log.extraHeaders,
      ...headers,
    };
    if (this.log.protocolVersion) allHeaders["mcp-protocol-version"] = this.log.protocolVersion;
    const response = await fetch(url, {
      method: "POST",
      headers: allHeaders,
      body: JSON.stringify({ jsonrpc: "2.0", id: "after-end", method: "ping" }),
      signal: AbortSignal.timeout(5000),
    });
    await response.body?.cancel().catch(() => {});
    return response.status;
  }
}

// ---------------------------------------------------------------------------------------------
// main

function describe(err) {
  if (err instanceof ScenarioError) return err.message;
  if (err instanceof AggregateError) return err.errors.map(describe).join("; ");
  let text = `${err?.name ?? "Error"}: ${err?.message ?? String(err)}`;
  if (err?.code !== undefined) text += ` (code ${err.code})`;
  if (err?.cause) text += ` [cause: ${err.cause?.message ?? err.cause}]`;
  return text;
}

async function main() {
  const args = parseCli(process.argv.slice(2));
  const profile = loadProfile(args.profile);
  const started = performance.now();
  const results = new Array(args.concurrency).fill(undefined);
  const runs = Array.from({ length: args.concurrency }, async (_, i) => {
    const one = new OneClient(args, profile, i);
    try {
      results[i] = await one.run();
    } catch (err) {
      const detail = args.verbose && err?.stack ? `\n${err.stack}` : "";
      results[i] = new ScenarioError(`client ${i}, step ${JSON.stringify(one.step)}: ${describe(err)}${detail}`);
    }
  });
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), args.timeout * 1000);
  });
  const outcome = await Promise.race([Promise.all(runs).then(() => "done"), timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    const pending = results.map((r, i) => (r === undefined ? i : -1)).filter((i) => i >= 0);
    process.stderr.write(`ts_client FAILED: timed out after ${args.timeout} s; ${pending.length} client(s) unfinished: ${JSON.stringify(pending.slice(0, 10))}\n`);
    return 1;
  }
  const failures = results.filter((r) => r instanceof ScenarioError);
  if (failures.length) {
    process.stderr.write(`ts_client FAILED (${args.transport} ${args.url}, ${failures.length} of ${args.concurrency} client(s)):\n`);
    for (const f of failures.slice(0, 10)) process.stderr.write(`  ${f.message}\n`);
    return 1;
  }
  const summary = {
    ok: true,
    sdk: "typescript",
    sdk_version: SDK_VERSION,
    transport: args.transport,
    url: args.url,
    scenario: args.scenario,
    clients: args.concurrency,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  };
  if (args.concurrency === 1) Object.assign(summary, results[0]);
  else {
    summary.calls_per_client = args.calls;
    summary.distinct_sessions = new Set(results.map((r) => r.sessionId)).size;
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

// run only as the program, not when imported (ts_oauth.mjs); exit explicitly: open SSE streams or
// keep-alive sockets must not keep the process alive
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`ts_client FAILED: ${describe(err)}\n${err?.stack ?? ""}\n`);
      process.exit(1);
    },
  );
}
