#!/usr/bin/env python3
"""Sends a POST with a large body the way Python clients do, and reports what came back.

Usage: python3 tests/clients/early_answer.py --url http://127.0.0.1:8080/mcp [--bytes 5242880]

Two clients: the standard library's `urllib`, and `httpx2` (the httpx the official SDK uses).
Prints one JSON line: {"urllib": {"status", "body", "www_authenticate"} | {"error"},
"httpx": {...}}. An answer the server sent before reading the body shows as its status; a reset
connection or a broken pipe as an "error".
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

import httpx2

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def body(size: int) -> bytes:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "x" * size}}}
    return json.dumps(message).encode()


def with_urllib(url: str, data: bytes) -> dict:
    request = urllib.request.Request(url, data=data, headers=HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return {"status": response.status, "body": response.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(errors="replace"),
                "www_authenticate": e.headers.get("www-authenticate")}
    except Exception as e:  # noqa: BLE001 - the failure is what we report
        return {"error": f"{type(e).__name__}: {e}"}


def with_httpx(url: str, data: bytes) -> dict:
    try:
        response = httpx2.post(url, content=data, headers=HEADERS, timeout=30)
        return {"status": response.status_code, "body": response.text,
                "www_authenticate": response.headers.get("www-authenticate")}
    except Exception as e:  # noqa: BLE001 - the failure is what we report
        return {"error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bytes", type=int, default=5 * 1024 * 1024)
    args = parser.parse_args()
    data = body(args.bytes)
    print(json.dumps({"urllib": with_urllib(args.url, data), "httpx": with_httpx(args.url, data)}))
