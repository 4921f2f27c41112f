"""Serves the files of a directory over https on loopback: a JWKS endpoint (or any document)
behind a private CA, for the `--outbound-ca` tests (tests/tests/auth/outbound_ca.rs).

    python https_files.py --dir DIR --tls-cert PEM --tls-key PEM [--port PORT]

It prints `https-files listening on https://127.0.0.1:PORT` on stderr once the socket listens
(the line the test harness waits for), and one `GET /path` line per request served.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import ssl
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"{self.command} {self.path}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.dir)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    print(f"https-files listening on https://127.0.0.1:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
