#!/usr/bin/env python3
"""Revision 2026-07-28 through the official Python SDK's `Client` (mode '2026-07-28': sessionless
requests only, no initialize handshake), for the bridge's per-principal pool and
`subscriptions/listen`.

Usage:
    python3 tests/clients/py_pool.py --url http://127.0.0.1:8080/mcp --header "Authorization: Bearer K" \
        env --var MCP_USER --calls 3
    python3 tests/clients/py_pool.py --url URL listen --uri demo://resource/static/document/architecture.md \
        --trigger toggle-subscriber-updates

`env`: `--calls` sequential `get-env` calls; reports the value of `--var` each call saw.
`listen`: opens `Client.listen(resource_subscriptions=[--uri])` (entering waits for the
acknowledgement), calls `--trigger`, and reports the first event it receives.

Prints one JSON line: {"ok": true, "protocolVersion": ..., ...}; exits 1 with the error on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import Client
from _script import describe, parse_headers
from mcp.client.streamable_http import streamable_http_client

V2026 = "2026-07-28"


@asynccontextmanager
async def connect(url: str, headers: dict[str, str]):
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    async with http, streamable_http_client(url, http_client=http) as streams:
        yield streams


def text_of(result) -> str:
    return "\n".join(getattr(b, "text", "") or "" for b in result.content)


async def run_env(client: Client, args: argparse.Namespace) -> dict:
    seen = []
    for _ in range(args.calls):
        result = await client.call_tool("get-env", {})
        env = json.loads(text_of(result))
        seen.append(env.get(args.var))
    return {"values": seen}


async def run_listen(client: Client, args: argparse.Namespace) -> dict:
    async with client.listen(resource_subscriptions=[args.uri]) as sub:
        honored = sub.honored.model_dump(by_alias=True, exclude_none=True) if sub.honored else None
        triggered = text_of(await client.call_tool(args.trigger, {}))
        with anyio.fail_after(args.wait):
            async for event in sub:
                return {
                    "honored": honored,
                    "triggered": triggered,
                    "event": type(event).__name__,
                    "uri": getattr(event, "uri", None),
                }
    raise RuntimeError("the listen stream ended before any event")


async def main_async(args: argparse.Namespace) -> dict:
    with anyio.fail_after(args.timeout):
        async with Client(connect(args.url, parse_headers(args.header)), mode=V2026, cache=None) as client:
            out = {"ok": True, "protocolVersion": client.session.protocol_version}
            if args.command == "env":
                out.update(await run_env(client, args))
            else:
                out.update(await run_listen(client, args))
            return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=90.0)
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env")
    env.add_argument("--var", required=True)
    env.add_argument("--calls", type=int, default=3)
    listen = sub.add_parser("listen")
    listen.add_argument("--uri", required=True)
    listen.add_argument("--trigger", required=True)
    listen.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()
    try:
        out = anyio.run(main_async, args)
    except BaseException as exc:  # reported for the test's failure message
        print(describe(exc), file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
