#!/usr/bin/env python3
"""Drive an MCP server through the official Python SDK (`mcp` on PyPI, 2.x) and check every answer.

Usage:
    python3 tests/clients/py_client.py --url http://127.0.0.1:8080/mcp --transport streamable
    python3 tests/clients/py_client.py --url http://127.0.0.1:8080/sse --transport sse --profile everything
    python3 tests/clients/py_client.py --url URL --transport streamable --scenario echo --concurrency 50

Scenario `full` (default), per client: initialize (with `--handshake auto`, through the SDK's
`Client` in its default mode, which probes server/discover first and falls back to initialize);
tools/list; tools/call of the echo tool; a tool that sends progress notifications; a tool that makes the server send sampling/createMessage (and
elicitation/create) to this client, answered by this client's callbacks; resources/read;
prompts/get; session end (streamable: DELETE via the SDK's terminate-on-close; sse: closing the
stream). Scenario `echo`: initialize, then `--calls` concurrent echo calls with distinct texts,
each checked to come back to the caller that sent it, then session end.

The tools, resource and prompt come from a profile (`--profile`): a name from profiles.json next
to this file, a path to a JSON file, or inline JSON. See profiles.json for the format.

Exit status 0 and one JSON summary line on stdout on success; exit status 1 and a message naming
the client and the step that failed on stderr otherwise (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import traceback
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client as McpClient
from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

PROFILES_PATH = Path(__file__).with_name("profiles.json")
SECTIONS = ("echo", "progress", "sampling", "elicitation", "resource", "prompt")
PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
SESSION_HEADER = "mcp-session-id"


class ScenarioError(Exception):
    """A check failed: the message says what was expected and what came back."""


# ---------------------------------------------------------------------------------------------
# profile


def load_profile(spec: str) -> dict[str, Any]:
    """Load a profile by name (profiles.json), by path, or as inline JSON."""
    if spec.lstrip().startswith("{"):
        profile = json.loads(spec)
    elif Path(spec).is_file():
        profile = json.loads(Path(spec).read_text())
    else:
        profiles = json.loads(PROFILES_PATH.read_text())
        if spec.startswith("_") or spec not in profiles:
            names = ", ".join(k for k in profiles if not k.startswith("_"))
            raise SystemExit(f"py_client: unknown profile {spec!r} (known: {names}; or a JSON file or inline JSON)")
        profile = profiles[spec]
    missing = [s for s in SECTIONS if s not in profile]
    if missing:
        raise SystemExit(f"py_client: profile {spec!r} lacks section(s) {missing} (set a section to null to skip it)")
    return profile


def with_nonce(value: Any, nonce: str) -> Any:
    """Replace the string "{nonce}" inside strings of a JSON value."""
    if isinstance(value, str):
        return value.replace("{nonce}", nonce)
    if isinstance(value, list):
        return [with_nonce(v, nonce) for v in value]
    if isinstance(value, dict):
        return {k: with_nonce(v, nonce) for k, v in value.items()}
    return value


def new_nonce(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


def result_text(result: types.CallToolResult | types.GetPromptResult | types.ReadResourceResult) -> str:
    """All text of a tool result, prompt or resource, joined, for substring checks."""
    parts: list[str] = []
    if isinstance(result, types.CallToolResult):
        for block in result.content:
            parts.append(getattr(block, "text", "") or "")
        if result.structured_content is not None:
            parts.append(json.dumps(result.structured_content))
    elif isinstance(result, types.GetPromptResult):
        for message in result.messages:
            parts.append(getattr(message.content, "text", "") or "")
    else:
        for contents in result.contents:
            parts.append(getattr(contents, "text", "") or "")
    return "\n".join(parts)


def short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# ---------------------------------------------------------------------------------------------
# HTTP observation: we pass our own httpx2 client to the SDK transports and record what happened


class HttpLog:
    """Records the status of every HTTP exchange the SDK makes, and the session id it was given."""

    def __init__(self, extra_headers: dict[str, str] | None = None) -> None:
        self.extra_headers = extra_headers or {}
        self.exchanges: list[tuple[str, str, int]] = []
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.endpoint: str | None = None
        # 2026-07-28 retries that carried the client's answers (`inputResponses`), by `Mcp-Method`
        self.input_retries: list[str] = []

    async def on_request(self, request: httpx2.Request) -> None:
        # --header: sent on every request the SDK makes (e.g. a client token the proxy must not forward)
        for name, value in self.extra_headers.items():
            request.headers[name] = value
        if request.method == "POST" and b'"inputResponses"' in self.body_of(request):
            self.input_retries.append(request.headers.get("mcp-method", "?"))

    @staticmethod
    def body_of(request: httpx2.Request) -> bytes:
        try:
            return request.content
        except httpx2.RequestNotRead:  # a streamed body (the SDK sends JSON bodies whole)
            return b""
        version = request.headers.get(PROTOCOL_VERSION_HEADER)
        if version:
            self.protocol_version = version

    async def on_response(self, response: httpx2.Response) -> None:
        self.exchanges.append((response.request.method, str(response.request.url), response.status_code))
        sid = response.headers.get(SESSION_HEADER)
        if sid and response.request.method in ("POST", "GET"):
            self.session_id = sid

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def deletes(self) -> list[int]:
        return [status for method, _, status in self.exchanges if method == "DELETE"]


@asynccontextmanager
async def connect(url: str, transport: str, log: HttpLog, timeout: float):
    """Open the SDK's real transport for `url`; yields (read_stream, write_stream)."""
    if transport == "streamable":
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=timeout), event_hooks=log.hooks())
        async with http, streamable_http_client(url, http_client=http, terminate_on_close=True) as streams:
            yield streams
    else:

        def factory(headers=None, timeout=None, auth=None) -> httpx2.AsyncClient:
            client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
            client.event_hooks = log.hooks()
            return client

        def on_session_created(session_id: str) -> None:
            log.session_id = session_id

        async with sse_client(
            url,
            timeout=30.0,
            sse_read_timeout=timeout,
            httpx_client_factory=factory,
            on_session_created=on_session_created,
        ) as streams:
            yield streams


# ---------------------------------------------------------------------------------------------
# one client


class ScenarioClient:
    """One SDK client session and the checks it runs."""

    def __init__(self, args: argparse.Namespace, profile: dict[str, Any], index: int) -> None:
        self.args = args
        self.profile = profile
        self.index = index
        self.step = "connect"
        self.log = HttpLog(parse_headers(args.header))
        self.summary: dict[str, Any] = {"client": index, "steps": {}}
        self.sampling_requests: list[str] = []
        self.sampling_answer: str | None = None
        self.elicitation_requests: list[str] = []
        self.elicitation_content: dict[str, Any] | None = None
        # the SDK's high-level `Client` (--handshake auto / 2026-07-28); None with ClientSession
        self.client: McpClient | None = None

    def fail(self, message: str) -> ScenarioError:
        return ScenarioError(message)

    def done(self, step: str, **info: Any) -> None:
        self.summary["steps"][step] = info or "ok"

    # -- server-to-client callbacks ------------------------------------------------------------

    async def on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        texts = [getattr(m.content, "text", "") or "" for m in params.messages]
        self.sampling_requests.append("\n".join(texts))
        answer = self.sampling_answer or new_nonce("unexpected-sampling")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=answer),
            model="mcp-bastion-test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(self, context: Any, params: Any) -> types.ElicitResult:
        self.elicitation_requests.append(getattr(params, "message", ""))
        if self.elicitation_content is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content=self.elicitation_content)

    # -- helpers --------------------------------------------------------------------------------

    async def call(self, session: ClientSession, tool: str, arguments: dict[str, Any], **kw: Any) -> types.CallToolResult:
        # `Client.call_tool` answers a 2026-07-28 InputRequiredResult with this client's callbacks
        # and retries (multi-round-trip input); `ClientSession.call_tool` would return it as is
        caller = self.client if self.client is not None else session
        result = await caller.call_tool(tool, arguments, read_timeout_seconds=self.args.timeout, **kw)
        if result.is_error:
            raise self.fail(f"tools/call {tool!r} returned isError=true: {short(result_text(result))}")
        return result

    async def list_tools(self, session: ClientSession, wanted: list[str]) -> list[str]:
        # server-everything registers its sampling/elicitation tools when it sees
        # notifications/initialized, so give a just-initialized server a moment.
        deadline = time.monotonic() + 5.0
        while True:
            names: list[str] = []
            cursor: str | None = None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                listed = await session.list_tools(params=params)
                names += [t.name for t in listed.tools]
                cursor = listed.next_cursor
                if not cursor:
                    break
            missing = [w for w in wanted if w not in names]
            if not missing:
                return names
            if time.monotonic() > deadline:
                raise self.fail(f"tools/list lacks {missing}; it listed {names}")
            await anyio.sleep(0.2)

    # -- scenarios ------------------------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The callbacks and settings of the SDK session (a subclass may add to them)."""
        return {
            "read_timeout_seconds": self.args.timeout,
            "sampling_callback": self.on_sampling if self.profile.get("sampling") else None,
            "elicitation_callback": self.on_elicitation if self.profile.get("elicitation") else None,
            "client_info": types.Implementation(name="mcp-bastion-py-client", version="0.1.0"),
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        callbacks = self.client_options()
        transport = connect(self.args.url, self.args.transport, self.log, self.args.timeout)
        if self.args.handshake == "initialize":
            # the classic path: ClientSession over the transport's streams, explicit initialize
            async with transport as (read, write), ClientSession(read, write, **callbacks) as session:
                self.step = "initialize"
                await session.initialize()
                await self.scenario(session)
        else:
            # the SDK's high-level Client: in mode 'auto' it probes server/discover
            # (2026-07-28) first and falls back to the initialize handshake on older
            # servers; in mode '2026-07-28' it only speaks sessionless requests
            mode = self.args.handshake
            self.step = f"initialize ({mode}: server/discover" + (", then initialize)" if mode == "auto" else ")")
            async with McpClient(transport, mode=mode, cache=None, **callbacks) as client:
                self.client = client
                await self.scenario(client.session)
        # leaving the transport context sent DELETE (streamable) or closed the stream (sse)
        self.summary["sessionId"] = self.log.session_id
        self.summary["inputRetries"] = self.log.input_retries
        await self.check_session_ended()
        self.summary["seconds"] = round(time.monotonic() - started, 3)
        return self.summary

    async def scenario(self, session: ClientSession) -> None:
        version = session.protocol_version
        server_info = session.server_info
        self.summary["protocolVersion"] = version
        self.summary["server"] = server_info.name if server_info else None
        self.done("initialize", protocolVersion=version, handshake=self.args.handshake)
        if self.args.scenario == "full":
            await self.full(session)
        else:
            await self.echo_many(session)
        self.step = "session end"

    async def full(self, session: ClientSession) -> None:
        p = self.profile
        self.step = "tools/list"
        wanted = [p[s]["tool"] for s in ("echo", "progress", "sampling", "elicitation") if p.get(s)]
        names = await self.list_tools(session, wanted)
        self.done("tools/list", count=len(names))

        if p.get("echo"):
            self.step = "tools/call echo"
            nonce = new_nonce(f"py{self.index}-echo")
            result = await self.call(session, p["echo"]["tool"], with_nonce(p["echo"]["arguments"], nonce))
            text = result_text(result)
            if nonce not in text:
                raise self.fail(f"echo tool did not echo {nonce!r}: got {short(text)!r}")
            self.done("echo", text=short(text, 80))
        else:
            self.done("echo", skipped=True)

        if p.get("progress"):
            self.step = "tools/call progress"
            seen: list[tuple[float, float | None]] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append((progress, total))

            nonce = new_nonce(f"py{self.index}-progress")
            await self.call(
                session,
                p["progress"]["tool"],
                with_nonce(p["progress"].get("arguments", {}), nonce),
                progress_callback=on_progress,
            )
            want = int(p["progress"].get("min_notifications", 2))
            if len(seen) < want:
                raise self.fail(f"progress callback saw {len(seen)} notification(s), wanted >= {want}: {seen}")
            progress_values = [v for v, _ in seen]
            if progress_values != sorted(progress_values):
                raise self.fail(f"progress values are not increasing: {progress_values}")
            self.done("progress", notifications=len(seen))
        else:
            self.done("progress", skipped=True)

        if p.get("sampling"):
            self.step = "tools/call sampling (server -> client sampling/createMessage)"
            nonce = new_nonce(f"py{self.index}-sampling")
            self.sampling_answer = f"sampled answer {new_nonce(f'py{self.index}-answer')}"
            arguments = with_nonce(p["sampling"].get("arguments", {}), nonce)
            result = await self.call(session, p["sampling"]["tool"], arguments)
            if not self.sampling_requests:
                raise self.fail("the sampling tool returned, but this client's sampling callback was never called")
            if "{nonce}" in json.dumps(p["sampling"].get("arguments", {})) and nonce not in self.sampling_requests[-1]:
                raise self.fail(
                    f"the sampling request this client got is not the one it caused: wanted {nonce!r} in "
                    f"{short(self.sampling_requests[-1])!r}"
                )
            text = result_text(result)
            if self.sampling_answer not in text:
                raise self.fail(f"the tool result lacks this client's sampling answer {self.sampling_answer!r}: {short(text)!r}")
            self.done("sampling", requests=len(self.sampling_requests), answer=self.sampling_answer, text=short(text, 200))
        else:
            self.done("sampling", skipped=True)

        if p.get("elicitation"):
            self.step = "tools/call elicitation (server -> client elicitation/create)"
            nonce = new_nonce(f"py{self.index}-elicit")
            self.elicitation_content = with_nonce(p["elicitation"].get("content", {}), nonce)
            result = await self.call(session, p["elicitation"]["tool"], with_nonce(p["elicitation"].get("arguments", {}), nonce))
            if not self.elicitation_requests:
                raise self.fail("the elicitation tool returned, but this client's elicitation callback was never called")
            text = result_text(result)
            if "{nonce}" in json.dumps(p["elicitation"].get("content", {})) and nonce not in text:
                raise self.fail(f"the tool result lacks this client's elicitation answer {nonce!r}: {short(text)!r}")
            self.done("elicitation", requests=len(self.elicitation_requests), answer=nonce, text=short(text, 200))
        else:
            self.done("elicitation", skipped=True)

        if p.get("resource"):
            self.step = "resources/read"
            uri = p["resource"]["uri"]
            result = await session.read_resource(uri)
            if not result.contents:
                raise self.fail(f"resources/read {uri!r} returned no contents")
            text = result_text(result)
            expect = p["resource"].get("expect")
            if expect and expect not in text:
                raise self.fail(f"resources/read {uri!r}: wanted {expect!r} in {short(text)!r}")
            self.done("resource", uri=uri)
        else:
            self.done("resource", skipped=True)

        if p.get("prompt"):
            self.step = "prompts/get"
            nonce = new_nonce(f"py{self.index}-prompt")
            name = p["prompt"]["name"]
            result = await session.get_prompt(name, with_nonce(p["prompt"].get("arguments") or None, nonce))
            if not result.messages:
                raise self.fail(f"prompts/get {name!r} returned no messages")
            text = result_text(result)
            expect = with_nonce(p["prompt"].get("expect"), nonce)
            if expect and expect not in text:
                raise self.fail(f"prompts/get {name!r}: wanted {expect!r} in {short(text)!r}")
            self.done("prompt", name=name)
        else:
            self.done("prompt", skipped=True)

    async def echo_many(self, session: ClientSession) -> None:
        echo = self.profile.get("echo")
        if not echo:
            raise self.fail("scenario 'echo' needs an echo section in the profile")
        self.step = "concurrent tools/call echo"
        failures: list[str] = []

        async def one(k: int) -> None:
            nonce = new_nonce(f"py-client{self.index}-call{k}")
            try:
                result = await self.call(session, echo["tool"], with_nonce(echo["arguments"], nonce))
                text = result_text(result)
                if nonce not in text:
                    failures.append(f"call {k}: sent {nonce!r}, got {short(text)!r}")
            except Exception as exc:  # collected, reported together below
                failures.append(f"call {k}: {type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tg:
            for k in range(self.args.calls):
                tg.start_soon(one, k)
        if failures:
            raise self.fail(f"{len(failures)} of {self.args.calls} echo calls failed: " + "; ".join(failures[:5]))
        self.done("echo", calls=self.args.calls)

    async def check_session_ended(self) -> None:
        """After the SDK ended the session, check the server agrees (with --strict-session-end)."""
        self.step = "session end"
        sid = self.log.session_id
        if self.args.transport == "streamable":
            deletes = self.log.deletes()
            if sid is None:
                self.done("session_end", note="server assigned no session id (stateless)")
                return
            if not deletes:
                raise self.fail(f"the SDK sent no DELETE for session {sid!r}")
            if deletes[-1] not in (200, 202, 204, 405):
                raise self.fail(f"DELETE of session {sid!r} answered {deletes[-1]}")
            info: dict[str, Any] = {"delete_status": deletes[-1]}
            if self.args.strict_session_end:
                status = await self.post_after_end(self.args.url, {SESSION_HEADER: sid})
                if status != 404:
                    raise self.fail(f"a request on ended session {sid!r} got HTTP {status}, want 404")
                info["after_end_status"] = status
            self.done("session_end", **info)
        else:
            if sid is None:
                raise self.fail("the SSE endpoint event carried no session id")
            info = {"closed": True}
            if self.args.strict_session_end:
                # the server notices the closed stream asynchronously: poll briefly for 404
                endpoint = next((u for m, u, _ in self.log.exchanges if m == "POST"), None)
                if endpoint is None:
                    raise self.fail("no POST endpoint was used")
                deadline = time.monotonic() + 5.0
                while True:
                    status = await self.post_after_end(endpoint, {})
                    if status == 404:
                        break
                    if time.monotonic() > deadline:
                        raise self.fail(f"a POST for closed SSE session {sid!r} still got HTTP {status} after 5 s, want 404")
                    await anyio.sleep(0.1)
                info["after_end_status"] = status
            self.done("session_end", **info)

    async def post_after_end(self, url: str, headers: dict[str, str]) -> int:
        body = {"jsonrpc": "2.0", "id": "after-end", "method": "ping"}
        all_headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            **self.log.extra_headers,
            **headers,
        }
        if self.log.protocol_version:
            all_headers[PROTOCOL_VERSION_HEADER] = self.log.protocol_version
        async with httpx2.AsyncClient(timeout=20.0) as http:
            response = await http.post(url, json=body, headers=all_headers)
            return response.status_code


# ---------------------------------------------------------------------------------------------
# main


def describe(exc: BaseException) -> str:
    """Flatten exception groups into readable lines."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, ScenarioError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    error = getattr(exc, "error", None)
    if error is not None and hasattr(error, "code"):
        text += f" (JSON-RPC error {error.code})"
    return text


async def run_one(args: argparse.Namespace, profile: dict[str, Any], index: int, results: list[Any]) -> None:
    client = ScenarioClient(args, profile, index)
    try:
        results[index] = await client.run()
    except Exception as exc:
        detail = "".join(traceback.format_exception(exc)) if args.verbose else ""
        results[index] = ScenarioError(f"client {index}, step {client.step!r}: {describe(exc)}\n{detail}".rstrip())


async def main_async(args: argparse.Namespace, profile: dict[str, Any]) -> int:
    results: list[Any] = [None] * args.concurrency
    started = time.monotonic()
    try:
        with anyio.fail_after(args.timeout):
            async with anyio.create_task_group() as tg:
                for i in range(args.concurrency):
                    tg.start_soon(run_one, args, profile, i, results)
    except TimeoutError:
        pending = [i for i, r in enumerate(results) if r is None]
        print(
            f"py_client FAILED: timed out after {args.timeout} s; {len(pending)} client(s) unfinished: {pending[:10]}",
            file=sys.stderr,
        )
        return 1
    failures = [r for r in results if isinstance(r, ScenarioError)]
    if failures:
        print(
            f"py_client FAILED ({args.transport} {args.url}, {len(failures)} of {args.concurrency} client(s)):",
            file=sys.stderr,
        )
        for f in failures[:10]:
            print(f"  {f}", file=sys.stderr)
        return 1
    summary = {
        "ok": True,
        "sdk": "python",
        "sdk_version": _sdk_version(),
        "transport": args.transport,
        "url": args.url,
        "scenario": args.scenario,
        "clients": args.concurrency,
        "seconds": round(time.monotonic() - started, 3),
    }
    if args.concurrency == 1:
        summary.update(results[0])
    else:
        summary["calls_per_client"] = args.calls
        summary["distinct_sessions"] = len({r.get("sessionId") for r in results})
    print(json.dumps(summary))
    return 0


def _sdk_version() -> str:
    from importlib.metadata import version

    return version("mcp")


def parse_headers(specs: list[str]) -> dict[str, str]:
    """`--header "Name: value"` values as a dict."""
    headers: dict[str, str] = {}
    for spec in specs:
        name, sep, value = spec.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"py_client: --header expects 'Name: value', got {spec!r}")
        headers[name.strip()] = value.strip()
    return headers


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="streamable: the MCP endpoint (…/mcp); sse: the stream URL (…/sse)")
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--profile", default="everything", help="profile name in profiles.json, JSON file, or inline JSON")
    parser.add_argument("--scenario", default=None, choices=["full", "echo"], help="default: full, or echo when --concurrency > 1")
    parser.add_argument("--concurrency", type=int, default=1, help="clients run in parallel, each its own session")
    parser.add_argument("--calls", type=int, default=3, help="scenario echo: concurrent echo calls per client")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole run")
    parser.add_argument(
        "--strict-session-end",
        action="store_true",
        help="after session end, require that the server answers a request on that session with 404",
    )
    parser.add_argument(
        "--handshake",
        default="initialize",
        choices=["initialize", "auto", "2026-07-28"],
        help="initialize: ClientSession.initialize(); auto: mcp.Client(mode='auto'), which probes "
        "server/discover (2026-07-28) first and falls back to initialize; 2026-07-28: "
        "mcp.Client(mode='2026-07-28'), sessionless requests only",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        help="'Name: value' sent on every HTTP request (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="print tracebacks on failure")
    args = parser.parse_args(argv)
    if args.scenario is None:
        args.scenario = "full" if args.concurrency == 1 else "echo"
    if args.concurrency < 1 or args.calls < 1:
        parser.error("--concurrency and --calls must be >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    profile = load_profile(args.profile)
    return anyio.run(main_async, args, profile)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
