"""A small stdio MCP server on the official Python SDK (`mcp` 2.3), which speaks revision
2026-07-28 over stdio (and the handshake revisions: the first request of a connection picks
its era): the child of the direct 2026-07-28 tests (tests/tests/stdio_2026.rs). Its HTTP twin
is py_2026_server.py.

    python py_2026_stdio_server.py --log FILE

It serves on stdin/stdout:
- tool `echo(text)`: returns `echo: <text>`;
- tool `ask_name()`: asks the client for a name through elicitation (a resolver returning
  `Elicit`): at 2026-07-28 that is the server's own `InputRequiredResult`, answered by the
  client's retry with `inputResponses` and `requestState` (sealed with a key of this process);
  at 2025-11-25 an `elicitation/create` request;
- tool `whoami()`: returns the `MCP_USER` variable of its environment;
- resource `note://greeting`: a fixed text.

Every line it receives on stdin is logged to FILE (appended, one JSON object a line: this
process's pid, the method, the id, and the `_meta` protocol version if any), so that a test sees
what reached the child (no `initialize` in 2026-07-28).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
from _mcp2026 import new_server
from mcp.server.stdio import stdio_server

GREETING = "hello from the 2026 stdio server"

server = new_server("py-2026-stdio", GREETING)


@server.tool()
def whoami() -> str:
    """The MCP_USER variable of this process's environment."""
    return os.environ.get("MCP_USER", "")


class LoggedLines:
    """stdin as an async iterator of lines, each one logged to a file first."""

    def __init__(self, log: str) -> None:
        self._stdin = anyio.wrap_file(sys.stdin)
        self._log = log

    def __aiter__(self) -> "LoggedLines":
        return self

    async def __anext__(self) -> str:
        line = await self._stdin.readline()
        if not line:
            raise StopAsyncIteration
        record: dict[str, Any] = {"pid": os.getpid()}
        try:
            message = json.loads(line)
            record["method"] = message.get("method")
            record["id"] = message.get("id")
            params = message.get("params") or {}
            meta = (params.get("_meta") or {}) if isinstance(params, dict) else {}
            record["protocolVersion"] = meta.get("io.modelcontextprotocol/protocolVersion")
        except (ValueError, AttributeError):
            record["unparsed"] = True
        with open(self._log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return line


async def run(log: str) -> None:
    lowlevel = server._lowlevel_server  # noqa: SLF001 (run_stdio_async, with stdin logged)
    async with stdio_server(stdin=LoggedLines(log)) as (read_stream, write_stream):  # type: ignore[arg-type]
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    anyio.run(run, args.log)


if __name__ == "__main__":
    sys.exit(main())
