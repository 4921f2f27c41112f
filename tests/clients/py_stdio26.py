"""The official Python SDK's high-level `mcp.Client` through mcp-bastion in front of the stdio
server py_2026_stdio_server.py (tests/tests/stdio_2026.rs).

    python py_stdio26.py --url URL [--mode auto|2026-07-28] [--header "Name: value"]... \
        [--elicit NAME] [--whoami N]

Steps: connect (mode `auto` probes `server/discover`), tools/list, tools/call `echo`, with
`--elicit` the elicitation round trip of tool `ask_name` driven by hand (the first call returns
the `InputRequiredResult`; the retry carries `inputResponses` and the `requestState`) and once
more through the SDK's own loop (its elicitation callback answers), N calls of `whoami` (the
child's `MCP_USER`), then resources/read `note://greeting`. Prints one JSON summary on stdout;
exits 1 with the failing step on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

import anyio
import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in getattr(result, "content", []) or [])


async def run(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    headers = {}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()

    async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
        summary.setdefault("elicitations", []).append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content={"name": args.elicit})

    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    async with http, Client(
        streamable_http_client(args.url, http_client=http),
        mode=args.mode,
        cache=None,
        elicitation_callback=on_elicitation if args.elicit else None,
        client_info=types.Implementation(name="py-stdio26", version="0.1.0"),
    ) as client:
        summary["step"] = "connect"
        summary["protocolVersion"] = client.protocol_version
        summary["server"] = client.server_info.name if client.server_info else None

        summary["step"] = "tools/list"
        tools = await client.list_tools()
        summary["tools"] = sorted(t.name for t in tools.tools)

        summary["step"] = "tools/call echo"
        summary["echo"] = text_of(await client.call_tool("echo", {"text": "through"}))

        if args.elicit:
            summary["step"] = "tools/call ask_name (InputRequiredResult)"
            first = await client.session.call_tool("ask_name", {}, allow_input_required=True)
            if isinstance(first, types.InputRequiredResult):
                requests = first.input_requests or {}
                summary["inputRequests"] = {k: getattr(v, "method", None) for k, v in requests.items()}
                summary["requestState"] = first.request_state
                summary["step"] = "tools/call ask_name (retry with inputResponses)"
                responses = {
                    k: types.ElicitResult(action="accept", content={"name": args.elicit}) for k in requests
                }
                done = await client.session.call_tool(
                    "ask_name", {}, input_responses=responses, request_state=first.request_state
                )
                summary["askName"] = text_of(done)
            else:
                summary["askName"] = text_of(first)
            summary["step"] = "tools/call ask_name (the SDK's own loop)"
            summary["askNameLoop"] = text_of(await client.call_tool("ask_name", {}))

        summary["step"] = "tools/call whoami"
        summary["whoami"] = [text_of(await client.call_tool("whoami", {})) for _ in range(args.whoami)]

        summary["step"] = "resources/read"
        read = await client.read_resource("note://greeting")
        summary["resource"] = "".join(getattr(c, "text", "") for c in read.contents)
        summary["step"] = "done"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--elicit", default=None, help="answer elicitations with this name")
    parser.add_argument("--whoami", type=int, default=2, help="calls of whoami")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    try:
        anyio.run(run, args, summary)
    except BaseException:
        print(json.dumps(summary), flush=True)
        print(f"failed at {summary.get('step')}", file=sys.stderr)
        traceback.print_exc()
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
