#!/usr/bin/python3
"""The demo's clients in cluster A: a WebSocket client (python3-websockets) and a gRPC client
(python3-grpcio) talking through the ferry initiator to cluster B's built-in sink.

Each sends --count messages one at a time (each waits for its answer, so each answer's time is
one round trip through both ferries and the WAN), checks every answer (the same payload back,
the trail naming --expect-trail), then the gRPC client runs one bidirectional lane7 Stream with
--count messages in flight at once and checks that every result came back, intact and in order.
Prints one line per client with p50/p99 latency and how far they sit above --floor-ms (the WAN's
round trip), and exits 0 only when every message arrived intact.

  demo_clients.py --ws ws://127.0.0.1:9001/ --grpc 127.0.0.1:9002 --count 200 \\
      --expect-trail ferry-a-0,ferry-b-0 --floor-ms 40
"""
import argparse
import asyncio
import json
import os
import sys
import time


def percentile(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]


def latency_line(name, ms, floor):
    ms = sorted(ms)
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    return ("%-9s %d messages, latency p50 %.1f ms, p99 %.1f ms; above the %.0f ms round-trip "
            "floor: p50 +%.1f ms, p99 +%.1f ms" % (name, len(ms), p50, p99, floor, p50 - floor,
                                                   p99 - floor))


# lane7 (proto/lane7.proto) is three fields; encoding them here keeps the demo free of protoc.
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_message(payload):
    return b"\x0a" + varint(len(payload)) + payload


def read_varint(data, i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def decode_result(data):
    payload, trail, shard, i = b"", [], 0, 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wire = key >> 3, key & 7
        value, i = read_varint(data, i)
        if wire == 2:
            chunk, i = data[i:i + value], i + value
            if field == 1:
                payload = chunk
            elif field == 2:
                trail.append(chunk.decode())
        elif wire == 0 and field == 3:
            shard = value
    return payload, trail, shard


def run_ws(url, count, expect, timeout):
    import websockets.client as wsc

    async def go():
        times, first = [], None
        async with wsc.connect(url, open_timeout=timeout, close_timeout=5,
                               max_size=1 << 24) as ws:
            for seq in range(count):
                text = "ws message %d from cluster A %s" % (seq, os.urandom(8).hex())
                t0 = time.perf_counter()
                await ws.send(text)
                reply = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                times.append((time.perf_counter() - t0) * 1000)
                if reply.get("message") != text:
                    raise SystemExit("websocket: message %d came back as %r" % (seq, reply))
                if expect and reply.get("trail") != expect:
                    raise SystemExit("websocket: trail %r, expected %r" % (reply.get("trail"),
                                                                          expect))
                first = first or reply
        return times, first

    return asyncio.run(go())


def run_grpc(target, count, expect, timeout):
    import grpc

    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    send = channel.unary_unary("/ferry.lane7.Lane7/Send")
    times, first = [], None
    for seq in range(count):
        payload = b"grpc message %d from cluster A %s" % (seq, os.urandom(8).hex().encode())
        t0 = time.perf_counter()
        got, trail, shard = decode_result(send(encode_message(payload), timeout=timeout))
        times.append((time.perf_counter() - t0) * 1000)
        if got != payload:
            raise SystemExit("grpc: message %d came back as %r" % (seq, got))
        if expect and trail != expect:
            raise SystemExit("grpc: trail %r, expected %r" % (trail, expect))
        first = first or {"payload": got.decode(errors="replace"), "trail": trail, "shard": shard}
    # A bidi Stream with every message in flight at once: all results, intact and in order.
    stream = channel.stream_stream("/ferry.lane7.Lane7/Stream")
    sent = [b"stream message %d " % seq + os.urandom(32) for seq in range(count)]
    got = [decode_result(r)[0] for r in stream(iter(encode_message(p) for p in sent),
                                               timeout=timeout * 4)]
    if got != sent:
        lost = sum(1 for a, b in zip(sent, got) if a != b) + abs(len(sent) - len(got))
        raise SystemExit("grpc: the bidi stream returned %d of %d results, %d not as sent" %
                         (len(got), len(sent), lost))
    channel.close()
    return times, first


def link_rtt(host, port, tries=20):
    """The WAN's own round trip: a TCP connect to a port where nothing listens in cluster B is
    refused after exactly one round trip (SYN out, RST back), touching no ferry."""
    import socket
    times = []
    for _ in range(tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        t0 = time.perf_counter()
        try:
            s.connect((host, port))
        except (ConnectionRefusedError, socket.timeout):
            pass
        finally:
            s.close()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws", help="WebSocket URL of the initiator's ws:// listener")
    ap.add_argument("--grpc", help="HOST:PORT of the initiator's grpc:// listener")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--expect-trail", default="")
    ap.add_argument("--floor-ms", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--link", help="HOST:PORT in cluster B where nothing listens, to time the "
                    "WAN's own round trip")
    args = ap.parse_args()
    expect = [t for t in args.expect_trail.split(",") if t]
    lines = []
    if args.link:
        host, port = args.link.rsplit(":", 1)
        rtt = link_rtt(host, int(port))
        lines.append("link      TCP round trip (connect refused, %d tries) p50 %.1f ms, p99 %.1f ms" %
                     (len(rtt), percentile(rtt, 50), percentile(rtt, 99)))
    if args.ws:
        times, first = run_ws(args.ws, args.count, expect, args.timeout)
        print("websocket reply: %s" % json.dumps(first))
        lines.append(latency_line("websocket", times, args.floor_ms))
    if args.grpc:
        times, first = run_grpc(args.grpc, args.count, expect, args.timeout)
        print("grpc result:     %s" % json.dumps(first))
        print("grpc bidi Stream: %d messages in flight at once, all back intact and in order" %
              args.count)
        lines.append(latency_line("grpc", times, args.floor_ms))
    for line in lines:
        print(line)
    total = args.count * ((1 if args.ws else 0) + (2 if args.grpc else 0))
    print("all %d messages arrived intact, trails %s" % (total, " -> ".join(expect) or "-"))


if __name__ == "__main__":
    main()
