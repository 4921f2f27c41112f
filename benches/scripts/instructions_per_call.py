#!/usr/bin/env python3
"""Instructions per `tools/call` of `bench-server` targets, counted by callgrind.

Usage (after `cargo build -p benches --release`):

    python3 benches/scripts/instructions_per_call.py full-stack full-stack-oauth

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
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import jwt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = os.path.join(ROOT, "benches", "keys")
SERVER = os.path.join(ROOT, "target", "release", "bench-server")
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


def post(conn, headers, body):
    conn.request("POST", "/mcp?service=bench", body=json.dumps(body), headers=headers)
    res = conn.getresponse()
    data = res.read()
    if res.status >= 300:
        raise SystemExit(f"HTTP {res.status}: {data[:200]!r}")
    return res, data


def session(port, tok, calls):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {tok}", "Origin": ORIGIN,
               "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    res, _ = post(conn, headers, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "instructions", "version": "0"}}})
    headers["Mcp-Session-Id"] = res.getheader("mcp-session-id")
    headers["MCP-Protocol-Version"] = "2025-06-18"
    post(conn, headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    for i in range(calls):
        _, data = post(conn, headers, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                                       "params": {"name": "echo", "arguments": {"message": "hello"}}})
        if b'"result"' not in data:
            raise SystemExit(f"no result: {data[:200]!r}")


def total_instructions(kind, calls):
    port = free_port()
    out = tempfile.NamedTemporaryFile(prefix=f"cg-{kind}-", delete=False).name
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             SERVER, kind, "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        tok = oauth_token(port) if kind == "full-stack-oauth" else jwt_token()
        session(port, tok, calls)
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
    for kind in kinds:
        a = total_instructions(kind, N1)
        b = total_instructions(kind, N2)
        per_call[kind] = (b - a) / (N2 - N1)
        print(f"{kind}: {per_call[kind]:,.0f} instructions per call")
    first = per_call[kinds[0]]
    for kind in kinds[1:]:
        print(f"{kind} / {kinds[0]}: {per_call[kind] / first:.3f}x the instructions per call"
              f" ({first / per_call[kind]:.3f}x the calls per instruction)")


if __name__ == "__main__":
    main()
