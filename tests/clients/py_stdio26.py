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
import sys
from typing import Any

from _mcp2026 import client_args, common_steps, connected, read_greeting, run_main, text_of


async def run(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    async with connected(args, summary, "py-stdio26") as client:
        await common_steps(client, args, summary, input_required=False)

        summary["step"] = "tools/call whoami"
        summary["whoami"] = [text_of(await client.call_tool("whoami", {})) for _ in range(args.whoami)]

        await read_greeting(client, summary)


def main() -> int:
    parser = client_args()
    parser.add_argument("--whoami", type=int, default=2, help="calls of whoami")
    return run_main(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
