#!/usr/bin/env python3
"""Open one MCP session with the official Python SDK (`mcp` 2.x), call tools, optionally probe a hijack.

Usage:
    python3 tests/clients/session_call.py --url 'http://127.0.0.1:8080/sse?auth=K&service=billing' \
        --transport sse --call 'param={"name": "service"}' [--call 'whoami'] \
        [--bearer KEY_A] [--hijack-bearer KEY_B]

Each --call is TOOL or TOOL=JSON_ARGUMENTS. With --hijack-bearer, after the calls the script POSTs a
tools/call on the same session id (the streamable URL with Mcp-Session-Id, or the SSE message
endpoint the server sent) with that other bearer token, records the HTTP status, then repeats every
call on its own session to show the owner is unaffected.

Prints one JSON line on success: {"ok": true, "sessionId": ..., "results": [text, ...],
"hijack_status": 404, "after_hijack": [text, ...]}; exit status 1 and a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class Log:
    def __init__(self) -> None:
        self.session_id: str | None = None
        self.post_urls: list[str] = []
        self.protocol_version: str | None = None

    async def on_request(self, request: httpx2.Request) -> None:
        if request.method == "POST":
            self.post_urls.append(str(request.url))
        version = request.headers.get("mcp-protocol-version")
        if version:
            self.protocol_version = version

    async def on_response(self, response: httpx2.Response) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid and response.request.method in ("POST", "GET"):
            self.session_id = sid

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}


@asynccontextmanager
async def connect(args: argparse.Namespace, log: Log):
    headers = {"Authorization": f"Bearer {args.bearer}"} if args.bearer else None
    if args.transport == "streamable":
        http = httpx2.AsyncClient(timeout=30.0, headers=headers, event_hooks=log.hooks())
        async with http, streamable_http_client(args.url, http_client=http, terminate_on_close=True) as streams:
            yield streams
    else:

        def factory(headers=None, timeout=None, auth=None) -> httpx2.AsyncClient:
            client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
            client.event_hooks = log.hooks()
            return client

        def on_session_created(session_id: str) -> None:
            log.session_id = session_id

        async with sse_client(
            args.url,
            headers=headers,
            timeout=30.0,
            httpx_client_factory=factory,
            on_session_created=on_session_created,
        ) as streams:
            yield streams


def parse_call(spec: str) -> tuple[str, dict[str, Any]]:
    tool, _, raw = spec.partition("=")
    return tool, (json.loads(raw) if raw else {})


async def call_all(session: ClientSession, calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = []
    for tool, arguments in calls:
        result = await session.call_tool(tool, arguments)
        if result.is_error:
            raise RuntimeError(f"tools/call {tool} returned isError: {result.content}")
        out.append("\n".join(getattr(b, "text", "") or "" for b in result.content))
    return out


async def hijack(args: argparse.Namespace, log: Log, calls: list[tuple[str, dict[str, Any]]]) -> int:
    tool, arguments = calls[0]
    body = {"jsonrpc": "2.0", "id": "hijack", "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "authorization": f"Bearer {args.hijack_bearer}",
    }
    if log.protocol_version:
        headers["mcp-protocol-version"] = log.protocol_version
    if args.transport == "streamable":
        url = args.url
        headers["mcp-session-id"] = log.session_id or ""
    else:
        url = log.post_urls[-1]
    async with httpx2.AsyncClient(timeout=10.0) as http:
        response = await http.post(url, json=body, headers=headers)
        return response.status_code


async def main_async(args: argparse.Namespace) -> int:
    calls = [parse_call(c) for c in args.call]
    log = Log()
    summary: dict[str, Any] = {"ok": True}
    with anyio.fail_after(args.timeout):
        async with connect(args, log) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            summary["results"] = await call_all(session, calls)
            summary["sessionId"] = log.session_id
            if args.hijack_bearer:
                summary["hijack_status"] = await hijack(args, log, calls)
                summary["after_hijack"] = await call_all(session, calls)
    print(json.dumps(summary))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--call", action="append", default=[], help="TOOL or TOOL=JSON (repeatable)")
    parser.add_argument("--bearer", help="send Authorization: Bearer KEY on every request")
    parser.add_argument("--hijack-bearer", help="probe the session with another principal's key")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if not args.call:
        parser.error("at least one --call is required")
    try:
        return anyio.run(main_async, args)
    except BaseException as exc:  # report everything, including exception groups
        print(f"session_call.py FAILED: {type(exc).__name__}: {exc!r}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
