#!/usr/bin/env node
// Open one MCP session with the official TypeScript SDK (@modelcontextprotocol/sdk 1.x), call tools,
// optionally probe a hijack. Same arguments and output as session_call.py:
//
//   node tests/clients/session_call.mjs --url 'http://127.0.0.1:8080/mcp?auth=K&service=billing' \
//       --transport streamable --call 'param={"name":"service"}' [--bearer KEY_A] [--hijack-bearer KEY_B]
//
// Prints {"ok": true, "sessionId", "results": [...], "hijack_status", "after_hijack": [...]}.

import { parseArgs } from "node:util";

const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { SSEClientTransport } = await sdk("client/sse.js");

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string" },
    call: { type: "string", multiple: true, default: [] },
    bearer: { type: "string" },
    "hijack-bearer": { type: "string" },
    timeout: { type: "string", default: "60" },
  },
});

const calls = args.call.map((spec) => {
  const at = spec.indexOf("=");
  return at < 0 ? [spec, {}] : [spec.slice(0, at), JSON.parse(spec.slice(at + 1))];
});

const posts = [];
const loggingFetch = async (url, init = {}) => {
  if ((init.method ?? "GET").toUpperCase() === "POST") posts.push(String(url));
  return fetch(url, init);
};

async function callAll(client) {
  const out = [];
  for (const [name, toolArgs] of calls) {
    const result = await client.callTool({ name, arguments: toolArgs });
    if (result.isError) throw new Error(`tools/call ${name} returned isError: ${JSON.stringify(result.content)}`);
    out.push(result.content.map((b) => b.text ?? "").join("\n"));
  }
  return out;
}

async function main() {
  const headers = args.bearer ? { Authorization: `Bearer ${args.bearer}` } : {};
  const url = new URL(args.url);
  const transport =
    args.transport === "streamable"
      ? new StreamableHTTPClientTransport(url, { fetch: loggingFetch, requestInit: { headers } })
      : new SSEClientTransport(url, { fetch: loggingFetch, requestInit: { headers }, eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers ?? {}), ...headers } }) } });
  const client = new Client({ name: "mcp-bastion-session-call", version: "0.1.0" });
  const summary = { ok: true };
  await client.connect(transport);
  summary.results = await callAll(client);
  summary.sessionId = transport.sessionId ?? new URL(posts.at(-1)).searchParams.get("sessionId");
  if (args["hijack-bearer"]) {
    const [name, toolArgs] = calls[0];
    const hijackHeaders = {
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      authorization: `Bearer ${args["hijack-bearer"]}`,
    };
    let target = posts.at(-1);
    if (args.transport === "streamable") {
      target = args.url;
      hijackHeaders["mcp-session-id"] = transport.sessionId;
      if (transport.protocolVersion) hijackHeaders["mcp-protocol-version"] = transport.protocolVersion;
    }
    const response = await fetch(target, {
      method: "POST",
      headers: hijackHeaders,
      body: JSON.stringify({ jsonrpc: "2.0", id: "hijack", method: "tools/call", params: { name, arguments: toolArgs } }),
    });
    await response.body?.cancel().catch(() => {});
    summary.hijack_status = response.status;
    summary.after_hijack = await callAll(client);
  }
  if (args.transport === "streamable") await transport.terminateSession().catch(() => {});
  await client.close();
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

const timer = setTimeout(() => {
  process.stderr.write(`session_call.mjs FAILED: timed out after ${args.timeout} s\n`);
  process.exit(1);
}, Number(args.timeout) * 1000);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`session_call.mjs FAILED: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
