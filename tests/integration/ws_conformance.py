#!/usr/bin/python3
"""A raw-frame RFC 6455 conformance client for ferry's WebSocket server (the initiator's ws://).

In the spirit of the Autobahn testsuite, cases 1-7 and 9 (numbered after Autobahn where they
map; X.n are extra cases): every case opens its own connection, performs the handshake itself,
sends hand-built frames (masked with random keys unless a case says otherwise), and checks the
answer against what RFC 6455 requires. The terminator's built-in sink answers each message with
one JSON Text message {"message", "binary", "trail", "shard"} (binary payloads in base64) and a
Close with the same Close.

Standard library only, so that any byte string can be sent, invalid ones included. Prints one
line per case, PASS/FAIL (or XFAIL for a known ferry bug listed in KNOWN_BUGS), and exits
non-zero if any case failed.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Cases that fail because of a known ferry bug: id -> (what its failure message contains, the
# bug). Such a failure prints XFAIL and does not fail the run; any other failure of the case is a
# FAIL, and a pass prints XPASS (remove the entry then).
KNOWN_BUGS = {}


class Fail(Exception):
    pass


class Eof(Exception):
    pass


# ---- frames ------------------------------------------------------------------------------------


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None):
    """The bytes of one client frame. `length` overrides the announced payload length."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n <= 125:
        head = struct.pack("!BB", b0, mbit | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + masked(payload, key)


def masked(payload, key):
    if not payload:
        return b""
    # XOR with the key repeated, as one big integer: fast for multi-MiB payloads.
    k = (key * (len(payload) // 4 + 1))[: len(payload)]
    x = int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")
    return x.to_bytes(len(payload), "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        p = self.payload[:40]
        return "Frame(op=%#x fin=%d len=%d %r%s)" % (
            self.opcode, self.fin, len(self.payload), p, "..." if len(self.payload) > 40 else "")


# ---- connection --------------------------------------------------------------------------------


class Conn:
    tls = None  # an ssl.SSLContext when the cases run over wss://

    def __init__(self, host, port, timeout):
        self.deadline = time.monotonic() + timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if Conn.tls is not None:
            self.sock = Conn.tls.wrap_socket(self.sock, server_hostname=host)
        self.buf = bytearray()
        self.partial = None  # (opcode, bytearray) of a fragmented server message
        self.handshake(host, port)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def extend(self, seconds):
        self.deadline = max(self.deadline, time.monotonic() + seconds)

    def _recv_some(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("case deadline")
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 20)
        if not data:
            raise Eof()
        self.buf += data

    def handshake(self, host, port):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, port, key))
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            try:
                self._recv_some()
            except Eof:
                raise Fail("connection closed during the handshake: %r" % bytes(self.buf))
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end]
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise Fail("handshake answer %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise Fail("Sec-WebSocket-Accept %r, expected %r"
                       % (headers.get("sec-websocket-accept"), want))
        if headers.get("upgrade", "").lower() != "websocket":
            raise Fail("Upgrade header %r" % headers.get("upgrade"))
        if "upgrade" not in headers.get("connection", "").lower():
            raise Fail("Connection header %r" % headers.get("connection"))

    def send(self, data):
        self.sock.sendall(data)

    def send_chopped(self, data, chop=1, pause=0.0):
        """Sends `data` in writes of `chop` bytes (TCP_NODELAY: separate segments)."""
        for i in range(0, len(data), chop):
            self.sock.sendall(data[i:i + chop])
            if pause:
                time.sleep(pause)

    def send_tolerant(self, data):
        """Sends, ignoring a reset: ferry may rightly have failed the connection already."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def recv_frame(self):
        """The next server frame, checked for what a server frame must be (RFC 6455 §5)."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n = b1 & 0x7F
                hl = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
                if len(self.buf) >= hl:
                    if n == 126:
                        n = struct.unpack("!H", self.buf[2:4])[0]
                    elif n == 127:
                        n = struct.unpack("!Q", self.buf[2:10])[0]
                    if len(self.buf) >= hl + n:
                        payload = bytes(self.buf[hl:hl + n])
                        del self.buf[:hl + n]
                        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)
                        if b1 & 0x80:
                            raise Fail("the server sent a masked frame: %r" % f)
                        if f.rsv:
                            raise Fail("the server sent RSV bits %d: %r" % (f.rsv, f))
                        if f.opcode not in (0, 1, 2, 8, 9, 10):
                            raise Fail("the server sent a reserved opcode: %r" % f)
                        if f.opcode >= 8 and (not f.fin or n > 125):
                            raise Fail("the server sent a bad control frame: %r" % f)
                        return f
            self._recv_some()

    def next_event(self):
        """A control frame, or a whole data message: (opcode, payload)."""
        while True:
            f = self.recv_frame()
            if f.opcode >= 8:
                return f.opcode, f.payload
            if f.opcode == OP_CONT:
                if self.partial is None:
                    raise Fail("the server sent a continuation with no message open")
                self.partial[1].extend(f.payload)
            else:
                if self.partial is not None:
                    raise Fail("the server started a message inside another")
                self.partial = (f.opcode, bytearray(f.payload))
            if f.fin:
                op, data = self.partial
                self.partial = None
                return op, bytes(data)

    def expect_eof(self, what="after the closing handshake"):
        """Ferry must end the TCP connection: EOF (or a reset) with no more bytes."""
        try:
            while True:
                self._recv_some()
                if self.buf:
                    raise Fail("bytes after the Close frame %s: %r" % (what, bytes(self.buf[:40])))
        except Eof:
            return
        except ConnectionResetError:
            return
        except socket.timeout:
            raise Fail("the TCP connection stayed open %s" % what)


# ---- checks ------------------------------------------------------------------------------------


def describe(ev):
    op, payload = ev
    name = {1: "Text", 2: "Binary", 8: "Close", 9: "Ping", 10: "Pong"}.get(op, hex(op))
    if op == OP_CLOSE and len(payload) >= 2:
        return "Close %d %r" % (struct.unpack("!H", payload[:2])[0], payload[2:40])
    return "%s(%d bytes %r%s)" % (name, len(payload), payload[:60], "..." if len(payload) > 60 else "")


def expect_reply(c, sent, binary):
    """The next event must be the sink's JSON answer to `sent`."""
    op, payload = c.next_event()
    if op != OP_TEXT:
        raise Fail("expected the sink's reply to a %d-byte message, got %s"
                   % (len(sent), describe((op, payload))))
    try:
        reply = json.loads(payload.decode("utf-8"))
    except ValueError as e:
        raise Fail("reply is not JSON (%s): %r" % (e, payload[:80]))
    got = reply.get("message")
    if binary:
        got = base64.b64decode(got)
        want = sent
    else:
        want = sent.decode("utf-8") if isinstance(sent, bytes) else sent
    if got != want:
        raise Fail("reply message differs: sent %d bytes %r..., got %d %r..."
                   % (len(want), want[:30], len(got), got[:30]))
    if reply.get("binary") is not binary:
        raise Fail("reply says binary=%r for a %s message"
                   % (reply.get("binary"), "binary" if binary else "text"))


def expect_pong(c, payload):
    ev = c.next_event()
    if ev != (OP_PONG, payload):
        raise Fail("expected Pong %r, got %s" % (payload[:30], describe(ev)))


def check_close_payload(payload):
    if len(payload) == 1:
        raise Fail("the server's Close has a 1-byte payload")
    if len(payload) >= 2:
        code = struct.unpack("!H", payload[:2])[0]
        if not valid_code(code):
            raise Fail("the server sent Close code %d, not valid on the wire" % code)
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise Fail("the server's Close reason is not UTF-8: %r" % payload[2:])


def valid_code(code):
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or \
        3000 <= code <= 4999


def expect_close(c, codes, allow=(), what="close"):
    """Reads to the server's Close: its code must be in `codes` (None: an empty Close). Events
    before it must match `allow`: a list of predicates, each used at most once, in order.
    Then ferry must end the TCP connection. Returns the Close payload."""
    allow = list(allow)
    while True:
        try:
            ev = c.next_event()
        except Eof:
            raise Fail("TCP closed without a Close frame, expected %s %s" % (what, codes))
        except ConnectionResetError:
            raise Fail("connection reset without a Close frame, expected %s %s" % (what, codes))
        except socket.timeout:
            raise Fail("no Close frame in time, expected %s %s" % (what, codes))
        op, payload = ev
        if op == OP_CLOSE:
            break
        if allow and allow[0](ev):
            allow.pop(0)
            continue
        raise Fail("expected Close %s, got %s first" % (codes, describe(ev)))
    check_close_payload(payload)
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    if code not in codes:
        raise Fail("Close code %s, expected %s" % (code, " or ".join(str(x) for x in codes)))
    c.expect_eof()
    return payload


def is_reply(sent, binary):
    def pred(ev):
        op, payload = ev
        if op != OP_TEXT:
            return False
        try:
            r = json.loads(payload.decode("utf-8"))
        except ValueError:
            return False
        got = base64.b64decode(r.get("message", "")) if binary else r.get("message")
        want = sent if binary else sent.decode("utf-8")
        return got == want
    return pred


def is_pong(payload):
    return lambda ev: ev == (OP_PONG, payload)


def expect_silence(c, seconds=0.3):
    """Nothing may come in `seconds` (an unsolicited Pong needs no answer)."""
    c.sock.settimeout(seconds)
    try:
        data = c.sock.recv(65536)
    except socket.timeout:
        return
    raise Fail("expected nothing, got %r" % data[:60] if data else "expected nothing, got EOF")


def clean_close(c, code=1000):
    """The client ends the case: its Close is echoed and ferry ends the TCP connection."""
    c.send(frame(OP_CLOSE, close_payload(code, "")))
    expect_close(c, [code])


def roundtrip(c, payload, binary):
    c.send(frame(OP_BINARY if binary else OP_TEXT, payload))
    expect_reply(c, payload, binary)


# ---- cases ---------------------------------------------------------------------------------

CASES = []  # (id, title, function, timeout seconds, which port)


def case(cid, title, timeout=5.0, port="main"):
    def reg(fn):
        CASES.append((cid, title, fn, timeout, port))
        return fn
    return reg


def add(cid, title, fn, timeout=5.0, port="main"):
    CASES.append((cid, title, fn, timeout, port))


# 1.x framing: 7-bit, 16-bit and 64-bit lengths; text and binary.
LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]
for i, n in enumerate(LENGTHS):
    def text_case(c, n=n):
        roundtrip(c, b"*" * n, False)
        clean_close(c)

    def binary_case(c, n=n):
        roundtrip(c, bytes([0xFE]) * n if n % 2 else os.urandom(n), True)
        clean_close(c)
    add("1.1.%d" % (i + 1), "text message of %d bytes" % n, text_case)
    add("1.2.%d" % (i + 1), "binary message of %d bytes" % n, binary_case)


@case("1.1.8", "text message of 65536 bytes, sent in 997-byte writes")
def _(c):
    payload = b"*" * 65536
    c.send_chopped(frame(OP_TEXT, payload), 997)
    expect_reply(c, payload, False)
    clean_close(c)


@case("1.2.8", "binary message of 65536 bytes, sent in 997-byte writes")
def _(c):
    payload = os.urandom(65536)
    c.send_chopped(frame(OP_BINARY, payload), 997)
    expect_reply(c, payload, True)
    clean_close(c)


@case("X.1", "a text message with a 16-bit length announcing 5 bytes (non-minimal) is taken")
def _(c):
    key = os.urandom(4)
    c.send(struct.pack("!BBH", 0x81, 0x80 | 126, 5) + key + masked(b"hello", key))
    expect_reply(c, b"hello", False)
    clean_close(c)


# 2.x ping/pong.
def ping_case(payload, chop=None):
    def fn(c):
        data = frame(OP_PING, payload)
        if chop:
            c.send_chopped(data, chop, 0.002)
        else:
            c.send(data)
        expect_pong(c, payload)
        clean_close(c)
    return fn


add("2.1", "ping without payload gets an empty pong", ping_case(b""))
add("2.2", "ping with a small text payload gets the same pong", ping_case(b"Hello, world!"))
add("2.3", "ping with a small binary payload gets the same pong",
    ping_case(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))
add("2.4", "ping with a 125-byte binary payload gets the same pong", ping_case(b"\xfe" * 125))
add("2.6", "ping with a 125-byte payload sent byte by byte gets the same pong",
    ping_case(os.urandom(125), chop=1))


@case("2.5", "ping with a 126-byte payload: close 1002")
def _(c):
    c.send(frame(OP_PING, b"\xfe" * 126))
    expect_close(c, [1002])


@case("2.7", "an unsolicited pong without payload is ignored; the next message works")
def _(c):
    c.send(frame(OP_PONG))
    expect_silence(c)
    roundtrip(c, b"after pong", False)
    clean_close(c)


@case("2.8", "an unsolicited pong with payload is ignored; the next message works")
def _(c):
    c.send(frame(OP_PONG, b"unsolicited pong payload"))
    expect_silence(c)
    roundtrip(c, b"after pong", False)
    clean_close(c)


@case("2.9", "an unsolicited pong, then a ping: only the ping's pong comes")
def _(c):
    c.send(frame(OP_PONG, b"unsolicited pong payload") + frame(OP_PING, b"ping payload"))
    expect_pong(c, b"ping payload")
    roundtrip(c, b"after", True)
    clean_close(c)


@case("2.10", "10 pings, each sent after the previous pong: 10 pongs")
def _(c):
    for i in range(10):
        p = ("payload-%d" % i).encode()
        c.send(frame(OP_PING, p))
        expect_pong(c, p)
    clean_close(c)


def pings_at_once(chop):
    def fn(c):
        # RFC 6455 §5.5.3: an endpoint MAY answer only the most recent of pings it has not yet
        # answered. So: the pongs come in order, each for one of the pings, the last for the last.
        pings = [("payload-%d" % i).encode() for i in range(10)]
        data = b"".join(frame(OP_PING, p) for p in pings)
        if chop:
            c.send_chopped(data, chop)
        else:
            c.send(data)
        c.send(frame(OP_TEXT, b"marker"))
        last = -1
        while True:
            op, payload = c.next_event()
            if op == OP_TEXT:
                break
            if op != OP_PONG or payload not in pings or pings.index(payload) <= last:
                raise Fail("expected pongs in order, got %s after pong %d"
                           % (describe((op, payload)), last))
            last = pings.index(payload)
        if last != 9:
            raise Fail("the last ping got no pong (last pong %d)" % last)
        clean_close(c)
    return fn


add("2.10b", "10 pings in one write: pongs in order, the last one for the last ping",
    pings_at_once(None))
add("2.11", "10 pings sent byte by byte: pongs in order, the last one for the last ping",
    pings_at_once(1))


# 3.x reserved bits (no extension negotiated): 1002.
@case("3.1", "text with RSV1: close 1002")
def _(c):
    c.send(frame(OP_TEXT, b"Hello, world!", rsv=1))
    expect_close(c, [1002])


def rsv_after_message(rsv, chop=None):
    def fn(c):
        roundtrip(c, b"Hello, world!", False)
        data = frame(OP_TEXT, b"Hello, world!", rsv=rsv) + frame(OP_PING, b"p")
        if chop:
            c.send_chopped(data, chop)
        else:
            c.send(data)
        expect_close(c, [1002])
    return fn


add("3.2", "text, then text with RSV2, then ping: close 1002, no pong",
    rsv_after_message(2))
add("3.3", "text, then text with RSV1|RSV2 (3), then ping: close 1002, no pong",
    rsv_after_message(3))
add("3.4", "text, then text with RSV3 (4) sent byte by byte, then ping: close 1002, no pong",
    rsv_after_message(4, chop=1))


@case("3.5", "binary with RSV1|RSV3 (5): close 1002")
def _(c):
    c.send(frame(OP_BINARY, os.urandom(8), rsv=5))
    expect_close(c, [1002])


@case("3.6", "ping with RSV2|RSV3 (6): close 1002, no pong")
def _(c):
    c.send(frame(OP_PING, b"Hello, world!", rsv=6))
    expect_close(c, [1002])


@case("3.7", "close with all RSV bits (7): close 1002")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000), rsv=7))
    expect_close(c, [1002])


# 4.x opcodes.
def reserved_opcode(op, payload, after_message):
    def fn(c):
        if after_message:
            roundtrip(c, b"Hello, world!", False)
            c.send(frame(op, payload) + frame(OP_PING, b"p"))
        else:
            c.send(frame(op, payload))
        expect_close(c, [1002])
    return fn


for i, (op, payload, after) in enumerate([(3, b"", False), (4, b"reserved opcode payload", False),
                                           (5, b"", True), (6, b"reserved opcode payload", True),
                                           (7, b"reserved opcode payload", True)]):
    add("4.1.%d" % (i + 1), "non-control opcode %d%s: close 1002"
        % (op, " after a message" if after else ""), reserved_opcode(op, payload, after))
for i, (op, payload, after) in enumerate([(11, b"", False), (12, b"reserved opcode payload", False),
                                           (13, b"", True), (14, b"reserved opcode payload", True),
                                           (15, b"reserved opcode payload", True)]):
    add("4.2.%d" % (i + 1), "control opcode %d%s: close 1002"
        % (op, " after a message" if after else ""), reserved_opcode(op, payload, after))


# 5.x fragmentation.
@case("5.1", "ping with FIN=0 (a fragmented control frame): close 1002")
def _(c):
    c.send(frame(OP_PING, b"fragment1", fin=False) + frame(OP_CONT, b"fragment2"))
    expect_close(c, [1002])


@case("5.2", "pong with FIN=0: close 1002")
def _(c):
    c.send(frame(OP_PONG, b"fragment1", fin=False) + frame(OP_CONT, b"fragment2"))
    expect_close(c, [1002])


def two_fragments(binary, mode):
    def fn(c):
        op = OP_BINARY if binary else OP_TEXT
        data = [frame(op, b"fragment1", fin=False), frame(OP_CONT, b"fragment2")]
        if mode == "one":
            c.send(b"".join(data))
        elif mode == "frames":
            for d in data:
                c.send(d)
                time.sleep(0.05)
        else:
            c.send_chopped(b"".join(data), 1)
        expect_reply(c, b"fragment1fragment2", binary)
        clean_close(c)
    return fn


add("5.3", "text in 2 fragments, one write: one message", two_fragments(False, "one"))
add("5.4", "text in 2 fragments, write per frame: one message", two_fragments(False, "frames"))
add("5.5", "text in 2 fragments, byte by byte: one message", two_fragments(False, "chop"))
add("5.5b", "binary in 2 fragments: one message", two_fragments(True, "one"))


def ping_between(mode, pong=True):
    def fn(c):
        op = OP_PING if pong else OP_PONG
        data = [frame(OP_TEXT, b"fragment1", fin=False), frame(op, b"ping payload"),
                frame(OP_CONT, b"fragment2")]
        if mode == "frames":
            for d in data:
                c.send(d)
                time.sleep(0.05)
        elif mode == "chop":
            c.send_chopped(b"".join(data), 1)
        else:
            c.send(b"".join(data))
        if pong:
            expect_pong(c, b"ping payload")
        expect_reply(c, b"fragment1fragment2", False)
        clean_close(c)
    return fn


add("5.6", "text in 2 fragments with a ping between: pong, then the message",
    ping_between("one"))
add("5.7", "the same, a write per frame", ping_between("frames"))
add("5.8", "the same, byte by byte", ping_between("chop"))
add("5.8b", "text in 2 fragments with an unsolicited pong between: the message",
    ping_between("one", pong=False))


def continuation_without_start(fin, mode):
    def fn(c):
        data = [frame(OP_CONT, b"non-continuation payload", fin=fin), frame(OP_TEXT, b"Hello")]
        if mode == "frames":
            for d in data:
                c.send_tolerant(d)
                time.sleep(0.05)
        elif mode == "chop":
            try:
                c.send_chopped(b"".join(data), 1)
            except OSError:
                pass
        else:
            c.send(b"".join(data))
        expect_close(c, [1002])
    return fn


add("5.9", "continuation (FIN=1) with nothing to continue: close 1002",
    continuation_without_start(True, "one"))
add("5.10", "the same, a write per frame", continuation_without_start(True, "frames"))
add("5.11", "the same, byte by byte", continuation_without_start(True, "chop"))
add("5.12", "continuation (FIN=0) with nothing to continue: close 1002",
    continuation_without_start(False, "one"))
add("5.13", "the same, a write per frame", continuation_without_start(False, "frames"))
add("5.14", "the same, byte by byte", continuation_without_start(False, "chop"))


@case("5.15", "a message in 2 fragments, then a continuation with nothing to continue: 1002")
def _(c):
    c.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_CONT, b"fragment2") +
           frame(OP_CONT, b"fragment3", fin=False) + frame(OP_TEXT, b"fragment4"))
    # The first message is whole before the error: its reply may come before the Close.
    expect_close(c, [1002], allow=[is_reply(b"fragment1fragment2", False)])


@case("5.16", "continuation, then text fragments, twice: close 1002")
def _(c):
    data = frame(OP_CONT, b"fragment1", fin=False) + frame(OP_TEXT, b"fragment2", fin=False) + \
        frame(OP_CONT, b"fragment3")
    c.send(data + data)
    expect_close(c, [1002])


@case("5.18", "a new text frame while a fragmented text is open: close 1002")
def _(c):
    c.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_TEXT, b"fragment2"))
    expect_close(c, [1002])


@case("5.18b", "a new binary frame while a fragmented text is open: close 1002")
def _(c):
    c.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_BINARY, b"fragment2"))
    expect_close(c, [1002])


def many_fragments_with_pings(count, binary, pause):
    def fn(c):
        op = OP_BINARY if binary else OP_TEXT
        parts = [("fragment%d;" % i).encode() for i in range(count)]
        pings = {count // 3: b"pongme 1!", 2 * count // 3: b"pongme 2!"}
        for i, p in enumerate(parts):
            c.send(frame(op if i == 0 else OP_CONT, p, fin=i == count - 1))
            if i in pings:
                c.send(frame(OP_PING, pings[i]))
                if pause:
                    expect_pong(c, pings[i])
            if pause:
                time.sleep(pause)
        if not pause:
            for i in sorted(pings):
                expect_pong(c, pings[i])
        expect_reply(c, b"".join(parts), binary)
        clean_close(c)
    return fn


add("5.19", "text in 5 fragments with 2 pings between, paced: pongs as they come, then "
    "the message", many_fragments_with_pings(5, False, 0.1))
add("5.20", "text in 200 fragments with 2 pings between: 2 pongs, then the message",
    many_fragments_with_pings(200, False, 0))
add("5.20b", "binary in 200 fragments with 2 pings between: 2 pongs, then the message",
    many_fragments_with_pings(200, True, 0))


def empty_fragments(parts, binary=False):
    def fn(c):
        op = OP_BINARY if binary else OP_TEXT
        c.send(b"".join(frame(op if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
                        for i, p in enumerate(parts)))
        expect_reply(c, b"".join(parts), binary)
        clean_close(c)
    return fn


add("5.21", "text of 3 empty fragments: one empty message", empty_fragments([b"", b"", b""]))
add("5.22", "text with empty first and last fragments",
    empty_fragments([b"", b"middle frame payload", b""]))
add("5.23", "binary with empty fragments between", empty_fragments(
    [b"\x01", b"", b"\x02", b"", b""], binary=True))


# 6.x UTF-8 of text messages.
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
HELLO_UTF8 = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()


def utf8_case(payload, fragment=None):
    """A text message with `payload`, in one frame or in fragments of `fragment` bytes; valid
    UTF-8 (by Python's strict decoder) must come back, anything else get 1007."""
    try:
        payload.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False

    def fn(c):
        if fragment:
            parts = [payload[i:i + fragment] for i in range(0, len(payload), fragment)] or [b""]
            data = b"".join(frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
                            for i, p in enumerate(parts))
        else:
            data = frame(OP_TEXT, payload)
        if valid:
            c.send(data)
            expect_reply(c, payload, False)
            clean_close(c)
        else:
            c.send_tolerant(data)
            expect_close(c, [1007])
    return fn, valid


UTF8_VALID = [
    ("6.2.1", HELLO_UTF8, None, "the Autobahn text in one frame"),
    ("6.2.2", HELLO_UTF8, 2, "the Autobahn text in fragments at odd boundaries"),
    ("6.2.3", HELLO_UTF8, 1, "the Autobahn text one byte per fragment"),
    ("6.2.4", KOSME * 4, 1, "kosme one byte per fragment"),
    ("6.5.1", KOSME, None, "Greek kosme"),
    ("6.5.2", "\u4f60\u597d\uff0c\u4e16\u754c".encode(), None, "CJK"),
    ("6.5.3", "\U0001F600\U0001F680\U00010348".encode(), None, "4-byte sequences (emoji)"),
    ("6.5.4", ("a\u00e9\u4e2d\U0001F600" * 50).encode(), 3, "mixed widths, 3-byte fragments"),
    ("6.5.5", "\U0001F600".encode() * 10, 1, "emoji one byte per fragment"),
]
UTF8_SEQUENCES = [
    # (id, bytes, what); valid or not is Python's strict decoder's verdict.
    ("6.3.1", KOSME + b"\xed\xa0\x80edited", "kosme then a surrogate"),
    ("6.7.1", b"\x00", "first 1-byte sequence U+0000"),
    ("6.7.2", b"\xc2\x80", "first 2-byte sequence U+0080"),
    ("6.7.3", b"\xe0\xa0\x80", "first 3-byte sequence U+0800"),
    ("6.7.4", b"\xf0\x90\x80\x80", "first 4-byte sequence U+10000"),
    ("6.8.1", b"\xf8\x88\x80\x80\x80", "5-byte sequence"),
    ("6.8.2", b"\xfc\x84\x80\x80\x80\x80", "6-byte sequence"),
    ("6.9.1", b"\x7f", "last 1-byte sequence U+007F"),
    ("6.9.2", b"\xdf\xbf", "last 2-byte sequence U+07FF"),
    ("6.9.3", b"\xef\xbf\xbf", "last 3-byte sequence U+FFFF"),
    ("6.9.4", b"\xf4\x8f\xbf\xbf", "last code point U+10FFFF"),
    ("6.10.1", b"\xf7\xbf\xbf\xbf", "4-byte sequence above U+10FFFF (U+1FFFFF)"),
    ("6.10.2", b"\xfb\xbf\xbf\xbf\xbf", "5-byte U+3FFFFFF"),
    ("6.10.3", b"\xfd\xbf\xbf\xbf\xbf\xbf", "6-byte U+7FFFFFFF"),
    ("6.11.1", b"\xed\x9f\xbf", "U+D7FF"),
    ("6.11.2", b"\xee\x80\x80", "U+E000"),
    ("6.11.3", b"\xef\xbf\xbd", "U+FFFD"),
    ("6.11.4", b"\xf4\x8f\xbf\xbf", "U+10FFFF"),
    ("6.11.5", b"\xf4\x90\x80\x80", "U+110000"),
    ("6.12.1", b"\x80", "lone continuation 0x80"),
    ("6.12.2", b"\xbf", "lone continuation 0xbf"),
    ("6.12.3", b"\x80\xbf", "2 continuations"),
    ("6.12.4", b"\x80\xbf\x80", "3 continuations"),
    ("6.12.5", b"a\x80\xbf\x80\xbf", "ASCII then 4 continuations"),
    ("6.12.8", bytes(range(0x80, 0xc0)), "all 64 continuation bytes"),
    ("6.13.1", b"".join(bytes([b, 0x20]) for b in range(0xc0, 0xe0)), "lone 2-byte starts + space"),
    ("6.13.2", b"".join(bytes([b, 0x20]) for b in range(0xe0, 0xf0)), "lone 3-byte starts + space"),
    ("6.13.3", b"".join(bytes([b, 0x20]) for b in range(0xf0, 0xf8)), "lone 4-byte starts + space"),
    ("6.13.4", b"\xf8 \xf9 \xfa \xfb ", "lone 5-byte starts"),
    ("6.13.5", b"\xfc \xfd ", "lone 6-byte starts"),
    ("6.14.1", b"\xc0", "2-byte sequence, last byte missing (at message end)"),
    ("6.14.2", b"\xe0\x80", "3-byte sequence, last byte missing"),
    ("6.14.3", b"\xf0\x80\x80", "4-byte sequence, last byte missing"),
    ("6.14.4", b"\xdf", "U+07FF truncated"),
    ("6.14.5", b"\xef\xbf", "U+FFFF truncated"),
    ("6.14.6", b"\xf4\x8f\xbf", "U+10FFFF truncated"),
    ("6.14.7", b"abc\xe4\xb8", "valid text then a truncated CJK character at message end"),
    ("6.14.8", b"abc\xf0\x9f\x98", "valid text then a truncated emoji at message end"),
    ("6.15.1", b"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf4\x8f\xbf", "concatenated truncations"),
    ("6.16.1", b"\xfe", "byte 0xfe"),
    ("6.16.2", b"\xff", "byte 0xff"),
    ("6.16.3", b"\xfe\xfe\xff\xff", "bytes fe fe ff ff"),
    ("6.17.1", b"\xc0\xaf", "overlong '/' in 2 bytes"),
    ("6.17.2", b"\xe0\x80\xaf", "overlong '/' in 3 bytes"),
    ("6.17.3", b"\xf0\x80\x80\xaf", "overlong '/' in 4 bytes"),
    ("6.17.4", b"\xf8\x80\x80\x80\xaf", "overlong '/' in 5 bytes"),
    ("6.17.5", b"\xfc\x80\x80\x80\x80\xaf", "overlong '/' in 6 bytes"),
    ("6.18.1", b"\xc1\xbf", "maximum overlong 2-byte"),
    ("6.18.2", b"\xe0\x9f\xbf", "maximum overlong 3-byte"),
    ("6.18.3", b"\xf0\x8f\xbf\xbf", "maximum overlong 4-byte"),
    ("6.19.1", b"\xc0\x80", "overlong NUL in 2 bytes"),
    ("6.19.2", b"\xe0\x80\x80", "overlong NUL in 3 bytes"),
    ("6.19.3", b"\xf0\x80\x80\x80", "overlong NUL in 4 bytes"),
    ("6.20.1", b"\xed\xa0\x80", "surrogate U+D800"),
    ("6.20.2", b"\xed\xad\xbf", "surrogate U+DB7F"),
    ("6.20.3", b"\xed\xae\x80", "surrogate U+DB80"),
    ("6.20.4", b"\xed\xaf\xbf", "surrogate U+DBFF"),
    ("6.20.5", b"\xed\xb0\x80", "surrogate U+DC00"),
    ("6.20.6", b"\xed\xbe\x80", "surrogate U+DF80"),
    ("6.20.7", b"\xed\xbf\xbf", "surrogate U+DFFF"),
    ("6.21.1", b"\xed\xa0\x80\xed\xb0\x80", "surrogate pair U+D800 U+DC00"),
    ("6.21.8", b"\xed\xaf\xbf\xed\xbf\xbf", "surrogate pair U+DBFF U+DFFF"),
    ("6.22.1", b"\xef\xbf\xbe", "noncharacter U+FFFE (valid)"),
    ("6.22.2", b"\xef\xbf\xbf", "noncharacter U+FFFF (valid)"),
    ("6.22.3", b"\xf0\x9f\xbf\xbe", "noncharacter U+1FFFE (valid)"),
    ("6.22.34", b"\xf4\x8f\xbf\xbe", "noncharacter U+10FFFE (valid)"),
    ("6.23.1", b"\xef\xbb\xbf", "U+FEFF (BOM)"),
    ("6.23.2", b"\xef\xbf\xbd", "U+FFFD replacement character"),
    ("6.23.3", b"a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z", "1-2-3-4-byte mix"),
]

for cid, payload, frag, what in UTF8_VALID:
    fn, valid = utf8_case(payload, frag)
    assert valid, cid
    add(cid, "valid UTF-8, %s: echoed" % what, fn)

for cid, payload, what in UTF8_SEQUENCES:
    fn, valid = utf8_case(payload)
    add(cid, "%s: %s" % (what, "echoed" if valid else "close 1007"), fn)

add("6.3.2", "kosme then a surrogate, one byte per fragment: close 1007",
    utf8_case(KOSME + b"\xed\xa0\x80edited", 1)[0])
add("6.14.9", "a truncated sequence at the end of a fragmented message: close 1007",
    utf8_case(b"abcdef\xe2\x82", 4)[0])

# 6.6.x: every prefix of kosme; those ending inside a sequence are truncated (invalid).
for i in range(1, len(KOSME) + 1):
    fn, valid = utf8_case(KOSME[:i])
    add("6.6.%d" % i, "the first %d bytes of kosme: %s" % (i, "echoed" if valid else "close 1007"),
        fn)


def fail_fast(first, bad, rest, whole_frame):
    """The bad byte goes out in a non-final fragment (or inside a frame whose payload is not all
    sent): ferry must close with 1007 before the rest comes (RFC 6455 §8.1)."""
    def fn(c):
        if whole_frame:
            total = first + bad + rest
            key = os.urandom(4)
            full = frame(OP_TEXT, total, key=key)
            c.send(full[:len(full) - len(rest)])  # all but the tail of the payload
        else:
            c.send(frame(OP_TEXT, first, fin=False) + frame(OP_CONT, bad, fin=False))
        expect_close(c, [1007], what="close before the message ends")
        c.send_tolerant(frame(OP_CONT, rest))
    return fn


add("6.4.1", "fail fast: kosme, then U+110000 in a non-final fragment: 1007 before the end",
    fail_fast(KOSME, b"\xf4\x90\x80\x80", b"edited", False))
add("6.4.2", "fail fast: kosme + 0xf4, then 0x90 in the next non-final fragment: 1007",
    fail_fast(KOSME + b"\xf4", b"\x90", b"\x80\x80edited", False))
add("6.4.3", "fail fast: a surrogate in the middle of a frame, its tail unsent: 1007",
    fail_fast(KOSME, b"\xed\xa0\x80", b"edited" * 10, True))
add("6.4.4", "fail fast: an overlong in a frame whose tail is unsent: 1007",
    fail_fast(KOSME, b"\xc0\xaf", b"x" * 1000, True))


# 7.x close.
@case("7.1.1", "a message, then close: reply, then the close echoed")
def _(c):
    roundtrip(c, b"Hello World!", False)
    clean_close(c)


@case("7.1.2", "close twice: one close back")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000)))
    c.send_tolerant(frame(OP_CLOSE, close_payload(1000)))
    expect_close(c, [1000])


@case("7.1.3", "close, then ping: no pong")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, b"Hello World!"))
    expect_close(c, [1000])


@case("7.1.4", "close, then a text message: no reply")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"Hello World!"))
    expect_close(c, [1000])


@case("7.1.5", "a first fragment, close, then the last fragment: the close echoed, no reply")
def _(c):
    c.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_CLOSE, close_payload(1000)) +
           frame(OP_CONT, b"fragment2"))
    expect_close(c, [1000])


@case("7.1.6", "a 256 KiB message, close, ping: the reply, then the close echoed, no pong")
def _(c):
    payload = b"BAsd7&jh23" * 26214 + b"Bx"
    c.send(frame(OP_TEXT, payload) + frame(OP_CLOSE, close_payload(1000)) +
           frame(OP_PING, b"Hello World!"))
    expect_close(c, [1000], allow=[is_reply(payload, False)])


@case("7.3.1", "an empty close: an empty close (or 1000) back")
def _(c):
    c.send(frame(OP_CLOSE))
    expect_close(c, [None, 1000])


@case("7.3.2", "a close with a 1-byte payload: close 1002")
def _(c):
    c.send(frame(OP_CLOSE, b"\x03"))
    expect_close(c, [1002])


@case("7.3.3", "close 1000 without reason: 1000 back")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000)))
    expect_close(c, [1000])


@case("7.3.4", "close 1000 with a reason: 1000 and the reason back")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000, "Hello World!")))
    got = expect_close(c, [1000])
    if got[2:] != b"Hello World!":
        raise Fail("reason %r back, expected %r" % (got[2:], b"Hello World!"))


@case("7.3.5", "close 1000 with a 123-byte reason (the largest): echoed")
def _(c):
    reason = b"*" * 123
    c.send(frame(OP_CLOSE, close_payload(1000, reason)))
    got = expect_close(c, [1000])
    if got[2:] != reason:
        raise Fail("reason of %d bytes back, expected the 123 sent" % len(got[2:]))


@case("7.3.6", "close 1000 with a 124-byte reason (a 126-byte control frame): close 1002")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000, b"*" * 124)))
    expect_close(c, [1002])


@case("7.5.1", "close 1000 with a reason that is not UTF-8: close 1007")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000, KOSME + b"\xed\xa0\x80edited")))
    expect_close(c, [1007])


@case("7.5.2", "close 1000 with a reason truncated inside a sequence: close 1007")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000, b"bye \xe4\xb8")))
    expect_close(c, [1007])


@case("7.5.3", "close 1000 with a multilingual UTF-8 reason: echoed")
def _(c):
    reason = "\u03ba\u03cc\u03c3\u03bc\u03b5 \u4e16\u754c \U0001F600".encode()
    c.send(frame(OP_CLOSE, close_payload(1000, reason)))
    got = expect_close(c, [1000])
    if got[2:] != reason:
        raise Fail("reason %r back, expected %r" % (got[2:], reason))


@case("7.5.4", "a close split byte by byte: echoed")
def _(c):
    c.send_chopped(frame(OP_CLOSE, close_payload(1001, "going")), 1)
    got = expect_close(c, [1001])
    if got[2:] != b"going":
        raise Fail("reason %r back" % got[2:])


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
for i, code in enumerate(VALID_CODES):
    def valid_close(c, code=code):
        c.send(frame(OP_CLOSE, close_payload(code, "")))
        expect_close(c, [code])
    add("7.7.%d" % (i + 1), "close with the valid code %d: echoed" % code, valid_close)

INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535]
for i, code in enumerate(INVALID_CODES):
    def invalid_close(c, code=code):
        c.send(frame(OP_CLOSE, close_payload(code, "")))
        expect_close(c, [1002])
    add("7.9.%d" % (i + 1), "close with the invalid code %d: close 1002" % code, invalid_close)


@case("7.13.1", "after the closing handshake the TCP connection ends even if the client "
      "keeps it open")
def _(c):
    c.send(frame(OP_CLOSE, close_payload(1000)))
    op, payload = c.next_event()
    if op != OP_CLOSE:
        raise Fail("expected the close, got %s" % describe((op, payload)))
    # The client sends nothing more and keeps its side open: ferry's FIN must still come.
    c.expect_eof("while the client keeps its side open")


# 9.x sizes (no timing): one frame, and 64 KiB fragments.
SIZES = [(1, 64 << 10), (2, 256 << 10), (3, 1 << 20), (4, 4 << 20)]


def big_message(size, binary, fragment):
    def fn(c):
        payload = os.urandom(size) if binary else (b"\xc3\xa9" * (size // 2) + b"*" * (size % 2))
        op = OP_BINARY if binary else OP_TEXT
        if fragment:
            data = b"".join(
                frame(op if i == 0 else OP_CONT, payload[i:i + fragment],
                      fin=i + fragment >= size)
                for i in range(0, size, fragment))
        else:
            data = frame(op, payload)
        c.send(data)
        expect_reply(c, payload, binary)
        clean_close(c)
    return fn


for n, size in SIZES:
    label = "%d KiB" % (size >> 10) if size < (1 << 20) else "%d MiB" % (size >> 20)
    add("9.1.%d" % n, "text message of %s in one frame" % label, big_message(size, False, 0), 30)
    add("9.2.%d" % n, "binary message of %s in one frame" % label, big_message(size, True, 0), 30)
    add("9.3.%d" % n, "text message of %s in 64 KiB fragments" % label,
        big_message(size, False, 64 << 10), 30)
    add("9.4.%d" % n, "binary message of %s in 64 KiB fragments" % label,
        big_message(size, True, 64 << 10), 30)
add("9.1.6", "text message of 16 MiB (the default --ws-max-message) in one frame",
    big_message(16 << 20, False, 0), 60)


@case("9.9.1", "a frame header announcing 16 MiB + 1 (over the default limit): close 1009 "
      "before any payload")
def _(c):
    c.send(frame(OP_BINARY, b"", length=(16 << 20) + 1))
    expect_close(c, [1009])


def over_limit(kind):
    def fn(c, limit):
        if kind == "at":
            payload = os.urandom(limit)
            c.send(frame(OP_BINARY, payload))
            expect_reply(c, payload, True)
            clean_close(c)
        elif kind == "frame":
            # Only the header: the announced length alone is over the limit.
            c.send(frame(OP_BINARY, b"", length=limit + 1))
            expect_close(c, [1009])
        else:
            # Fragments of 64 KiB, each under the limit, together one byte over it.
            chunk = 64 << 10
            payload = b"a" * (limit + 1)
            parts = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
            for i, p in enumerate(parts):
                c.send_tolerant(frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1))
            expect_close(c, [1009])
    return fn


add("9.9.2", "--ws-max-message 1MiB: a message of exactly 1 MiB is taken", over_limit("at"), 30,
    "limited")
add("9.9.3", "--ws-max-message 1MiB: one frame of 1 MiB + 1: close 1009", over_limit("frame"),
    10, "limited")
add("9.9.4", "--ws-max-message 1MiB: 64 KiB fragments adding up to 1 MiB + 1: close 1009",
    over_limit("fragments"), 30, "limited")


# Masking and lengths.
@case("X.2", "an unmasked text frame: close 1002")
def _(c):
    c.send(frame(OP_TEXT, b"Hello", mask=False))
    expect_close(c, [1002])


@case("X.3", "an unmasked ping: close 1002, no pong")
def _(c):
    c.send(frame(OP_PING, b"Hello", mask=False))
    expect_close(c, [1002])


@case("X.4", "a masked message, then an unmasked one: the reply, then close 1002")
def _(c):
    roundtrip(c, b"first", False)
    c.send(frame(OP_TEXT, b"second", mask=False))
    expect_close(c, [1002])


@case("X.5", "a 64-bit length with the most significant bit set: close 1002 (or 1009)")
def _(c):
    c.send(struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + os.urandom(4))
    expect_close(c, [1002, 1009])


@case("X.6", "a masked frame with the key 0 (payload as written) is taken")
def _(c):
    c.send(frame(OP_TEXT, b"zero key", key=b"\0\0\0\0"))
    expect_reply(c, b"zero key", False)
    clean_close(c)


@case("X.7", "many messages in one write: every reply, in order")
def _(c):
    msgs = [("message %d" % i).encode() for i in range(100)]
    c.send(b"".join(frame(OP_TEXT, m) for m in msgs))
    for m in msgs:
        expect_reply(c, m, False)
    clean_close(c)


# ---- runner --------------------------------------------------------------------------------


def run_case(args, cid, title, fn, timeout, port_kind):
    port = args.port if port_kind == "main" else args.limited_port
    c = None
    try:
        c = Conn(args.host, port, timeout * args.timeout_scale)
        if port_kind == "limited":
            fn(c, args.limited_size)
        else:
            fn(c)
        return None
    except Fail as e:
        return str(e)
    except socket.timeout:
        return "timed out (%.0f s)" % (timeout * args.timeout_scale)
    except Eof:
        return "the server closed the TCP connection unexpectedly"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        if c is not None:
            c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the initiator's ws:// port")
    p.add_argument("--limited-port", type=int, default=0,
                   help="an initiator started with --ws-max-message LIMITED_SIZE (9.9.2-4)")
    p.add_argument("--limited-size", type=int, default=1 << 20)
    p.add_argument("--timeout-scale", type=float, default=1.0)
    p.add_argument("--cases", default="", help="comma-separated id prefixes to run (all if empty)")
    p.add_argument("--tls-ca", default="",
                   help="run over wss://: TLS to both ports, their certificate from this CA")
    args = p.parse_args()
    if args.tls_ca:
        Conn.tls = ssl.create_default_context(cafile=args.tls_ca)
        Conn.tls.set_alpn_protocols(["http/1.1"])
    only = [x for x in args.cases.split(",") if x]
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"

    counts = {"PASS": 0, "FAIL": 0, "XFAIL": 0, "XPASS": 0, "SKIP": 0}
    started = time.monotonic()
    for cid, title, fn, timeout, port_kind in CASES:
        if only and not any(cid == o or cid.startswith(o + ".") for o in only):
            continue
        if port_kind == "limited" and not args.limited_port:
            print("SKIP %s %s: no --limited-port" % (cid, title), flush=True)
            counts["SKIP"] += 1
            continue
        err = run_case(args, cid, title, fn, timeout, port_kind)
        signature, bug = KNOWN_BUGS.get(cid, (None, None))
        if bug is not None and err is None:
            print("XPASS %s %s (known bug no longer seen: %s)" % (cid, title, bug), flush=True)
            counts["XPASS"] += 1
        elif bug is not None and signature in err:
            print("XFAIL %s %s: %s [known bug: %s]" % (cid, title, err, bug), flush=True)
            counts["XFAIL"] += 1
        elif err is None:
            print("PASS %s %s" % (cid, title), flush=True)
            counts["PASS"] += 1
        else:
            print("FAIL %s %s: %s" % (cid, title, err), flush=True)
            counts["FAIL"] += 1
    print("ws_conformance: %d cases: %d passed, %d failed, %d expected failures, %d xpass, "
          "%d skipped (%.1f s)" % (sum(counts.values()), counts["PASS"], counts["FAIL"],
                                   counts["XFAIL"], counts["XPASS"], counts["SKIP"],
                                   time.monotonic() - started), flush=True)
    sys.exit(1 if counts["FAIL"] else 0)


if __name__ == "__main__":
    main()
