#!/usr/bin/env python3
"""One authenticated session through the official Python SDK: list tools, optionally call one.

Usage:
    python3 tests/clients/py_tool.py --url http://127.0.0.1:8080/mcp --transport streamable \
        --header "Authorization: Bearer KEY" [--call TOOL [--arguments JSON]]

Prints one JSON line: {"ok": true, "tools": [names], "call": {"text": ..., "is_error": bool} | {"error": ...}}.
A failed call is reported in "call" (the point may be to see it refused); a failed connection or
tools/list exits 1 with the message on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from _script import describe, parse_headers
from mcp.client.streamable_http import streamable_http_client


async def session_run(args: argparse.Namespace, read, write) -> dict:
    out: dict = {"ok": True}
    async with ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        out["tools"] = [t.name for t in listed.tools]
        if args.call:
            try:
                # a refused legacy-SSE POST (403) never answers on the stream: bound the wait
                result = await session.call_tool(
                    args.call, json.loads(args.arguments), read_timeout_seconds=args.call_timeout
                )
                text = "\n".join(getattr(b, "text", "") or "" for b in result.content)
                out["call"] = {"text": text, "is_error": bool(result.is_error)}
            except Exception as exc:  # reported, not raised: a refusal may be the expected outcome
                error = getattr(exc, "error", None)
                out["call"] = {"error": describe(exc), "code": getattr(error, "code", None),
                               "message": getattr(error, "message", None)}
    return out


async def main_async(args: argparse.Namespace) -> dict:
    headers = parse_headers(args.header)
    with anyio.fail_after(args.timeout):
        if args.transport == "streamable":
            async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http:
                async with streamable_http_client(args.url, http_client=http) as (read, write, *_):
                    return await session_run(args, read, write)
        async with sse_client(args.url, headers=headers or None) as (read, write):
            return await session_run(args, read, write)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--call", default=None)
    parser.add_argument("--arguments", default="{}")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--call-timeout", type=float, default=8.0)
    args = parser.parse_args()
    try:
        out = anyio.run(main_async, args)
    except BaseException as exc:  # noqa: BLE001 - report everything, including groups
        print(f"py_tool FAILED: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
