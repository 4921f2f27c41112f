#!/usr/bin/env node
// A real browser against the MCP endpoint: headless Debian Chromium (/usr/bin/chromium, installed by
// .ci/deps/chromium.sh), driven by playwright-core from tests/node (never `playwright install`).
//
//   node tests/clients/browser_cors.mjs --mcp http://127.0.0.1:PORT/mcp --allowed-port P1 --other-port P2
//
// Bundles the official TypeScript SDK for the browser (esbuild), serves one page on
// http://127.0.0.1:P1 and the same page on http://127.0.0.1:P2, and loads each. The page, from its
// origin, (1) POSTs an initialize with fetch and an Authorization header and reads Mcp-Session-Id,
// (2) connects with the SDK's StreamableHTTPClientTransport (Authorization header) and calls the
// `echo` tool, (3) sends a "simple" no-cors POST (no preflight) that only the server's Origin guard
// can stop. Prints one JSON line: {"ok": true, "chromium": version, "allowed": outcome, "other": outcome},
// where each outcome also lists the MCP server's answers as Chromium's network stack saw them
// (`network`: ["OPTIONS 200", "POST 403", …]).

import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const NODE_DIR = fileURLToPath(new URL("../node/", import.meta.url));
const require = createRequire(join(NODE_DIR, "package.json"));
const esbuild = require("esbuild");
const { chromium } = require("playwright-core");

const { values: args } = parseArgs({
  options: {
    mcp: { type: "string" },
    "allowed-port": { type: "string" },
    "other-port": { type: "string" },
    bearer: { type: "string", default: "browser-token-3c9a" },
    timeout: { type: "string", default: "60" },
  },
});

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>mcp-bastion CORS test</title>
<script type="module">
import { Client, StreamableHTTPClientTransport } from "/sdk.js";
const q = new URLSearchParams(location.search);
const mcp = q.get("mcp");
const auth = { Authorization: "Bearer " + q.get("bearer") };
window.outcome = (async () => {
  const out = { origin: location.origin };
  try {
    const r = await fetch(mcp, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "browser-fetch", version: "1" } } }),
    });
    out.fetchStatus = r.status;
    out.fetchSessionId = r.headers.get("mcp-session-id");
    await r.text();
    if (out.fetchSessionId) {
      const d = await fetch(mcp, { method: "DELETE", headers: { ...auth, "mcp-session-id": out.fetchSessionId } });
      out.deleteStatus = d.status;
    }
  } catch (e) {
    out.fetchError = String(e);
  }
  try {
    const transport = new StreamableHTTPClientTransport(new URL(mcp), { requestInit: { headers: auth } });
    const client = new Client({ name: "browser-sdk", version: "1" });
    await client.connect(transport);
    const res = await client.callTool({ name: "echo", arguments: { message: "hello from " + location.origin } });
    out.sdkSessionId = transport.sessionId;
    out.sdkEcho = res.content.map((c) => c.text ?? "").join("");
    await transport.terminateSession();
    await client.close();
  } catch (e) {
    out.sdkError = String(e);
  }
  try {
    await fetch(mcp, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "initialize", params: {} }) });
    out.simpleSent = true;
  } catch (e) {
    out.simpleError = String(e);
  }
  return out;
})();
</script>`;

async function bundleSdk() {
  const result = await esbuild.build({
    stdin: {
      contents:
        'export { Client } from "@modelcontextprotocol/sdk/client/index.js";\n' +
        'export { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";\n',
      resolveDir: NODE_DIR,
      loader: "js",
    },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

function servePage(port, sdk) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    } else if (path === "/sdk.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(sdk);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(port), "127.0.0.1", () => resolve(server));
  });
}

async function main() {
  const sdk = await bundleSdk();
  const pages = await Promise.all([servePage(args["allowed-port"], sdk), servePage(args["other-port"], sdk)]);
  const profile = mkdtempSync(join(tmpdir(), "mcp-bastion-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const visit = async (port) => {
      const page = await context.newPage();
      const console = [];
      page.on("console", (m) => console.push(`${m.type()}: ${m.text()}`));
      // what the MCP server answered, as the browser's network stack saw it (opaque to the page)
      const network = [];
      page.on("response", (r) => {
        if (r.url().startsWith(args.mcp)) network.push(`${r.request().method()} ${r.status()}`);
      });
      const url = `http://127.0.0.1:${port}/?mcp=${encodeURIComponent(args.mcp)}&bearer=${encodeURIComponent(args.bearer)}`;
      await page.goto(url, { waitUntil: "load" });
      await page.waitForFunction(() => window.outcome !== undefined, null, { timeout: 30000 });
      const outcome = await page.evaluate(() => window.outcome);
      outcome.console = console.slice(0, 20);
      outcome.network = network;
      await page.close();
      return outcome;
    };
    const allowed = await visit(args["allowed-port"]);
    const other = await visit(args["other-port"]);
    const version = context.browser()?.version() ?? "unknown";
    process.stdout.write(`${JSON.stringify({ ok: true, chromium: version, allowed, other })}\n`);
  } finally {
    await context.close();
    for (const p of pages) p.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  process.stderr.write(`browser_cors.mjs FAILED: timed out after ${args.timeout} s\n`);
  process.exit(1);
}, Number(args.timeout) * 1000);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`browser_cors.mjs FAILED: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
