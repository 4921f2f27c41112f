#!/usr/bin/env python3
"""Call one tool repeatedly through the official Python SDK (`mcp`, 2.x) and report what came back.

Usage:
    python3 tests/clients/py_ratelimit.py --url http://127.0.0.1:8080/mcp --tool echo --calls 3 \
        [--bearer KEY]

Streamable HTTP only (the SDK's legacy SSE client drops non-2xx answers to its POSTs). Each call is
`tools/call` with `{"message": "..."}`; a JSON-RPC error raised by the SDK (MCPError) is recorded
with its code, message and data. After the calls, `tools/list` checks that the session still works.
Prints one JSON line: {"ok": true, "calls": [...], "posts": [[status, RateLimit header], ...],
"after": "tools/list ok"}; exit status 1 with a message on stderr if the session itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio
import httpx2
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def main(args: argparse.Namespace) -> dict:
    posts: list[list] = []

    async def on_response(response: httpx2.Response) -> None:
        if response.request.method == "POST":
            posts.append([response.status_code, response.headers.get("ratelimit"),
                          response.headers.get("retry-after")])

    headers = {"Authorization": f"Bearer {args.bearer}"} if args.bearer else None
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=args.timeout), headers=headers,
                              event_hooks={"response": [on_response]})
    calls: list[dict] = []
    async with http, streamable_http_client(args.url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i in range(args.calls):
                try:
                    result = await session.call_tool(args.tool, {"message": f"call-{i}"})
                    text = " ".join(getattr(b, "text", "") or "" for b in result.content)
                    calls.append({"ok": not result.is_error, "text": text})
                except MCPError as e:
                    calls.append({"ok": False, "code": e.error.code, "message": e.error.message,
                                  "data": e.error.data})
            listed = await session.list_tools()
            after = f"tools/list ok ({len(listed.tools)} tools)"
    return {"ok": True, "calls": calls, "posts": posts, "after": after}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--bearer", help="send `Authorization: Bearer BEARER`")
    args = parser.parse_args()
    try:
        summary = anyio.run(main, args)
    except Exception as e:  # the session failed: say how
        print(f"py_ratelimit: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary))
