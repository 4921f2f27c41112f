"""A tiny stdio MCP server (newline-delimited JSON-RPC, no SDK: nothing between the wire and the
test) with a tool `echo_meta`, whose result is the `params._meta` object of the request it
received, as JSON text (the test reads what a backend child sees of the trace context), and a
tool `fail`, whose result is a tool error (`isError: true`)."""

import json
import sys

for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if "id" not in message or "method" not in message:
        continue
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "meta-echo", "version": "1"},
        }
    elif method == "tools/list":
        result = {
            "tools": [
                {"name": "echo_meta", "description": "echoes _meta", "inputSchema": {"type": "object"}}
            ]
        }
    elif method == "tools/call" and params.get("name") == "fail":
        result = {"content": [{"type": "text", "text": "failed"}], "isError": True}
    elif method == "tools/call":
        text = json.dumps(params.get("_meta", {}))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "Method not found"}}
        print(json.dumps(reply), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
