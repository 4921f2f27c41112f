"""What the 2026-07-28 test scripts share (not run on its own; imported by the scripts beside it,
which Python finds because a script's own folder leads `sys.path`).

Server side (py_2026_server.py over HTTP, py_2026_stdio_server.py over stdio): `new_server`, an
`MCPServer` of the official Python SDK with
- tool `echo(text)`: returns `echo: <text>`;
- tool `ask_name()`: asks the client for a name through elicitation (a resolver returning
  `Elicit`): at 2026-07-28 the server's own `InputRequiredResult`, answered by the client's retry
  with `inputResponses` and `requestState`; at 2025-11-25 an `elicitation/create` request;
- resource `note://greeting`: a fixed text.

Client side (py_passthru.py, py_stdio26.py): `client_args` (the common options), `connected` (a
high-level `mcp.Client` over Streamable HTTP), `common_steps` (tools/list, echo, the elicitation
round trips), `read_greeting`, and `run_main` (one JSON summary on stdout; exit 1 with the failing
step on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import httpx2
from pydantic import BaseModel

from _script import parse_headers
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Elicit, MCPServer, Resolve


class Name(BaseModel):
    name: str


def ask_for_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


def new_server(name: str, greeting_text: str) -> MCPServer:
    """A server named `name` with `echo`, `ask_name` and `note://greeting` (`greeting_text`)."""
    server = MCPServer(name)

    @server.tool()
    def echo(text: str) -> str:
        """Echoes the text back."""
        return f"echo: {text}"

    @server.tool()
    def ask_name(who: Annotated[Name, Resolve(ask_for_name)]) -> str:
        """Asks the client for a name (elicitation) and greets it."""
        return f"hello, {who.name}"

    @server.resource("note://greeting")
    def greeting() -> str:
        """A fixed note."""
        return greeting_text

    return server


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in getattr(result, "content", []) or [])


def client_args() -> argparse.ArgumentParser:
    """`--url`, `--mode`, `--header` (repeated) and `--elicit`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--elicit", default=None, help="answer elicitations with this name")
    return parser


@asynccontextmanager
async def connected(args: argparse.Namespace, summary: dict[str, Any], client_name: str) -> AsyncIterator[Client]:
    """A connected `mcp.Client` (step `connect` recorded in `summary`)."""
    headers = parse_headers(args.header)

    async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
        summary.setdefault("elicitations", []).append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content={"name": args.elicit})

    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    async with http, Client(
        streamable_http_client(args.url, http_client=http),
        mode=args.mode,
        cache=None,
        elicitation_callback=on_elicitation if args.elicit else None,
        client_info=types.Implementation(name=client_name, version="0.1.0"),
    ) as client:
        summary["step"] = "connect"
        summary["protocolVersion"] = client.protocol_version
        summary["server"] = client.server_info.name if client.server_info else None
        yield client


async def common_steps(
    client: Client, args: argparse.Namespace, summary: dict[str, Any], *, input_required: bool
) -> None:
    """tools/list, tools/call `echo`, and with `--elicit` the `ask_name` round trip by hand, then
    through the SDK's own loop. With `input_required`, a first answer other than an
    `InputRequiredResult` fails; without, it is taken as the answer."""
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
            responses = {k: types.ElicitResult(action="accept", content={"name": args.elicit}) for k in requests}
            done = await client.session.call_tool(
                "ask_name", {}, input_responses=responses, request_state=first.request_state
            )
            summary["askName"] = text_of(done)
        elif input_required:
            raise RuntimeError(f"expected an InputRequiredResult, got {first!r}")
        else:
            summary["askName"] = text_of(first)
        summary["step"] = "tools/call ask_name (the SDK's own loop)"
        summary["askNameLoop"] = text_of(await client.call_tool("ask_name", {}))


async def read_greeting(client: Client, summary: dict[str, Any]) -> None:
    """resources/read `note://greeting`, then step `done`."""
    summary["step"] = "resources/read"
    read = await client.read_resource("note://greeting")
    summary["resource"] = "".join(getattr(c, "text", "") for c in read.contents)
    summary["step"] = "done"


def run_main(
    run: Callable[[argparse.Namespace, dict[str, Any]], Awaitable[None]], args: argparse.Namespace
) -> int:
    """Runs `run`, prints its summary; 1 with the failing step on stderr when it raises."""
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
