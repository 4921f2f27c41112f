#!/usr/bin/env python3
"""The full scenario at revision 2026-07-28, several users at once, through the official Python SDK's
high-level `mcp.client.client.Client` (mode 'auto': it probes `server/discover` and negotiates).

Usage:
    python3 tests/clients/py_2026_scenario.py --url http://127.0.0.1:8080/mcp \
        --user alice=KEY_A --user bob=KEY_B --env-var GITHUB_PERSONAL_ACCESS_TOKEN

Each `--user NAME=KEY` is one client sending `Authorization: Bearer KEY`; all run concurrently.
Each runs the full scenario of `py_client.py` (its `ScenarioClient`, profile `--profile`):
tools/list, the echo call, progress notifications, sampling and elicitation (through
`Client.call_tool`, which answers the server's InputRequiredResult with this client's callbacks and
retries with `inputResponses` and `requestState`), resources/read, prompts/get; then the optional
2026 steps of the profile:

- lists: resources/list, resources/templates/list and prompts/list, each listing the profile's
  entries;
- completion: completion/complete of a prompt argument, with context arguments;
- logging: a tool call whose request opts in to log messages (`_meta` logLevel, the client's
  `log_level`); reports the messages the client's logging callback got during that call;
- env: the environment tool; reports the value of `--env-var` this user's backend sees.

Prints one JSON line per user (`{"user": NAME, ...summary}`), then a last line
`{"ok": true, "users": {NAME: summary, ...}}`; on a failure the last line is
`{"ok": false, "error": ...}` and the exit status 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import traceback
from typing import Any

import anyio
from mcp import types
from mcp.client.session import ClientSession
from py_client import ScenarioClient, describe, load_profile, result_text, short


class Scenario2026(ScenarioClient):
    """`ScenarioClient` plus the steps the 2025 scenario leaves out, for a `Client` session."""

    def __init__(self, args: argparse.Namespace, profile: dict[str, Any], index: int) -> None:
        super().__init__(args, profile, index)
        self.log_messages: list[types.LoggingMessageNotificationParams] = []

    def client_options(self) -> dict[str, Any]:
        options = super().client_options()
        logging = self.profile.get("logging")
        if logging:
            # 2026-07-28 delivers log messages only for requests that opt in (`_meta` logLevel)
            options["logging_callback"] = self.on_log
            options["log_level"] = logging.get("level", "debug")
        return options

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.log_messages.append(params)

    async def full(self, session: ClientSession) -> None:
        await super().full(session)
        if self.client is None:
            raise self.fail("the 2026 scenario needs the SDK's Client (--handshake auto or 2026-07-28)")
        client = self.client
        p = self.profile

        if p.get("lists"):
            self.step = "resources/list, resources/templates/list, prompts/list"
            lists = p["lists"]
            resources = [r.uri for r in (await client.list_resources()).resources]
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            prompts = [q.name for q in (await client.list_prompts()).prompts]
            for kind, listed in (("resources", resources), ("templates", templates), ("prompts", prompts)):
                missing = [x for x in lists.get(kind, []) if x not in listed]
                if missing:
                    raise self.fail(f"{kind} listing lacks {missing}: {short(json.dumps(listed))}")
            self.done("lists", resources=resources, templates=templates, prompts=prompts)

        if p.get("completion"):
            self.step = "completion/complete"
            c = p["completion"]
            result = await client.complete(
                types.PromptReference(type="ref/prompt", name=c["prompt"]),
                c["argument"],
                context_arguments=c.get("context"),
            )
            values = result.completion.values
            if c.get("expect") and c["expect"] not in values:
                raise self.fail(f"completion of {c['argument']} lacks {c['expect']!r}: {values}")
            self.done("completion", values=values)

        if p.get("logging"):
            self.step = "tools/call with log messages"
            tool = p["logging"]["tool"]
            before = len(self.log_messages)
            text = result_text(await self.call(session, tool, p["logging"].get("arguments", {})))
            during = self.log_messages[before:]
            # the tool toggles: call it again so that nothing keeps logging on this user's backend
            await self.call(session, tool, p["logging"].get("arguments", {}))
            self.done(
                "logging",
                text=short(text, 120),
                messages=[{"level": m.level, "data": m.data} for m in during],
            )

        if p.get("env"):
            self.step = "tools/call env"
            result = await self.call(session, p["env"]["tool"], p["env"].get("arguments", {}))
            env = json.loads(result_text(result))
            self.done("env", var=self.args.env_var, value=env.get(self.args.env_var))


async def run_user(args: argparse.Namespace, profile: dict[str, Any], index: int, name: str, key: str) -> dict[str, Any]:
    user_args = copy.copy(args)
    user_args.header = [*args.header, f"Authorization: Bearer {key}"]
    summary = await Scenario2026(user_args, profile, index).run()
    summary["user"] = name
    return summary


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    profile = load_profile(args.profile)
    users = [u.partition("=") for u in args.user]
    results: dict[str, Any] = {}
    errors: list[str] = []

    async def one(index: int, name: str, key: str) -> None:
        try:
            results[name] = await run_user(args, profile, index, name, key)
        except Exception as exc:  # reported with the user's name, after the others finished
            traceback.print_exc()
            errors.append(f"user {name}: {describe(exc)}")

    with anyio.fail_after(args.timeout):
        async with anyio.create_task_group() as tg:
            for index, (name, _, key) in enumerate(users):
                tg.start_soon(one, index, name, key)
    if errors:
        raise RuntimeError("; ".join(errors))
    for name, _, _ in users:
        print(json.dumps(results[name]))
    return {"ok": True, "users": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the MCP endpoint (Streamable HTTP)")
    parser.add_argument("--user", action="append", required=True, help="NAME=API_KEY (repeatable; run concurrently)")
    parser.add_argument("--env-var", required=True, help="the variable the env step reports")
    parser.add_argument("--profile", default="everything", help="as py_client.py --profile")
    parser.add_argument("--handshake", default="auto", choices=["auto", "2026-07-28"])
    parser.add_argument("--header", action="append", default=[], help="'Name: value' for every user")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    # what ScenarioClient reads from py_client.py's arguments
    args.transport = "streamable"
    args.scenario = "full"
    args.strict_session_end = False
    try:
        out = anyio.run(main_async, args)
    except BaseException as exc:  # the report's last line says why
        print(json.dumps({"ok": False, "error": describe(exc)}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
