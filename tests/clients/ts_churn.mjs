#!/usr/bin/env node
// Keeps calling a tool through the official TypeScript SDK (`@modelcontextprotocol/sdk`) over
// Streamable HTTP from several concurrent clients, as applications do while a deployment changes
// under them: when the SDK reports that the session is gone (`StreamableHTTPError` with code 404),
// the client opens a new session and goes on. Anything else is a failure.
//
//   node tests/clients/ts_churn.mjs --url http://127.0.0.1:8080/mcp --clients 8 --stop-file PATH
//
// Runs until PATH exists (or --max-seconds pass), then prints one JSON line:
// {"ok": true, "calls": N, "reopened": N, "initFailures": [...], "callFailures": [...]}
// where each failure is "<what>: <message>". Exit status 0 unless the script itself broke.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";

// the SDK from tests/node (`npm ci --prefix tests/node`), wherever this script is run from
const SDK_ROOT = new URL("../node/node_modules/@modelcontextprotocol/sdk/", import.meta.url);
const sdk = (path) => import(new URL(`dist/esm/${path}`, SDK_ROOT).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport, StreamableHTTPError } = await sdk("client/streamableHttp.js");

const { values: args } = parseArgs({
    options: {
        url: { type: "string" },
        clients: { type: "string", default: "8" },
        "stop-file": { type: "string" },
        "max-seconds": { type: "string", default: "120" },
        tool: { type: "string", default: "echo" },
    },
});
if (!args.url || !args["stop-file"]) {
    console.error("usage: ts_churn.mjs --url URL --stop-file PATH [--clients N] [--max-seconds S]");
    process.exit(2);
}

const deadline = Date.now() + Number(args["max-seconds"]) * 1000;
const stopped = () => existsSync(args["stop-file"]) || Date.now() > deadline;
const totals = { calls: 0, reopened: 0, initFailures: [], callFailures: [] };

const sessionGone = (e) => e instanceof StreamableHTTPError && e.code === 404;
const describe = (e) => `${e?.name ?? "Error"}${e?.code !== undefined ? ` ${e.code}` : ""}: ${e?.message ?? e}`;

async function open(n) {
    const client = new Client({ name: `churn-${n}`, version: "1.0.0" });
    // the GET stream's own errors (it ends when a session ends) are not calls: ignore them here
    const transport = new StreamableHTTPClientTransport(new URL(args.url));
    transport.onerror = () => {};
    await client.connect(transport);
    return client;
}

async function worker(n) {
    let client = null;
    let i = 0;
    while (!stopped()) {
        if (client === null) {
            try {
                client = await open(n);
            } catch (e) {
                // a session that ended between `initialize` and `notifications/initialized`
                // (its replica began to drain) is gone like any other: open another
                if (sessionGone(e)) {
                    totals.reopened++;
                } else {
                    totals.initFailures.push(`initialize: ${describe(e)}`);
                    await new Promise((r) => setTimeout(r, 50));
                }
                continue;
            }
        }
        const text = `c${n}-${i++}`;
        try {
            const result = await client.callTool({ name: args.tool, arguments: { message: text } });
            const got = (result.content ?? []).map((c) => c.text ?? "").join("");
            if (result.isError || !got.includes(text)) {
                totals.callFailures.push(`call: unexpected result ${JSON.stringify(result).slice(0, 200)}`);
            } else {
                totals.calls++;
            }
        } catch (e) {
            if (sessionGone(e)) {
                totals.reopened++;
            } else {
                totals.callFailures.push(`call: ${describe(e)}`);
            }
            await client.close().catch(() => {});
            client = null;
        }
    }
    await client?.close().catch(() => {});
}

await Promise.all(Array.from({ length: Number(args.clients) }, (_, n) => worker(n)));
console.log(JSON.stringify({ ok: true, ...totals }));
process.exit(0);
