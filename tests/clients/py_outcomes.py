"""The Python SDK drives every outcome the audit log records, one session each.

Usage: python3 tests/clients/py_outcomes.py --url URL --key KEY --bad-key KEY --origin ORIGIN
           --scope-tool NAME --limited-tool NAME --max-bytes N --name CLIENT_NAME [--timeout S]

Steps (each its own SDK session, `clientInfo.name` = --name):
  answered:   the `echo` tool with the key
  tool_error: a tool the server does not have
  auth:       --bad-key as the bearer token (the proxy answers 401)
  scopes:     --scope-tool, a tool needing a scope the key lacks (403)
  rate_limit: --limited-tool twice (the second call past the limit: 429)
  origin:     the key plus an `Origin: --origin` header through the SDK's HTTP client (403)
  size:       `echo` with a message larger than --max-bytes (413)

Prints one JSON line {step: {"statuses": [HTTP statuses of the step's POSTs], "outcome"}}; the
test compares it with the audit file. Exits 0 once every step ran (a refusal is an expected end).
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio
from mcp import ClientSession, types
from mcp.shared.exceptions import MCPError

from py_client import HttpLog, connect


async def step(args: argparse.Namespace, headers: dict[str, str], calls: list[tuple[str, dict]]) -> dict:
    """One SDK session with `headers`: initialize, then `calls` in order; how it ended."""
    log = HttpLog(headers)
    outcome = "ok"
    try:
        with anyio.fail_after(args.timeout):
            async with connect(args.url, "streamable", log, args.timeout) as (read, write):
                info = types.Implementation(name=args.name, version="1.2.3")
                async with ClientSession(read, write, client_info=info) as session:
                    await session.initialize()
                    for tool, arguments in calls:
                        result = await session.call_tool(tool, arguments)
                        if result.is_error:
                            outcome = "tool_error"
    except MCPError as e:
        outcome = f"error {e.error.code}"
    except BaseException as e:  # noqa: BLE001 - a refused request ends the SDK's session any way it likes
        outcome = f"failed {type(e).__name__}"
    statuses = [status for method, _, status in log.exchanges if method == "POST"]
    return {"statuses": statuses, "outcome": outcome}


async def main_async(args: argparse.Namespace) -> int:
    key = {"Authorization": f"Bearer {args.key}"}
    report = {
        "answered": await step(args, key, [("echo", {"message": "audit"})]),
        "tool_error": await step(args, key, [("no-such-tool", {})]),
        "auth": await step(args, {"Authorization": f"Bearer {args.bad_key}"}, []),
        "scopes": await step(args, key, [(args.scope_tool, {})]),
        "rate_limit": await step(args, key, [(args.limited_tool, {}), (args.limited_tool, {})]),
        "origin": await step(args, {**key, "Origin": args.origin}, []),
        "size": await step(args, key, [("echo", {"message": "x" * (args.max_bytes + 1)})]),
    }
    print(json.dumps(report), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--bad-key", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--scope-tool", required=True)
    parser.add_argument("--limited-tool", required=True)
    parser.add_argument("--max-bytes", type=int, required=True)
    parser.add_argument("--name", default="audit-py")
    parser.add_argument("--timeout", type=float, default=10.0)
    return anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
