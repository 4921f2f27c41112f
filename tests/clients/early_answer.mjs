#!/usr/bin/env node
// Sends a POST with a large body the way Node clients do, and reports what came back: Node's
// `fetch` (undici) directly, and the official TypeScript SDK's Streamable HTTP transport (which
// uses fetch) sending one JSON-RPC message that large.
//
//   node tests/clients/early_answer.mjs --url http://127.0.0.1:8080/mcp [--bytes 5242880]
//
// Prints one JSON line: {"fetch": {"status", "body", "wwwAuthenticate"} | {"error"},
// "sdk": {"code", "message"} | {"error"}}. An answer the server sent before reading the body
// shows as its status; a reset connection as an "error".
import { parseArgs } from "node:util";

const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { StreamableHTTPClientTransport, StreamableHTTPError } = await sdk("client/streamableHttp.js");

const { values: args } = parseArgs({
    options: { url: { type: "string" }, bytes: { type: "string", default: String(5 * 1024 * 1024) } },
});
const big = "x".repeat(Number(args.bytes));
const message = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: big } } };

const out = {};
try {
    const res = await fetch(args.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify(message),
    });
    out.fetch = { status: res.status, body: await res.text(), wwwAuthenticate: res.headers.get("www-authenticate") };
} catch (e) {
    out.fetch = { error: `${e.name}: ${e.message} (${e.cause?.code ?? e.cause?.message ?? ""})` };
}

const transport = new StreamableHTTPClientTransport(new URL(args.url));
try {
    await transport.start();
    await transport.send(message);
    out.sdk = { error: "the message was accepted" };
} catch (e) {
    out.sdk = e instanceof StreamableHTTPError
        ? { code: e.code, message: e.message }
        : { error: `${e.name}: ${e.message} (${e.cause?.code ?? e.cause?.message ?? ""})` };
}
await transport.close().catch(() => {});
console.log(JSON.stringify(out));
