#!/usr/bin/env python3
"""Instructions per `tools/call` of `bench-server` targets, counted by callgrind.

Usage (after `cargo build -p benches --release` and `cargo run -p benches --release -- baseline`,
which builds `bench-echo-server`):

    python3 benches/scripts/instructions_per_call.py full-stack full-stack-oauth
    python3 benches/scripts/instructions_per_call.py full-stack full-stack-observed
    python3 benches/scripts/instructions_per_call.py proxy proxy-observed

`full-stack`, `full-stack-oauth`: the `bench-server` targets of those names;
`full-stack-observed`: the `bench-server` target of that name (the JWT full
stack with the audit log, to a temp file, and OTLP export, to the sink of this
script, on; it exports what it still holds when terminated, so every call's
spans are counted).
`proxy`: the `mcp-bastion` binary (API key, shared `bench-echo-server` child);
`proxy-observed`: the same with the audit log (`--audit-log`, to a file) and
OpenTelemetry export (`--otlp-endpoint`, to an OTLP/HTTP sink in this script
that answers 200) on; `proxy-audit`, `proxy-otel`: one of the two. Only the server process is counted (valgrind does not
follow the child).

Each target runs under `valgrind --tool=callgrind` twice, serving one session
of N1 and then one of N2 sequential `echo` calls (with the token and Origin the
load clients send); the difference of the two totals divided by N2 - N1 is what
one call costs, start-up and the session's opening cancelling out. Instruction
counts do not depend on what else the machine is doing, so two targets are
compared on a busy machine too; the figure printed last is each target's cost
as a ratio to the first target's, measured in the same run.

Tokens are signed here with the bench keys of `benches/keys/` (the same claims
as `benches/src/jwt.rs` and `benches/src/oauth.rs`); needs PyJWT with
`cryptography` (installed with the tests' `mcp` package).
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jwt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = os.path.join(ROOT, "benches", "keys")
SERVER = os.path.join(ROOT, "target", "release", "bench-server")
BASTION = os.path.join(ROOT, "target", "release", "mcp-bastion")
ECHO = os.path.join(ROOT, "target", "bench-echo", "bench-echo-server")
API_KEY = "bench-key-0123456789"
ORIGIN = "https://app.bench.invalid"
N1, N2 = 300, 1300


def jwt_token():
    """The RS256 token the `full-stack` target's JWKS verifies."""
    now = int(time.time())
    key = open(os.path.join(KEYS, "bench-rs256.pem")).read()
    claims = {"iss": "https://issuer.bench.invalid", "aud": "https://mcp.bench.invalid/mcp",
              "sub": "bench-client", "iat": now, "exp": now + 86400, "scope": "mcp"}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench-1"})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not listen")


def oauth_token(port):
    """An access token of the `full-stack-oauth` target's own authorization
    server (the kid is the one its JWKS publishes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/oauth/jwks.json")
    kid = json.loads(conn.getresponse().read())["keys"][0]["kid"]
    now = int(time.time())
    claims = {"iss": "https://mcp.bench.invalid", "aud": "https://mcp.bench.invalid",
              "sub": "bench-client", "client_id": "bench-oauth-client", "scope": "mcp",
              "iat": now, "exp": now + 86400, "jti": f"bench-{now}", "grant_id": "bench-grant"}
    key = open(os.path.join(KEYS, "bench-es256.pem")).read()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


class Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that keeps nothing: counts the bytes it got."""

    received = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Sink.received += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_sink():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def command(kind, port, sink):
    listen = f"127.0.0.1:{port}"
    if kind in ("full-stack", "full-stack-oauth"):
        return [SERVER, kind, "--listen", listen]
    if kind == "full-stack-observed":
        audit = tempfile.NamedTemporaryFile(prefix="audit-", suffix=".jsonl", delete=False).name
        return [SERVER, kind, "--listen", listen,
                "--otlp", f"http://127.0.0.1:{sink.server_port}", "--audit-log", audit]
    cmd = [BASTION, "--listen", listen, "--session-mode", "shared", "--api-key", API_KEY]
    if kind not in ("proxy", "proxy-observed", "proxy-audit", "proxy-otel"):
        raise SystemExit(f"unknown kind {kind}")
    if kind in ("proxy-observed", "proxy-audit"):
        audit = tempfile.NamedTemporaryFile(prefix="audit-", suffix=".jsonl", delete=False).name
        cmd += ["--audit-log", audit]
    if kind in ("proxy-observed", "proxy-otel"):
        cmd += ["--otlp-endpoint", f"http://127.0.0.1:{sink.server_port}"]
    return cmd + ["--", ECHO]


def post(conn, headers, body, path):
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    res = conn.getresponse()
    data = res.read()
    if res.status >= 300:
        raise SystemExit(f"HTTP {res.status}: {data[:200]!r}")
    return res, data


def session(port, tok, calls, path):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {tok}",
               "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if "service=bench" in path:
        # the full stack's Origin guard checks an allowed browser Origin
        headers["Origin"] = ORIGIN
    res, _ = post(conn, headers, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "instructions", "version": "0"}}}, path)
    headers["Mcp-Session-Id"] = res.getheader("mcp-session-id")
    headers["MCP-Protocol-Version"] = "2025-06-18"
    post(conn, headers, {"jsonrpc": "2.0", "method": "notifications/initialized"}, path)
    for i in range(calls):
        _, data = post(conn, headers, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                                       "params": {"name": "echo", "arguments": {"message": "hello"}}},
                       path)
        if b'"result"' not in data:
            raise SystemExit(f"no result: {data[:200]!r}")


def total_instructions(kind, calls, sink):
    port = free_port()
    out = tempfile.NamedTemporaryFile(prefix=f"cg-{kind}-", delete=False).name
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                            + command(kind, port, sink),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        if kind == "full-stack-oauth":
            tok, path = oauth_token(port), "/mcp?service=bench"
        elif kind in ("full-stack", "full-stack-observed"):
            tok, path = jwt_token(), "/mcp?service=bench"
        else:
            tok, path = API_KEY, "/mcp"
        session(port, tok, calls, path)
    finally:
        proc.terminate()
        proc.wait()
    for line in open(out):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def main():
    kinds = sys.argv[1:] or ["full-stack", "full-stack-oauth"]
    per_call = {}
    sink = start_sink()
    for kind in kinds:
        a = total_instructions(kind, N1, sink)
        b = total_instructions(kind, N2, sink)
        per_call[kind] = (b - a) / (N2 - N1)
        print(f"{kind}: {per_call[kind]:,.0f} instructions per call")
    if Sink.received:
        print(f"the OTLP sink received {Sink.received:,} bytes")
    first = per_call[kinds[0]]
    for kind in kinds[1:]:
        print(f"{kind} / {kinds[0]}: {per_call[kind] / first:.3f}x the instructions per call"
              f" ({first / per_call[kind]:.3f}x the calls per instruction)")


if __name__ == "__main__":
    main()
