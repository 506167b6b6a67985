#!/usr/bin/python3
"""A real gRPC server (Debian's python3-grpcio) behind ferry's terminator: service
ferry.test.Echo with raw-bytes messages (no .proto needed), one method per call shape.

  Unary         echoes the request; metadata keys starting with x-echo come back in both the
                initial and the trailing metadata; the trail ferry adds comes back as x-seen-trail
  ServerStream  request "N": N messages b"m0", b"m1", ...
  ClientStream  answers "COUNT,BYTES" of what it received
  Bidi          echoes every message, in order
  Fail          request "CODE:MESSAGE": ends with that status and message
  Sleep         request "MS": answers after that many milliseconds
  Hang          waits until the client cancels, then counts the cancellation
  Cancelled     answers how many Hang calls were cancelled so far

With --tls-cert and --tls-key it serves grpcs:// (TLS, ALPN h2) instead of h2c.
Prints "ready PORT" once serving; runs until killed.
"""
import argparse
import sys
import threading
import time
from concurrent import futures

import grpc

cancelled = 0
lock = threading.Lock()


def echo_metadata(context):
    md = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo")]
    context.send_initial_metadata(md)
    trail = dict(context.invocation_metadata()).get("x-ferry-trail", "")
    context.set_trailing_metadata(md + [("x-seen-trail", trail)])


def unary(request, context):
    echo_metadata(context)
    return request


def server_stream(request, context):
    for i in range(int(request.decode())):
        yield b"m%d" % i


def client_stream(request_iterator, context):
    count = 0
    size = 0
    for m in request_iterator:
        count += 1
        size += len(m)
    return b"%d,%d" % (count, size)


def bidi(request_iterator, context):
    for m in request_iterator:
        yield m


def fail(request, context):
    code, _, message = request.decode().partition(":")
    context.abort(grpc.StatusCode[code], message)


def sleep(request, context):
    time.sleep(int(request.decode()) / 1000.0)
    return b"slept"


def hang(request_iterator, context):
    global cancelled
    while context.is_active():
        time.sleep(0.01)
    with lock:
        cancelled += 1
    return iter(())


def cancelled_count(request, context):
    with lock:
        return b"%d" % cancelled


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (grpcs://)")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = ap.parse_args()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Hang": grpc.stream_stream_rpc_method_handler(hang),
        "Cancelled": grpc.unary_unary_rpc_method_handler(cancelled_count),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        options=[("grpc.max_receive_message_length", 8 << 20),
                 ("grpc.max_send_message_length", 8 << 20)],
        maximum_concurrent_rpcs=None,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("ferry.test.Echo",
                                                                          handlers),))
    if args.tls_cert:
        with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port("127.0.0.1:%d" % args.port, creds)
    else:
        server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("ready %d" % args.port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
