"""The Python SDK calls a tool whose stdio server process dies mid-call.

Usage: python3 tests/clients/py_crash.py --url URL --transport streamable|sse [--tool crash]

Connects with the official SDK (`mcp`), initializes, calls the tool and expects a JSON-RPC error
for that call (not a hang). Prints one JSON line: {"code", "message", "seconds"} and exits 0 when
the call failed with an error; exits 1 when it succeeded or timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from py_client import HttpLog, connect


async def main_async(args: argparse.Namespace) -> int:
    log = HttpLog()
    async with connect(args.url, args.transport, log, args.timeout) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            started = time.monotonic()
            try:
                with anyio.fail_after(args.timeout):
                    result = await session.call_tool(args.tool, {})
            except MCPError as e:
                print(json.dumps({
                    "code": e.error.code,
                    "message": e.error.message,
                    "seconds": round(time.monotonic() - started, 3),
                }))
                return 0
            except TimeoutError:
                print(f"py_crash: no answer to {args.tool!r} within {args.timeout} s", file=sys.stderr)
                return 1
            if result.is_error:
                text = " ".join(getattr(c, "text", "") for c in result.content)
                print(json.dumps({"code": None, "message": text, "seconds": round(time.monotonic() - started, 3)}))
                return 0
            print(f"py_crash: {args.tool!r} succeeded: {result}", file=sys.stderr)
            return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--tool", default="crash")
    parser.add_argument("--timeout", type=float, default=10.0)
    return anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
