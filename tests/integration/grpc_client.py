#!/usr/bin/python3
"""A real gRPC client (Debian's python3-grpcio) for ferry's end-to-end tests.

Calls the lane7 service (proto/lane7.proto, compiled with protoc into a temporary directory)
through a ferry initiator's grpc:// listener and checks every answer: payloads, trails, status
codes. Exits 0 when every check passed, 1 with the reason on stderr otherwise.

  grpc_client.py --port P --proto-dir DIR
      --case send|stream|unknown-method|oversize|deadline|concurrent
"""
import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import threading

import grpc


def load_lane7(proto_dir):
    out = tempfile.mkdtemp(prefix="lane7-")
    subprocess.run(["protoc", "--python_out=" + out, "-I", proto_dir,
                    os.path.join(proto_dir, "lane7.proto")], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("lane7_pb2")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check_trail(result, expect):
    trail = list(result.trail)
    if expect and trail != expect:
        fail("trail %r, expected %r" % (trail, expect))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--expect-trail", default="")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    lane7 = load_lane7(args.proto_dir)
    expect = [t.strip() for t in args.expect_trail.split(",") if t.strip()]
    # The client's own limits are raised so that ferry's are what is tested.
    channel = grpc.insecure_channel("127.0.0.1:%d" % args.port, options=[
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20)])
    grpc.channel_ready_future(channel).result(timeout=args.timeout)
    send = channel.unary_unary("/ferry.lane7.Lane7/Send",
                               request_serializer=lane7.Message.SerializeToString,
                               response_deserializer=lane7.Result.FromString)
    stream = channel.stream_stream("/ferry.lane7.Lane7/Stream",
                                   request_serializer=lane7.Message.SerializeToString,
                                   response_deserializer=lane7.Result.FromString)

    if args.case == "send":
        for size in (0, 1, 100, 16384, 65536, 1 << 20, (4 << 20) - 64):
            payload = bytes((i * 7 + size) & 0xff for i in range(size))
            r, call = send.with_call(lane7.Message(payload=payload), timeout=args.timeout,
                                     metadata=[("x-routing-key", "k1"),
                                               ("x-trace-bin", b"\x00\x01\xfe\xff")])
            if r.payload != payload:
                fail("send %d bytes: payload differs (%d back)" % (size, len(r.payload)))
            check_trail(r, expect)
            if call.code() != grpc.StatusCode.OK:
                fail("send: status %s" % call.code())
        print("send: 7 sizes up to 4 MiB echoed with their trail")
    elif args.case == "stream":
        msgs = [lane7.Message(payload=("m%d" % i).encode()) for i in range(args.count)]
        got = 0
        for i, r in enumerate(stream(iter(msgs), timeout=args.timeout)):
            if r.payload != ("m%d" % i).encode():
                fail("stream: result %d is %r" % (i, r.payload))
            check_trail(r, expect)
            got += 1
        if got != args.count:
            fail("stream: %d results for %d messages" % (got, args.count))
        print("stream: %d messages each way, in order" % got)
    elif args.case == "concurrent":
        # --count unary calls in flight at once on one channel (one HTTP/2 connection): each
        # answer must be its own call's payload.
        futures = []
        for i in range(args.count):
            payload = ("c%d-" % i).encode() + bytes((i + j) & 0xff for j in range(i % 97))
            futures.append((payload, send.future(lane7.Message(payload=payload),
                                                 timeout=args.timeout)))
        for i, (payload, f) in enumerate(futures):
            try:
                r = f.result()
            except grpc.RpcError as e:
                fail("concurrent call %d: %s %s" % (i, e.code(), e.details()))
            if r.payload != payload:
                fail("concurrent call %d: payload %r, expected %r" % (i, r.payload, payload))
            check_trail(r, expect)
        print("concurrent: %d unary calls at once, each answered with its own payload"
              % len(futures))
    elif args.case == "unknown-method":
        other = channel.unary_unary("/no.such.Service/Method")
        try:
            other(b"", timeout=args.timeout)
            fail("an unknown method succeeded")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                fail("unknown method: %s %s" % (e.code(), e.details()))
        print("unknown method: UNIMPLEMENTED")
    elif args.case == "oversize":
        try:
            send(lane7.Message(payload=b"x" * (5 << 20)), timeout=args.timeout)
            fail("a 5 MiB message over the 4 MiB limit succeeded")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                fail("oversize: %s %s" % (e.code(), e.details()))
        # The connection carries on.
        r = send(lane7.Message(payload=b"after"), timeout=args.timeout)
        if r.payload != b"after":
            fail("after oversize: %r" % r.payload)
        print("oversize: RESOURCE_EXHAUSTED, and the next call works")
    elif args.case == "deadline":
        # A stream that sends nothing keeps the sink waiting: the gateway ends it at the
        # deadline with DEADLINE_EXCEEDED.
        stop = threading.Event()

        def never():
            stop.wait(args.timeout)
            return
            yield  # pylint: disable=unreachable

        try:
            for _ in stream(never(), timeout=0.5):
                pass
            fail("the call outlived its deadline")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                fail("deadline: %s %s" % (e.code(), e.details()))
        finally:
            stop.set()  # the request thread ends now, not after --timeout
        print("deadline: DEADLINE_EXCEEDED")
    else:
        fail("unknown case " + args.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
