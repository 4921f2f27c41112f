"""The official Python SDK's high-level `mcp.Client` against a 2026-07-28 server through
mcp-bastion (tests/tests/passthrough.rs), or directly.

    python py_passthru.py --url URL [--mode auto|2026-07-28] [--header "Name: value"]... \
        [--elicit NAME]

Steps: connect (mode `auto` probes `server/discover`), tools/list, tools/call `echo`, with
`--elicit` the elicitation round trip of tool `ask_name` driven by hand (the first call returns
the `InputRequiredResult`; the retry carries `inputResponses` and the `requestState`) and once
more through the SDK's own loop (its elicitation callback answers), then resources/read
`note://greeting`. Prints one JSON summary on stdout; exits 1 with the failing step on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _mcp2026 import client_args, common_steps, connected, read_greeting, run_main


async def run(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    async with connected(args, summary, "py-passthru") as client:
        await common_steps(client, args, summary, input_required=True)
        await read_greeting(client, summary)


def main() -> int:
    return run_main(run, client_args().parse_args())


if __name__ == "__main__":
    sys.exit(main())
