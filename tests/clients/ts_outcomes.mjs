#!/usr/bin/env node
// The official TypeScript SDK drives every outcome the audit log records, one session each.
//
// Usage: node tests/clients/ts_outcomes.mjs --url URL --key KEY --bad-key KEY --origin ORIGIN
//            --scope-tool NAME --limited-tool NAME --max-bytes N [--name CLIENT_NAME] [--timeout MS]
//
// Steps (each its own SDK session, client name --name), as in py_outcomes.py:
//   answered (echo with the key), tool_error (a tool the server does not have), auth (--bad-key as
//   the bearer token: 401), scopes (--scope-tool, a scope the key lacks: 403), rate_limit
//   (--limited-tool twice: 429), origin (an `Origin: --origin` header through the transport's
//   requestInit headers: 403), size (echo with a message larger than --max-bytes: 413).
//
// Prints one JSON line {step: {"statuses": [HTTP statuses of the step's POSTs], "outcome"}}; the
// test compares it with the audit file. Exits 0 once every step ran (a refusal is an expected end).

import { parseArgs } from "node:util";

const SDK = new URL("../node/node_modules/@modelcontextprotocol/sdk/dist/esm/", import.meta.url);
const { Client } = await import(new URL("client/index.js", SDK).href);
const { StreamableHTTPClientTransport } = await import(new URL("client/streamableHttp.js", SDK).href);

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    key: { type: "string" },
    "bad-key": { type: "string" },
    origin: { type: "string" },
    "scope-tool": { type: "string" },
    "limited-tool": { type: "string" },
    "max-bytes": { type: "string" },
    name: { type: "string", default: "audit-ts" },
    timeout: { type: "string", default: "10000" },
  },
});
for (const required of ["url", "key", "bad-key", "origin", "scope-tool", "limited-tool", "max-bytes"]) {
  if (!args[required]) {
    console.error(`ts_outcomes.mjs: --${required} is required`);
    process.exit(2);
  }
}
const timeout = Number(args.timeout);

// One SDK session with `headers`: connect (initialize), then `calls` in order; how it ended.
async function step(headers, calls) {
  const statuses = [];
  const recording = async (url, init) => {
    const res = await fetch(url, init);
    if ((init?.method ?? "GET") === "POST") statuses.push(res.status);
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL(args.url), {
    requestInit: { headers },
    fetch: recording,
  });
  const client = new Client({ name: args.name, version: "1.2.3" });
  let outcome = "ok";
  try {
    await client.connect(transport, { timeout });
    for (const [tool, toolArgs] of calls) {
      const result = await client.callTool({ name: tool, arguments: toolArgs }, undefined, { timeout });
      if (result.isError) outcome = "tool_error";
    }
  } catch (e) {
    outcome = `failed ${e?.code ?? e?.name ?? "error"}`;
  }
  await client.close().catch(() => {});
  return { statuses, outcome };
}

const key = { Authorization: `Bearer ${args.key}` };
const report = {
  answered: await step(key, [["echo", { message: "audit" }]]),
  tool_error: await step(key, [["no-such-tool", {}]]),
  auth: await step({ Authorization: `Bearer ${args["bad-key"]}` }, []),
  scopes: await step(key, [[args["scope-tool"], {}]]),
  rate_limit: await step(key, [[args["limited-tool"], {}], [args["limited-tool"], {}]]),
  origin: await step({ ...key, Origin: args.origin }, []),
  size: await step(key, [["echo", { message: "x".repeat(Number(args["max-bytes"]) + 1) }]]),
};
console.log(JSON.stringify(report));
process.exit(0);
