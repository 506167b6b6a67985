#!/usr/bin/python3
"""A real gRPC client (Debian's python3-grpcio) calling grpc_echo_server.py through ferry's
initiator, tunnel and terminator. Each case checks what the gRPC spec says a client sees; exit 0
when it passes, 1 with the reason otherwise. Every call has a deadline.

  --case unary          0 B, 1 KiB and 4 MiB echoed; metadata and -bin metadata round trip in
                        headers and trailers; the trail names both hops (--expect-trail)
  --case server-stream  1,000 messages from the server, in order
  --case client-stream  1,000 messages to the server, counted
  --case bidi           1,000 messages each way, in order
  --case status         the server's status and (non-ASCII) message come back as sent
  --case unimplemented  an unknown method: UNIMPLEMENTED from the server
  --case deadline       a call slower than its deadline: DEADLINE_EXCEEDED
  --case cancel         the client cancels: the server sees the cancellation
  --case concurrent     1,000 calls in flight at once on one connection, all answered
  --case unavailable    (upstream down) UNAVAILABLE
With --tls-ca the channel is grpcs:// (TLS, ALPN h2) to localhost.
"""
import argparse
import sys
import threading
import time

import grpc

SERVICE = "/ferry.test.Echo/"
TIMEOUT = 30


def fail(why):
    print("FAIL: " + why, file=sys.stderr)
    sys.exit(1)


def unary(ch, args):
    call = ch.unary_unary(SERVICE + "Unary")
    for size in (0, 1024, 4 << 20):
        payload = bytes((i * 7) & 0xFF for i in range(size)) if size < 4096 else b"\xab" * size
        md = (("x-echo-text", "hello"), ("x-echo-bin", b"\x00\xff\x10binary"))
        reply, info = call.with_call(payload, metadata=md, timeout=TIMEOUT)
        if reply != payload:
            fail("unary %d B: the reply differs (%d B back)" % (size, len(reply)))
        initial = dict(info.initial_metadata())
        trailing = dict(info.trailing_metadata())
        for where, got in (("initial", initial), ("trailing", trailing)):
            if got.get("x-echo-text") != "hello":
                fail("%s metadata lost x-echo-text: %r" % (where, got))
            if got.get("x-echo-bin") != b"\x00\xff\x10binary":
                fail("%s metadata lost x-echo-bin: %r" % (where, got))
        if args.expect_trail and trailing.get("x-seen-trail") != args.expect_trail:
            fail("trail %r, expected %r" % (trailing.get("x-seen-trail"), args.expect_trail))
    print("unary: 0 B, 1 KiB, 4 MiB echoed; metadata round trip ok")


def server_stream(ch, args):
    got = list(ch.unary_stream(SERVICE + "ServerStream")(b"1000", timeout=TIMEOUT))
    if got != [b"m%d" % i for i in range(1000)]:
        fail("server stream: %d messages, or out of order" % len(got))
    print("server-stream: 1000 messages in order")


def client_stream(ch, args):
    msgs = [b"x" * (i % 50) for i in range(1000)]
    reply = ch.stream_unary(SERVICE + "ClientStream")(iter(msgs), timeout=TIMEOUT)
    want = b"%d,%d" % (len(msgs), sum(len(m) for m in msgs))
    if reply != want:
        fail("client stream: %r, expected %r" % (reply, want))
    print("client-stream: 1000 messages counted")


def bidi(ch, args):
    msgs = [b"b%d" % i + b"." * (i % 100) for i in range(1000)]
    got = list(ch.stream_stream(SERVICE + "Bidi")(iter(msgs), timeout=TIMEOUT))
    if got != msgs:
        fail("bidi: %d messages back, or out of order" % len(got))
    print("bidi: 1000 messages each way in order")


def status(ch, args):
    try:
        ch.unary_unary(SERVICE + "Fail")("NOT_FOUND:no such lane ü 100%".encode(), timeout=TIMEOUT)
        fail("status: the call succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND or e.details() != "no such lane ü 100%":
            fail("status: %s %r" % (e.code(), e.details()))
    print("status: NOT_FOUND and its message passed back")


def unimplemented(ch, args):
    try:
        ch.unary_unary(SERVICE + "Nope")(b"", timeout=TIMEOUT)
        fail("unimplemented: the call succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            fail("unimplemented: %s %r" % (e.code(), e.details()))
    print("unimplemented: UNIMPLEMENTED passed back")


def deadline(ch, args):
    try:
        ch.unary_unary(SERVICE + "Sleep")(b"3000", timeout=0.5)
        fail("deadline: the call succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            fail("deadline: %s %r" % (e.code(), e.details()))
    # The connection serves the next call.
    if ch.unary_unary(SERVICE + "Unary")(b"after", timeout=TIMEOUT) != b"after":
        fail("deadline: the next call failed")
    print("deadline: DEADLINE_EXCEEDED")


def cancel(ch, args):
    count = ch.unary_unary(SERVICE + "Cancelled")
    before = int(count(b"", timeout=TIMEOUT))
    stop = threading.Event()

    def requests():
        yield b"first"
        stop.wait(TIMEOUT)

    call = ch.stream_stream(SERVICE + "Hang")(requests(), timeout=TIMEOUT)
    time.sleep(0.5)  # the call reached the server
    call.cancel()
    stop.set()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if int(count(b"", timeout=TIMEOUT)) > before:
            print("cancel: the server saw the cancellation")
            return
        time.sleep(0.05)
    fail("cancel: the server never saw the cancellation")


def concurrent(ch, args):
    call = ch.unary_unary(SERVICE + "Unary")
    futures = [call.future(b"c%d" % i, timeout=60) for i in range(1000)]
    for i, f in enumerate(futures):
        if f.result() != b"c%d" % i:
            fail("concurrent: call %d answered wrong" % i)
    print("concurrent: 1000 calls in flight, all answered")


def unavailable(ch, args):
    try:
        ch.unary_unary(SERVICE + "Unary")(b"x", timeout=TIMEOUT)
        fail("unavailable: the call succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            fail("unavailable: %s %r" % (e.code(), e.details()))
    print("unavailable: UNAVAILABLE")


CASES = {
    "unary": unary,
    "server-stream": server_stream,
    "client-stream": client_stream,
    "bidi": bidi,
    "status": status,
    "unimplemented": unimplemented,
    "deadline": deadline,
    "cancel": cancel,
    "concurrent": concurrent,
    "unavailable": unavailable,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--case", choices=sorted(CASES), action="append", required=True)
    ap.add_argument("--expect-trail", default="")
    ap.add_argument("--tls-ca", help="grpcs://: the CA of the listener's certificate")
    args = ap.parse_args()
    opts = [("grpc.max_receive_message_length", 8 << 20),
            ("grpc.max_send_message_length", 8 << 20)]
    target = "localhost:%d" % args.port if args.tls_ca else "127.0.0.1:%d" % args.port
    if args.tls_ca:
        creds = grpc.ssl_channel_credentials(root_certificates=open(args.tls_ca, "rb").read())
        channel = grpc.secure_channel(target, creds, options=opts)
    else:
        channel = grpc.insecure_channel(target, options=opts)
    with channel as ch:
        for case in args.case:
            CASES[case](ch, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
