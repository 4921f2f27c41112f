#!/usr/bin/env node
// Call one tool repeatedly through the official TypeScript SDK (@modelcontextprotocol/sdk 1.x) over
// Streamable HTTP and report what came back.
//
// Usage: node tests/clients/ts_ratelimit.mjs --url http://127.0.0.1:8080/mcp --tool echo --calls 3
//
// Each call is tools/call with {"message": "..."}. The SDK turns a non-2xx answer into a
// StreamableHTTPError whose code is the HTTP status and whose message carries the body: the
// JSON-RPC error is parsed back out of it. After the calls, tools/list checks that the session
// still works. Prints one JSON line: {"ok": true, "calls": [...], "after": "..."}; exit status 1
// with a message on stderr if the session itself failed.

import { parseArgs } from "node:util";

const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    tool: { type: "string", default: "echo" },
    calls: { type: "string", default: "3" },
  },
});

async function main() {
  const client = new Client({ name: "mcp-bastion-ts-ratelimit", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(values.url));
  await client.connect(transport);
  const calls = [];
  for (let i = 0; i < Number(values.calls); i++) {
    try {
      const result = await client.callTool({ name: values.tool, arguments: { message: `call-${i}` } });
      calls.push({ ok: !result.isError, text: result.content.map((c) => c.text ?? "").join(" ") });
    } catch (e) {
      const call = { ok: false, status: e.code, message: String(e.message) };
      const at = call.message.indexOf("{");
      if (at >= 0) {
        try {
          call.body = JSON.parse(call.message.slice(at));
        } catch {
          // not JSON: keep the message
        }
      }
      calls.push(call);
    }
  }
  const listed = await client.listTools();
  await transport.terminateSession().catch(() => {});
  await client.close();
  return { ok: true, calls, after: `tools/list ok (${listed.tools.length} tools)` };
}

try {
  process.stdout.write(JSON.stringify(await main()) + "\n");
  process.exit(0);
} catch (e) {
  process.stderr.write(`ts_ratelimit: ${e?.stack ?? e}\n`);
  process.exit(1);
}
