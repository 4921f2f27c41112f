"""A small MCP server on the official Python SDK (`mcp` 2.3), which speaks revision 2026-07-28
server-side (and the handshake revisions on the same endpoint): the upstream of the
pass-through tests (tests/tests/passthrough.rs).

    python py_2026_server.py [--port PORT] [--tls-cert PEM --tls-key PEM [--client-ca PEM]]

It serves Streamable HTTP at `/mcp` on 127.0.0.1 (port 0, the default, picks a free one) with:
- tool `echo(text)`: returns `echo: <text>`;
- tool `ask_name()`: asks the client for a name through elicitation (a resolver returning
  `Elicit`): at 2026-07-28 that is an `InputRequiredResult`, answered by the client's retry with
  `inputResponses` and `requestState`; at 2025-11-25 a standalone `elicitation/create`;
- tool `touch_tools()`: publishes a tools list-changed event to the `subscriptions/listen`
  streams (2026-07-28);
- resource `note://greeting`: a fixed text.

It prints `py-2026-upstream listening on http://127.0.0.1:PORT` (`https` with `--tls-cert`) on
stderr once the socket listens (the line the test harness waits for). With `--client-ca` it
requires a client certificate that CA issued (mutual TLS).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys

import uvicorn
from _mcp2026 import new_server
from mcp.server.mcpserver import Context

GREETING = "hello from the 2026 upstream"

server = new_server("py-2026-upstream", GREETING)


@server.tool()
async def touch_tools(ctx: Context) -> str:
    """Tells the subscriptions/listen streams that the tool list changed."""
    await ctx.notify_tools_changed()
    return "touched"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--client-ca", help="require a client certificate issued by this CA (PEM)")
    args = parser.parse_args()
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    tls = {}
    if args.tls_cert:
        tls = {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
        if args.client_ca:
            tls |= {"ssl_ca_certs": args.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(app, log_level="warning", **tls)
    scheme = "https" if tls else "http"
    print(f"py-2026-upstream listening on {scheme}://127.0.0.1:{port}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
