"""The Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`) logs in to mcp-bastion's
authorization server and calls a tool; this script plays the browser.

Usage: python3 tests/clients/py_oauth.py --url URL [--transport streamable|sse] [--login NAME]
           [--expect-subject SUB (default NAME; a GitHub login's subject is its numeric id)]
           [--redirect-uri URI] [--cimd-cert CERT --cimd-key KEY] [--probe-url URL]
           [--whoami-env VAR] [--profile NAME]

The SDK gets the 401, reads the RFC 9728 and RFC 8414 metadata, registers (dynamic registration; or,
with --cimd-cert/--cimd-key, a Client ID Metadata Document that this script serves over https on loopback
with that certificate and key, whose URL becomes the client id), and hands its authorization URL to
the browser played here with httpx2 and a cookie jar: mcp-bastion sends it to the identity
provider (oidc-provider's development login form: any login, any password, then its consent
prompt), back to mcp-bastion's consent page (approved), and finally to the client's redirect URI,
whose code, state and iss go back to the SDK. Then: initialize and the `whoami` tool over
Streamable HTTP (or legacy SSE); a refresh (the SDK's token made to look expired) and the tool again; then the
refresh token is revoked (RFC 7009) and the last access token must be refused (401). With
--whoami-env VAR, the caller is read from variable VAR of the `get-env` tool's answer (a stdio
server-everything behind the binary, given the subject with `--principal-env VAR=subject`)
instead of a `whoami` tool. With --profile NAME (a profile of profiles.json, e.g. `everything`
for server-everything behind the binary), the first authenticated session also runs py_client.py's
full scenario of that profile (tools listed and called, progress, sampling, elicitation, a resource
read, a prompt got) after the caller check, and its steps are reported under "scenario".

Prints one JSON line: {"whoami", "client_id", "refreshed", "revoked_status", "pages", "secrets",
"scenario" (the scenario's steps, or null without --profile)}
(the code, tokens and client secret the flow produced, for the test's log check); exits 0 on success,
1 with the failing step on stderr otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from py_client import ScenarioClient, load_profile


class Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows redirects and submits the login, the provider's consent and mcp-bastion's consent."""

    def __init__(self, login: str, redirect_uri: str) -> None:
        self.login = login
        self.redirect_uri = redirect_uri
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30.0)
        self.result: AuthorizationCodeResult | None = None
        self.pages: list[str] = []

    async def visit(self, url: str) -> None:
        method, data = "GET", None
        for _ in range(30):
            if url.startswith(self.redirect_uri):
                q = parse_qs(urlparse(url).query)
                if "error" in q:
                    raise RuntimeError(f"the authorization ended with {q}")
                self.result = AuthorizationCodeResult(
                    code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0]
                )
                return
            res = await self.http.request(method, url, data=data)
            self.pages.append(f"{method} {urlparse(url).path} -> {res.status_code}")
            method, data = "GET", None
            if res.status_code in (301, 302, 303, 307, 308):
                url = urljoin(url, res.headers["location"])
                continue
            if res.status_code != 200:
                raise RuntimeError(f"{url} answered {res.status_code}: {res.text[:300]}")
            html = res.text
            action = re.search(r'<form[^>]*action="([^"]+)"', html)
            if action is None:
                raise RuntimeError(f"no form at {url}: {html[:300]}")
            url = urljoin(url, action.group(1).replace("&amp;", "&"))
            method = "POST"
            if 'name="prompt" value="login"' in html:
                data = {"prompt": "login", "login": self.login, "password": "any"}
            elif 'name="prompt" value="consent"' in html:
                data = {"prompt": "consent"}
            elif 'name="consent_id"' in html:
                hidden = dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))
                data = {**hidden, "decision": "approve"}
            else:
                raise RuntimeError(f"an unknown form at {url}: {html[:300]}")
        raise RuntimeError("too many redirects")


def serve_cimd(cert: str, key: str, redirect_uri: str) -> str:
    """Serves a Client ID Metadata Document over https on loopback; returns its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"https://127.0.0.1:{server.server_address[1]}/client.json"
    document = json.dumps(
        {
            "client_id": url,
            "client_name": "py-oauth-cimd",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            status, body = (200, document) if self.path == "/client.json" else (404, b"{}")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server.RequestHandlerClass = Handler
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url


def scenario_client(url: str, transport: str, profile: dict) -> ScenarioClient:
    """py_client.py's scenario runner for one session opened here (one client, no extra headers)."""
    options = argparse.Namespace(
        url=url,
        transport=transport,
        timeout=60.0,
        header=[],
        handshake="initialize",
        scenario="full",
        strict_session_end=False,
        calls=1,
    )
    return ScenarioClient(options, profile, 0)


async def call_whoami(
    url: str,
    transport: str,
    auth: OAuthClientProvider,
    env_var: str | None = None,
    scenario: ScenarioClient | None = None,
) -> str:
    """The caller, from `whoami` (or variable `env_var` of `get-env`); then, with `scenario`, its
    full scenario on the same session (its steps land in `scenario.summary`)."""

    async def call(read, write) -> str:
        callbacks = {}
        if scenario is not None:
            callbacks = {
                "read_timeout_seconds": scenario.args.timeout,
                "sampling_callback": scenario.on_sampling if scenario.profile.get("sampling") else None,
                "elicitation_callback": scenario.on_elicitation if scenario.profile.get("elicitation") else None,
            }
        async with ClientSession(read, write, **callbacks) as session:
            await session.initialize()
            if env_var is not None:
                result = await session.call_tool("get-env", {})
                caller = json.loads(result.content[0].text).get(env_var, "")
            else:
                result = await session.call_tool("whoami", {})
                caller = result.content[0].text
            if scenario is not None:
                scenario.done("initialize", protocolVersion=session.protocol_version)
                try:
                    await scenario.full(session)
                except Exception as e:
                    raise RuntimeError(f"scenario step {scenario.step!r}: {e!r}") from e
            return caller

    if transport == "sse":
        async with sse_client(url, timeout=30.0, auth=auth) as (read, write):
            return await call(read, write)
    async with httpx2.AsyncClient(auth=auth, timeout=30.0) as http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=True) as (read, write, *_):
            return await call(read, write)


async def main_async(args: argparse.Namespace) -> dict:
    step = "setup"
    browser = Browser(args.login, args.redirect_uri)
    storage = Memory()

    async def redirect_handler(authorization_url: str) -> None:
        await browser.visit(authorization_url)

    async def callback_handler() -> AuthorizationCodeResult:
        assert browser.result is not None
        return browser.result

    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="py-oauth-test",
            redirect_uris=[args.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope="mcp",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=args.client_metadata_url,
    )

    try:
        step = "login and whoami" + (f", then the {args.profile!r} scenario" if args.profile else "")
        scenario = scenario_client(args.url, args.transport, load_profile(args.profile)) if args.profile else None
        whoami = await call_whoami(args.url, args.transport, provider, args.whoami_env, scenario)
        expected = args.expect_subject or args.login
        if whoami != expected:
            raise RuntimeError(f"whoami answered {whoami!r}, not {expected!r}")
        first = storage.tokens
        step = "refresh"
        provider.context.token_expiry_time = time.time() - 1
        again = await call_whoami(args.url, args.transport, provider, args.whoami_env)
        second = storage.tokens
        refreshed = (
            first is not None
            and second is not None
            and second.access_token != first.access_token
            and second.refresh_token != first.refresh_token
        )
        if again != expected or not refreshed:
            raise RuntimeError("the refresh did not bring new tokens")
        step = "revoke"
        meta = provider.context.oauth_metadata
        client = storage.client
        form = {"token": second.refresh_token, "client_id": client.client_id}
        if client.client_secret:
            form["client_secret"] = client.client_secret
        async with httpx2.AsyncClient(timeout=30.0) as http:
            res = await http.post(str(meta.revocation_endpoint), data=form)
            if res.status_code != 200:
                raise RuntimeError(f"revocation answered {res.status_code}")
            probe = await http.post(
                args.probe_url or args.url,
                headers={
                    "authorization": f"Bearer {second.access_token}",
                    "accept": "application/json, text/event-stream",
                    "content-type": "application/json",
                },
                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            )
        return {
            "whoami": whoami,
            "client_id": client.client_id,
            "metadata_document": args.client_metadata_url is not None and client.client_id == args.client_metadata_url,
            "refreshed": refreshed,
            "revoked_status": probe.status_code,
            "scenario": scenario.summary["steps"] if scenario is not None else None,
            "pages": browser.pages,
            # for the test's check that none of them reached the server's logs
            "secrets": [
                s
                for s in (
                    browser.result.code if browser.result else None,
                    first.access_token,
                    first.refresh_token,
                    second.access_token,
                    second.refresh_token,
                    client.client_secret,
                )
                if s
            ],
        }
    except Exception as e:  # noqa: BLE001 - the step and the cause are the report
        raise RuntimeError(f"step {step!r} failed: {e!r}; browser: {browser.pages}") from e


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--login", default="alice")
    parser.add_argument("--expect-subject", help="the subject whoami must answer (default --login)")
    parser.add_argument("--redirect-uri", default="http://127.0.0.1:53682/callback")
    parser.add_argument("--transport", choices=["streamable", "sse"], default="streamable")
    parser.add_argument("--probe-url", help="where the revoked token is tried (default --url)")
    parser.add_argument("--cimd-cert")
    parser.add_argument("--cimd-key")
    parser.add_argument("--whoami-env", help="read the caller from this variable of `get-env`")
    parser.add_argument("--profile", help="after the caller check, run py_client.py's full scenario of this profile")
    args = parser.parse_args()
    args.client_metadata_url = (
        serve_cimd(args.cimd_cert, args.cimd_key, args.redirect_uri) if args.cimd_cert else None
    )
    try:
        report = anyio.run(main_async, args)
    except Exception as e:  # noqa: BLE001
        print(f"py_oauth: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
