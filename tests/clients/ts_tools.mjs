#!/usr/bin/env node
// One session through the official TypeScript SDK: list the tools, then call one, and report
// both. The counterpart of py_tool.py.
//
//   node tests/clients/ts_tools.mjs --url http://127.0.0.1:8080/mcp --transport streamable|sse \
//       [--bearer KEY] [--call TOOL] [--arguments JSON]
//
// Prints one JSON line: {"ok": true, "tools": [names], "call": {"text", "isError"} |
// {"code", "message"}}; exits 1 with the message on stderr if the session itself failed.
import { parseArgs } from "node:util";

const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { SSEClientTransport } = await sdk("client/sse.js");

const { values: args } = parseArgs({
    options: {
        url: { type: "string" },
        transport: { type: "string", default: "streamable" },
        bearer: { type: "string" },
        call: { type: "string" },
        arguments: { type: "string", default: "{}" },
    },
});
const headers = args.bearer ? { Authorization: `Bearer ${args.bearer}` } : {};
const url = new URL(args.url);
const transport = args.transport === "sse"
    ? new SSEClientTransport(url, { requestInit: { headers }, eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...init?.headers, ...headers } }) } })
    : new StreamableHTTPClientTransport(url, { requestInit: { headers } });
const client = new Client({ name: "ts-tools", version: "1.0.0" });
try {
    await client.connect(transport);
    const out = { ok: true, tools: (await client.listTools()).tools.map((t) => t.name) };
    if (args.call) {
        try {
            const result = await client.callTool({ name: args.call, arguments: JSON.parse(args.arguments) });
            out.call = { text: (result.content ?? []).map((c) => c.text ?? "").join("\n"), isError: !!result.isError };
        } catch (e) {
            out.call = { code: e.code, message: e.message };
        }
    }
    console.log(JSON.stringify(out));
    await client.close();
    process.exit(0);
} catch (e) {
    console.error(`ts_tools: ${e?.name}: ${e?.message}`);
    process.exit(1);
}
