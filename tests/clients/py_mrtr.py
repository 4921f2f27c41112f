#!/usr/bin/env python3
"""Multi-round-trip input (2026-07-28, SEP-2322) through mcp-bastion's bridge, with the official
Python SDK's high-level `mcp.client.client.Client`.

Usage:
    python3 tests/clients/py_mrtr.py --url http://127.0.0.1:8080/mcp [--header "Authorization: Bearer K"]
        [--steps elicitation,sampling,tampered]

The client probes `server/discover` (mode 'auto'), declares elicitation and sampling by giving
callbacks for them, and:
- elicitation: calls server-everything's `trigger-elicitation-request`; the bridge answers with an
  InputRequiredResult, the SDK runs `elicitation_callback` and retries with `inputResponses` and
  `requestState`; the tool's result shows the content the callback gave;
- sampling: the same with `trigger-sampling-request` and `sampling_callback`;
- tampered: drives one round by hand (`allow_input_required=True`), changes one character of the
  `requestState` and retries: the error is reported (the caller asserts -32602);
- raw_state: prints the first round's InputRequiredResult `requestState` without completing it.

Prints one JSON line: {"ok": true, "protocolVersion": ..., "elicitation": {...}, ...}; a failure
exits 1 with {"ok": false, "error": ...}.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import traceback
from typing import Any

import anyio
import httpx2
from mcp import types
from mcp.client.client import Client
from _script import describe, parse_headers
from mcp.client.streamable_http import streamable_http_client


def text_of(result: Any) -> str:
    return "\n".join(getattr(b, "text", "") or "" for b in result.content)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": True}
    nonce = secrets.token_hex(4)
    elicited: list[str] = []
    sampled: list[str] = []

    async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
        elicited.append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content={"name": f"elicited-{nonce}", "check": True})

    async def on_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        sampled.append("\n".join(getattr(m.content, "text", "") or "" for m in params.messages))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled-{nonce}"),
            model="mcp-bastion-test-model",
            stop_reason="endTurn",
        )

    steps = [s for s in args.steps.split(",") if s]
    http = httpx2.AsyncClient(headers=parse_headers(args.header), timeout=httpx2.Timeout(30.0, read=args.timeout))
    async with http:
        async with Client(
            # the SDK's transport, entered by the Client
            streamable_http_client(args.url, http_client=http),
            mode="auto",
            cache=None,
            read_timeout_seconds=args.timeout,
            elicitation_callback=on_elicitation,
            sampling_callback=on_sampling,
            client_info=types.Implementation(name="mcp-bastion-mrtr", version="0.1.0"),
        ) as client:
            session = client.session
            out["protocolVersion"] = session.protocol_version
            tools = await client.list_tools()
            out["tools"] = [t.name for t in tools.tools]
            for step in steps:
                if step == "elicitation":
                    result = await client.call_tool("trigger-elicitation-request", {})
                    out["elicitation"] = {"text": text_of(result), "asked": elicited, "is_error": bool(result.is_error)}
                elif step == "sampling":
                    result = await client.call_tool("trigger-sampling-request", {"prompt": f"p-{nonce}", "maxTokens": 16})
                    out["sampling"] = {"text": text_of(result), "asked": sampled, "is_error": bool(result.is_error)}
                elif step in ("tampered", "raw_state"):
                    first = await session.call_tool("trigger-elicitation-request", {}, allow_input_required=True)
                    if not isinstance(first, types.InputRequiredResult):
                        raise RuntimeError(f"expected an InputRequiredResult, got {first!r}")
                    state = first.request_state or ""
                    keys = list((first.input_requests or {}).keys())
                    if step == "raw_state":
                        out["raw_state"] = {"requestState": state, "keys": keys}
                        continue
                    # change one character in the middle of the opaque part
                    i = len(state) // 2
                    tampered = state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1 :]
                    responses = {k: types.ElicitResult(action="decline") for k in keys}
                    try:
                        await session.call_tool(
                            "trigger-elicitation-request",
                            {},
                            input_responses=responses,
                            request_state=tampered,
                            allow_input_required=True,
                        )
                        out["tampered"] = {"accepted": True}
                    except Exception as exc:  # the point is to see it refused
                        error = getattr(exc, "error", None)
                        out["tampered"] = {
                            "accepted": False,
                            "code": getattr(error, "code", None),
                            "message": getattr(error, "message", None),
                            "error": describe(exc),
                        }
                else:
                    raise RuntimeError(f"unknown step {step}")
    return out


async def bounded(args: argparse.Namespace) -> dict[str, Any]:
    with anyio.fail_after(args.timeout * 2):
        return await run(args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--steps", default="elicitation,sampling,tampered")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        out = anyio.run(bounded, args)
    except BaseException as exc:  # reported as the script's last line
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": describe(exc)}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
