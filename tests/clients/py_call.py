"""The Python SDK makes one tool call and reports how it ended.

Usage: python3 tests/clients/py_call.py --url URL --transport streamable|sse --tool NAME
           [--arguments JSON] [--expect ok|error] [--timeout S] [--started-file PATH]
           [--header 'Name: value']...

Connects with the official SDK (`mcp`), initializes, calls the tool and prints one JSON line:
{"outcome": "ok"|"error", "code", "message", "text", "seconds"} (seconds from the call to its
answer). With --started-file, the file is created just before the call is sent. Exits 0 when the outcome is the expected one (--expect, default ok), 1 otherwise or on a
timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from py_client import HttpLog, connect, parse_headers

REPORTED: list[str] = []  # the outcome, once printed


async def main_async(args: argparse.Namespace) -> int:
    log = HttpLog(parse_headers(args.header))
    report: dict = {}
    async with connect(args.url, args.transport, log, args.timeout) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if args.started_file:
                open(args.started_file, "w").close()
            started = time.monotonic()
            try:
                with anyio.fail_after(args.timeout):
                    result = await session.call_tool(args.tool, json.loads(args.arguments))
            except MCPError as e:
                report = {"outcome": "error", "code": e.error.code, "message": e.error.message}
            except TimeoutError:
                print(f"py_call: no answer to {args.tool!r} within {args.timeout} s", file=sys.stderr)
                return 1
            else:
                text = " ".join(getattr(c, "text", "") for c in result.content)
                report = {"outcome": "error" if result.is_error else "ok", "code": None, "text": text}
            report["seconds"] = round(time.monotonic() - started, 3)
            # report before the SDK tears the session down (which may fail when the server is
            # going away, the case the shutdown test makes)
            print(json.dumps(report), flush=True)
            REPORTED.append(report["outcome"])
    if report["outcome"] != args.expect:
        print(f"py_call: {args.tool!r} ended {report['outcome']}, expected {args.expect}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--arguments", default="{}")
    parser.add_argument("--expect", default="ok", choices=["ok", "error"])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--started-file", default=None)
    parser.add_argument("--header", action="append", default=[], help="'Name: value' sent on every request")
    args = parser.parse_args()
    try:
        return anyio.run(main_async, args)
    except BaseException as e:  # noqa: BLE001 - teardown after the report is not the call's outcome
        if REPORTED:
            print(f"py_call: ignored error after the call: {e!r}", file=sys.stderr)
            return 0 if REPORTED[0] == args.expect else 1
        raise


if __name__ == "__main__":
    sys.exit(main())
