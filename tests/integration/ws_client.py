#!/usr/bin/python3
"""A WebSocket client for ferry's end-to-end tests (Debian's python3-websockets).

Connects to a ws:// URL that ferry's initiator serves, sends text and binary messages of the
given sizes, checks each JSON reply of the terminator's built-in sink (message, binary flag,
trail) or, with --echo, each exact echo of a WebSocket server behind a ws:// upstream, then closes with a code and checks the close code it gets back. Exits 0 when everything
matched, else non-zero with one line saying what did not. Bounded by --timeout.
"""

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys

import websockets


def fail(what):
    print("ws_client: FAIL: " + what, flush=True)
    sys.exit(1)


def text_of_size(size):
    # Two-byte characters, so UTF-8 sequences straddle every frame and buffer boundary.
    return "\u00e9" * (size // 2) + "a" * (size % 2)


async def pipelined(ws, args, sizes, trail):
    # The messages go out as fast as the tunnel takes them while nothing is read for a while:
    # the replies back up through the tunnel to the sink, whose held credit stops the initiator
    # from reading this client (backpressure). Then the replies are read, which lets the rest of
    # the sends through. (A client that read nothing until every send finished would deadlock
    # against any bounded proxy once the sockets' buffers are full.)
    texts = [("%06d" % i) + text_of_size(size) for i in range(args.pipeline) for size in sizes]

    async def send_all():
        for text in texts:
            await ws.send(text)

    sender = asyncio.create_task(send_all())
    await asyncio.sleep(args.read_delay)
    for text in texts:
        reply = json.loads(await asyncio.wait_for(ws.recv(), args.timeout))
        if reply.get("message") != text or reply.get("trail") != trail:
            fail("pipelined reply out of order or different (expected message %s...)" % text[:6])
    await asyncio.wait_for(sender, args.timeout)


async def run_echo(args, sizes):
    # Against a real WebSocket server behind ferry (ws_echo_server.py): every message comes back
    # exactly, with its type; "whoami" names the path the server saw and the trail header.
    subprotocols = [p for p in args.subprotocols.split(",") if p != ""] or None
    async with websockets.connect(
        args.url,
        max_size=None,
        open_timeout=args.timeout,
        close_timeout=args.timeout,
        ping_interval=None,
        subprotocols=subprotocols,
    ) as ws:
        if subprotocols and ws.subprotocol != subprotocols[0]:
            fail("subprotocol %r, expected %r" % (ws.subprotocol, subprotocols[0]))
        for binary in (False, True):
            for size in sizes:
                sent = os.urandom(size) if binary else text_of_size(size)
                await ws.send(sent)
                got = await asyncio.wait_for(ws.recv(), args.timeout)
                if type(got) is not type(sent):
                    fail("%d-byte %s message came back as %s"
                         % (size, "binary" if binary else "text", type(got).__name__))
                if got != sent:
                    fail("%d-byte %s message came back different (%d bytes)"
                         % (size, "binary" if binary else "text", len(got)))
        await ws.send("whoami")
        who = json.loads(await asyncio.wait_for(ws.recv(), args.timeout))
        if args.expect_path and who.get("path") != args.expect_path:
            fail("the upstream saw path %r, expected %r" % (who.get("path"), args.expect_path))
        if args.expect_trail and who.get("trail") != args.expect_trail:
            fail("the upstream saw trail %r, expected %r" % (who.get("trail"), args.expect_trail))
        await ws.close(code=args.close_code, reason="bye")
        if ws.close_code != args.close_code:
            fail("close code %r back, expected %d" % (ws.close_code, args.close_code))
    print("ws_client: ok (%d echoes)" % (2 * len(sizes)), flush=True)


def tls_context(args):
    # wss://: the server must prove the name in the URL with a certificate from --ca; ALPN
    # offers HTTP/1.1 as browsers do.
    if not args.url.startswith("wss://"):
        return None
    ctx = ssl.create_default_context(cafile=args.ca or None)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def check_tls(ws, args):
    if not args.url.startswith("wss://"):
        return
    tls = ws.transport.get_extra_info("ssl_object")
    if tls is None or tls.version() != "TLSv1.3":
        fail("not TLS 1.3: %r" % (tls.version() if tls else None))
    if tls.selected_alpn_protocol() != "http/1.1":
        fail("ALPN %r, expected http/1.1" % tls.selected_alpn_protocol())


async def run(args):
    sizes = [int(s) for s in args.sizes.split(",") if s != ""]
    if args.echo:
        await run_echo(args, sizes)
        return
    trail = args.trail.split(",")
    async with websockets.connect(
        args.url,
        max_size=None,
        open_timeout=args.timeout,
        close_timeout=args.timeout,
        ping_interval=None,
        ssl=tls_context(args),
    ) as ws:
        check_tls(ws, args)
        if args.pipeline > 0:
            await pipelined(ws, args, sizes, trail)
        for binary in (False, True):
            for size in sizes:
                sent = os.urandom(size) if binary else text_of_size(size)
                await ws.send(sent)
                raw = await asyncio.wait_for(ws.recv(), args.timeout)
                if not isinstance(raw, str):
                    fail("reply to a %d-byte %s message is not a text message"
                         % (size, "binary" if binary else "text"))
                reply = json.loads(raw)
                got = reply.get("message")
                if binary:
                    got = base64.b64decode(got)
                if got != sent:
                    fail("%d-byte %s message came back different (%d bytes)"
                         % (size, "binary" if binary else "text", len(got)))
                if reply.get("binary") is not binary:
                    fail("binary flag %r for a %s message" % (reply.get("binary"), binary))
                if reply.get("trail") != trail:
                    fail("trail %r, expected %r" % (reply.get("trail"), trail))
                if not isinstance(reply.get("shard"), int):
                    fail("no shard index in %r" % raw[:200])
        await ws.close(code=args.close_code, reason="bye")
        if ws.close_code != args.close_code:
            fail("close code %r back, expected %d" % (ws.close_code, args.close_code))
    print("ws_client: ok (%d messages)" % ((2 + args.pipeline) * len(sizes)), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ca", default="", help="wss://: the CA file the server's certificate chains to")
    p.add_argument("--sizes", default="0,125,126,65536,1048576")
    p.add_argument("--trail", default="cluster-a-0,cluster-b-0")
    p.add_argument("--close-code", type=int, default=4001)
    p.add_argument("--pipeline", type=int, default=0,
                   help="first send this many rounds of messages before reading any reply")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--read-delay", type=float, default=3.0,
                   help="with --pipeline: seconds of sending before the first reply is read")
    p.add_argument("--echo", action="store_true",
                   help="expect exact echoes from a WebSocket server, not the sink's JSON")
    p.add_argument("--subprotocols", default="",
                   help="--echo: offer these (comma-separated); the first must be chosen")
    p.add_argument("--expect-path", default="",
                   help="--echo: the request path and query the upstream must have seen")
    p.add_argument("--expect-trail", default="",
                   help="--echo: the X-Ferry-Trail header the upstream must have seen")
    args = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), 3 * args.timeout))
    except (asyncio.TimeoutError, OSError, websockets.exceptions.WebSocketException) as e:
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
