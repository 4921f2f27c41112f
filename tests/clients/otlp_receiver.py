"""A real OTLP/HTTP trace receiver for the tests: decodes what arrives at POST /v1/traces with the
official `opentelemetry-proto` package (ExportTraceServiceRequest, protobuf) and appends every span
as one JSON line to the file named by argv[1]:

    {"service": ..., "trace_id": hex, "span_id": hex, "parent_span_id": hex or "",
     "name": ..., "kind": "SERVER" | "CLIENT" | ..., "status": "OK" | "ERROR" | "UNSET",
     "attributes": {key: value}, "events": [{"name": ..., "attributes": {key: value}}]}

Listens on 127.0.0.1:0 and prints `otlp receiver listening on http://127.0.0.1:PORT` on stderr.
With `--grpc` after the file it is an OTLP/gRPC receiver instead (the TraceService of the same
package, served with `grpcio`). With `--tls CERT KEY` (PEM files) it serves TLS, either protocol,
and prints an `https://` URL; `--client-ca CA` then also requires a client certificate issued by
that CA (mTLS).
"""

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

OUT = sys.argv[1]
LOCK = threading.Lock()


def option(name, count):
    """The `count` values after `name` on the command line, or None."""
    args = sys.argv[2:]
    if name not in args:
        return None
    at = args.index(name)
    return args[at + 1 : at + 1 + count]


TLS = option("--tls", 2)
CLIENT_CA = option("--client-ca", 1)
SCHEME = "https" if TLS else "http"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def record(request):
    lines = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                lines.append(
                    json.dumps(
                        {
                            "service": resource.get("service.name"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            "status": Status.StatusCode.Name(span.status.code).removeprefix(
                                "STATUS_CODE_"
                            ),
                            "attributes": attributes(span.attributes),
                            "events": [
                                {"name": e.name, "attributes": attributes(e.attributes)}
                                for e in span.events
                            ],
                        }
                    )
                )
    with LOCK, open(OUT, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces" or "protobuf" not in self.headers.get("Content-Type", ""):
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        record(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def serve_grpc():
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            record(request)
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    if TLS:
        credentials = grpc.ssl_server_credentials(
            [(read(TLS[1]), read(TLS[0]))],
            root_certificates=read(CLIENT_CA[0]) if CLIENT_CA else None,
            require_client_auth=bool(CLIENT_CA),
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(
        f"otlp receiver (grpc) listening on {SCHEME}://127.0.0.1:{port}", file=sys.stderr, flush=True
    )
    server.wait_for_termination()


if "--grpc" in sys.argv[2:]:
    serve_grpc()
else:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if TLS:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS[0], TLS[1])
        if CLIENT_CA:
            context.load_verify_locations(CLIENT_CA[0])
            context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(
        f"otlp receiver listening on {SCHEME}://127.0.0.1:{server.server_port}", file=sys.stderr, flush=True
    )
    server.serve_forever()
