#!/usr/bin/python3
"""RFC 9113 conformance checks of ferry's HTTP/2 server (the initiator's grpc:// listener).

In the spirit of h2spec: every case opens its own connection (h2c with prior knowledge), sends
hand-built frames, valid and invalid, and checks the answer against what RFC 9113 (and RFC 7541
for HPACK) requires. After every case a fresh connection must still get a valid gRPC answer: a
lane7 Send made over raw HTTP/2 with python3-h2 (the terminator's built-in sink answers it).

Debian's python3-h2 / python3-hpack only. Prints one line per case, PASS/FAIL, and exits non-zero
if any case failed.

  h2_conformance.py --port P [--cases ID,ID] [--timeout-scale X]
"""

import argparse
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
               "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM"]
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]

SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 2, 4, 5

SEND_PATH = "/ferry.lane7.Lane7/Send"


def error_name(code):
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else "0x%x" % code


class Fail(Exception):
    pass


class Eof(Exception):
    pass


# ---- frames and messages ------------------------------------------------------------------------


def frame(ftype, flags, stream, payload=b"", length=None):
    n = len(payload) if length is None else length
    return struct.pack("!I", n)[1:] + struct.pack("!BBI", ftype, flags, stream) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack("!HI", k, v)
                                                         for k, v in pairs))


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack("!I", increment))


def rst_stream(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack("!I", code))


def grpc_message(payload):
    """A lane7 Message (field 1, bytes) behind its 5-byte gRPC prefix."""
    body = b"\x0a" + varint(len(payload)) + payload
    return b"\x00" + struct.pack("!I", len(body)) + body


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


def parse_result(body):
    """The payload (field 1) and trail (field 2) of a lane7 Result."""
    payload, trail, i = b"", [], 0
    while i < len(body):
        key, i = read_varint(body, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = read_varint(body, i)
        elif wire == 2:
            n, i = read_varint(body, i)
            value = body[i:i + n]
            i += n
            if field == 1:
                payload = value
            elif field == 2:
                trail.append(value.decode())
        else:
            raise Fail("unexpected protobuf wire type %d in a Result" % wire)
    return payload, trail


def read_varint(b, i):
    n, shift = 0, 0
    while True:
        if i >= len(b):
            raise Fail("truncated varint in a Result")
        n |= (b[i] & 0x7F) << shift
        i += 1
        if not b[i - 1] & 0x80:
            return n, i
        shift += 7


def request_headers(path=SEND_PATH, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers")
            ] + list(extra)


class Frame:
    def __init__(self, ftype, flags, stream, payload):
        self.type, self.flags, self.stream, self.payload = ftype, flags, stream, payload

    def error_code(self):
        if self.type == GOAWAY:
            return struct.unpack("!I", self.payload[4:8])[0]
        return struct.unpack("!I", self.payload[:4])[0]

    def __repr__(self):
        name = FRAME_NAMES[self.type] if self.type < len(FRAME_NAMES) else "0x%x" % self.type
        extra = ""
        if self.type in (GOAWAY, RST_STREAM):
            extra = " " + error_name(self.error_code())
            if self.type == GOAWAY and len(self.payload) > 8:
                extra += " %r" % self.payload[8:80]
        return "%s(flags=%#x stream=%d len=%d%s)" % (name, self.flags, self.stream,
                                                      len(self.payload), extra)


# ---- connection ---------------------------------------------------------------------------------


class Conn:
    def __init__(self, host, port, timeout, preface=True):
        self.deadline = time.monotonic() + timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.seen = []
        if preface:
            self.send(PREFACE + settings())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def send_tolerant(self, data):
        """Sends, ignoring a reset: the server may rightly have failed the connection already."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def headers(self, stream, fields, end_stream=False, end_headers=True):
        block = self.encoder.encode(fields)
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream, block)

    def _recv_some(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("case deadline")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            raise Eof()
        self.buf += data

    def recv_frame(self):
        while True:
            if len(self.buf) >= 9:
                n = struct.unpack("!I", b"\0" + bytes(self.buf[:3]))[0]
                if len(self.buf) >= 9 + n:
                    ftype, flags, stream = struct.unpack("!BBI", self.buf[3:9])
                    f = Frame(ftype, flags, stream & 0x7FFFFFFF, bytes(self.buf[9:9 + n]))
                    del self.buf[:9 + n]
                    self.seen.append(f)
                    return f
            self._recv_some()

    def expect_goaway(self, codes, may_just_close=False):
        """Reads until a GOAWAY, which must carry one of `codes`; then the server must close.
        With `may_just_close`, a close without a GOAWAY passes too."""
        while True:
            try:
                f = self.recv_frame()
            except Eof:
                if may_just_close:
                    return None
                raise Fail("closed without a GOAWAY (expected %s); frames: %r"
                           % ("/".join(error_name(c) for c in codes), self.seen[-6:]))
            if f.type == GOAWAY:
                if f.error_code() not in codes:
                    raise Fail("GOAWAY %s, expected %s" % (
                        error_name(f.error_code()), "/".join(error_name(c) for c in codes)))
                self.expect_close()
                return f
            if f.type == RST_STREAM and f.stream != 0:
                continue  # the stream may go first; the connection error must follow

    def expect_close(self):
        """After a connection error nothing but the end of the connection may follow."""
        while True:
            try:
                f = self.recv_frame()
            except Eof:
                return
            if f.type == GOAWAY:
                continue  # a second GOAWAY may update the last stream id
            if f.type not in (SETTINGS, WINDOW_UPDATE, PING, HEADERS, DATA, RST_STREAM):
                raise Fail("%r after the GOAWAY" % f)

    def expect_rst(self, stream, codes):
        """Reads until RST_STREAM on `stream` with one of `codes`; a GOAWAY first fails."""
        while True:
            try:
                f = self.recv_frame()
            except Eof:
                raise Fail("closed, expected RST_STREAM %s on stream %d; frames: %r"
                           % ("/".join(error_name(c) for c in codes), stream, self.seen[-6:]))
            if f.type == GOAWAY:
                raise Fail("%r, expected a stream error on stream %d only" % (f, stream))
            if f.type == RST_STREAM and f.stream == stream:
                if f.error_code() not in codes:
                    raise Fail("RST_STREAM %s on stream %d, expected %s" % (
                        error_name(f.error_code()), stream,
                        "/".join(error_name(c) for c in codes)))
                return f

    def expect_frame(self, ftype, flags=None, stream=None):
        while True:
            try:
                f = self.recv_frame()
            except Eof:
                raise Fail("closed, expected %s; frames: %r" % (FRAME_NAMES[ftype],
                                                                self.seen[-6:]))
            if f.type == GOAWAY:
                raise Fail("%r, expected %s" % (f, FRAME_NAMES[ftype]))
            if f.type == ftype and (flags is None or f.flags & flags == flags) and \
                    (stream is None or f.stream == stream):
                return f

    def decode_block(self, f):
        """The header list of a HEADERS frame (with its CONTINUATIONs) from the server."""
        block = bytearray(strip_padding(f))
        g = f
        while not g.flags & END_HEADERS:
            g = self.recv_frame()
            if g.type != CONTINUATION or g.stream != f.stream:
                raise Fail("%r inside the server's header block" % g)
            block += g.payload
        return [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes)
                 else v) for k, v in self.decoder.decode(bytes(block))]

    def response(self, stream):
        """Reads the whole response of `stream`: (headers, body, trailers), or the reset code."""
        heads, body = [], bytearray()
        while True:
            try:
                f = self.recv_frame()
            except Eof:
                raise Fail("closed during the response of stream %d; frames: %r"
                           % (stream, self.seen[-6:]))
            if f.type == GOAWAY and f.error_code() != NO_ERROR:
                raise Fail("%r during the response of stream %d" % (f, stream))
            if f.stream != stream:
                if f.type == HEADERS:
                    self.decode_block(f)  # keep the HPACK state in step
                continue
            if f.type == RST_STREAM:
                return heads, bytes(body), f.error_code()
            if f.type == HEADERS:
                heads.append(dict(self.decode_block(f)))
            elif f.type == DATA:
                body += strip_padding(f)
            if f.type in (HEADERS, DATA) and f.flags & END_STREAM:
                return heads, bytes(body), None


def strip_padding(f):
    p = f.payload
    if f.flags & PADDED:
        p = p[1:len(p) - p[0]]
    if f.type == HEADERS and f.flags & 0x20:
        p = p[5:]
    return p


def check_send_answer(heads, body, rst, payload):
    if rst is not None:
        raise Fail("the Send was reset: %s" % error_name(rst))
    if not heads or heads[0].get(":status") != "200":
        raise Fail("response headers %r" % heads)
    status = heads[-1].get("grpc-status")
    if status != "0":
        raise Fail("grpc-status %r (%r)" % (status, heads[-1].get("grpc-message")))
    if len(body) < 5:
        raise Fail("no response message (%d bytes)" % len(body))
    n = struct.unpack("!I", body[1:5])[0]
    got, trail = parse_result(body[5:5 + n])
    if got != payload:
        raise Fail("Send answered %r, expected %r" % (got, payload))
    if len(trail) != 2:
        raise Fail("trail %r" % trail)


def raw_send(c, stream, payload):
    """A lane7 Send over the raw connection `c`, checked."""
    msg = grpc_message(payload)
    out = c.headers(stream, request_headers())
    for i in range(0, len(msg), 16384):  # the default SETTINGS_MAX_FRAME_SIZE
        out += frame(DATA, END_STREAM if i + 16384 >= len(msg) else 0, stream, msg[i:i + 16384])
    c.send(out)
    check_send_answer(*c.response(stream), payload)


def h2_send(host, port, timeout, payload=b"still serving"):
    """A lane7 Send with python3-h2 on a fresh connection: the server survived the case."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_headers())
        conn.send_data(sid, grpc_message(payload), end_stream=True)
        sock.sendall(conn.data_to_send())
        heads, body, ended = [], bytearray(), False
        deadline = time.monotonic() + timeout
        while not ended:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise Fail("fresh connection: closed before the answer")
            for ev in conn.receive_data(data):
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    heads.append(dict(ev.headers))
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    raise Fail("fresh connection: Send reset (%s)" % ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise Fail("fresh connection: GOAWAY %s" % ev.error_code)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
        check_send_answer(heads, bytes(body), None, payload)
    except socket.timeout:
        raise Fail("fresh connection: no answer to a Send")
    finally:
        sock.close()


# ---- cases --------------------------------------------------------------------------------------
# Each takes (host, port, timeout) and raises Fail; the fresh-connection check runs after it.


def case_valid_send(host, port, timeout):
    c = Conn(host, port, timeout)
    try:
        raw_send(c, 1, b"hello")
        raw_send(c, 3, b"x" * 20000)  # more than one DATA frame each way
    finally:
        c.close()


def case_bad_preface(host, port, timeout):
    # RFC 9113 §3.4: a client preface that is not PRI * ... is a connection error PROTOCOL_ERROR
    # (a server may just close: the peer is not speaking HTTP/2).
    c = Conn(host, port, timeout, preface=False)
    try:
        c.send_tolerant(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
        c.expect_goaway([PROTOCOL_ERROR], may_just_close=True)
    finally:
        c.close()


def case_http1_request(host, port, timeout):
    c = Conn(host, port, timeout, preface=False)
    try:
        c.send_tolerant(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.expect_goaway([PROTOCOL_ERROR], may_just_close=True)
    finally:
        c.close()


def case_preface_not_settings(host, port, timeout):
    # RFC 9113 §3.4: the preface's first frame must be SETTINGS.
    c = Conn(host, port, timeout, preface=False)
    try:
        c.send_tolerant(PREFACE + frame(PING, 0, 0, b"\0" * 8))
        c.expect_goaway([PROTOCOL_ERROR], may_just_close=True)
    finally:
        c.close()


def case_settings_ack(host, port, timeout):
    # RFC 9113 §6.5.3: every SETTINGS is acknowledged.
    c = Conn(host, port, timeout)
    try:
        c.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 100000), (SETTINGS_MAX_FRAME_SIZE, 32768)))
        acks = 0
        while acks < 2:  # the preface's SETTINGS, then ours
            f = c.expect_frame(SETTINGS, flags=ACK)
            if f.payload:
                raise Fail("SETTINGS ACK with a payload: %r" % f)
            acks += 1
        raw_send(c, 1, b"after settings")
    finally:
        c.close()


def case_settings_ack_with_payload(host, port, timeout):
    # RFC 9113 §6.5: an ACK with a payload is a FRAME_SIZE_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(SETTINGS, ACK, 0, struct.pack("!HI", SETTINGS_ENABLE_PUSH, 0)))
        c.expect_goaway([FRAME_SIZE_ERROR])
    finally:
        c.close()


def case_settings_bad_length(host, port, timeout):
    # RFC 9113 §6.5: a length that is not a multiple of 6 is a FRAME_SIZE_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(SETTINGS, 0, 0, b"\0\2\0\0\0"))
        c.expect_goaway([FRAME_SIZE_ERROR])
    finally:
        c.close()


def case_settings_bad_values(host, port, timeout):
    # RFC 9113 §6.5.2: ENABLE_PUSH other than 0/1 is a PROTOCOL_ERROR; an INITIAL_WINDOW_SIZE
    # over 2^31-1 is a FLOW_CONTROL_ERROR; a MAX_FRAME_SIZE out of range a PROTOCOL_ERROR.
    for pair, code in (((SETTINGS_ENABLE_PUSH, 2), PROTOCOL_ERROR),
                       ((SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31), FLOW_CONTROL_ERROR),
                       ((SETTINGS_MAX_FRAME_SIZE, 16383), PROTOCOL_ERROR),
                       ((SETTINGS_MAX_FRAME_SIZE, 1 << 24), PROTOCOL_ERROR)):
        c = Conn(host, port, timeout)
        try:
            c.send(settings(pair))
            try:
                c.expect_goaway([code])
            except Fail as e:
                raise Fail("SETTINGS %r: %s" % (pair, e))
        finally:
            c.close()


def case_settings_on_stream(host, port, timeout):
    # RFC 9113 §6.5: SETTINGS on a stream other than 0 is a PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(SETTINGS, 0, 1, b""))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_ping(host, port, timeout):
    # RFC 9113 §6.7: a PING is answered with a PING ACK carrying the same 8 bytes.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(PING, 0, 0, b"ferry-h2"))
        f = c.expect_frame(PING, flags=ACK)
        if f.payload != b"ferry-h2":
            raise Fail("PING ACK payload %r" % f.payload)
        c.send(frame(PING, 0, 0, b"1234567"))  # §6.7: not 8 bytes: FRAME_SIZE_ERROR
        c.expect_goaway([FRAME_SIZE_ERROR])
    finally:
        c.close()


def case_window_overflow_connection(host, port, timeout):
    # RFC 9113 §6.9.1: a connection window above 2^31-1 is a connection error
    # FLOW_CONTROL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(window_update(0, 0x7FFFFFFF))
        c.expect_goaway([FLOW_CONTROL_ERROR])
    finally:
        c.close()


def case_window_overflow_stream(host, port, timeout):
    # RFC 9113 §6.9.1: a stream window above 2^31-1 is a stream error FLOW_CONTROL_ERROR; the
    # connection goes on.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers()))
        c.send(window_update(1, 0x7FFFFFFF))
        c.expect_rst(1, [FLOW_CONTROL_ERROR])
        raw_send(c, 3, b"after the reset")
    finally:
        c.close()


def case_window_update_zero(host, port, timeout):
    # RFC 9113 §6.9: an increment of 0 is a PROTOCOL_ERROR: a stream error on a stream (which
    # §5.4 lets a server treat as a connection error), a connection error on stream 0.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers()))
        c.send(window_update(1, 0))
        while True:
            try:
                f = c.recv_frame()
            except Eof:
                raise Fail("closed without RST_STREAM or GOAWAY")
            if f.type == GOAWAY or (f.type == RST_STREAM and f.stream == 1):
                break
        if f.error_code() != PROTOCOL_ERROR:
            raise Fail("%r, expected PROTOCOL_ERROR" % f)
        if f.type == GOAWAY:
            c.expect_close()
    finally:
        c.close()
    c = Conn(host, port, timeout)
    try:
        c.send(window_update(0, 0))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_stream_id_decreasing(host, port, timeout):
    # RFC 9113 §5.1.1: a new stream id lower than one already used is a connection error
    # PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(5, request_headers()))
        c.send(c.headers(3, request_headers()))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_stream_id_reuse(host, port, timeout):
    # RFC 9113 §5.1.1 / §5.1: HEADERS on a stream that was used and closed: a connection error
    # (PROTOCOL_ERROR, or STREAM_CLOSED for a stream the server knows as closed).
    c = Conn(host, port, timeout)
    try:
        raw_send(c, 1, b"first")
        c.send(c.headers(1, request_headers(), end_stream=True))
        c.expect_goaway([PROTOCOL_ERROR, STREAM_CLOSED])
    finally:
        c.close()


def case_stream_id_even(host, port, timeout):
    # RFC 9113 §5.1.1: streams a client opens have odd ids.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(2, request_headers(), end_stream=True))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_data_on_idle_stream(host, port, timeout):
    # RFC 9113 §5.1: DATA on an idle stream is a connection error PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(DATA, 0, 7, grpc_message(b"x")))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_headers_on_stream_zero(host, port, timeout):
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(0, request_headers()))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_frame_too_large(host, port, timeout):
    # RFC 9113 §4.2: a frame above SETTINGS_MAX_FRAME_SIZE (16384 by default) is a
    # FRAME_SIZE_ERROR (a connection error when it could change the connection's state).
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers()))
        c.send_tolerant(frame(DATA, 0, 1, b"\0" * 20000))
        f = None
        while f is None or not (f.type == GOAWAY or (f.type == RST_STREAM and f.stream == 1)):
            try:
                f = c.recv_frame()
            except Eof:
                raise Fail("closed without a GOAWAY or RST_STREAM")
        if f.error_code() != FRAME_SIZE_ERROR:
            raise Fail("%r, expected FRAME_SIZE_ERROR" % f)
    finally:
        c.close()


def case_unknown_frame_ignored(host, port, timeout):
    # RFC 9113 §4.1 / §5.5: frames of an unknown type are ignored.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(0x42, 0xFF, 0, b"whatever") + frame(0x42, 0, 1, b"x"))
        raw_send(c, 1, b"after an unknown frame")
    finally:
        c.close()


def case_continuation_orphan(host, port, timeout):
    # RFC 9113 §6.10: a CONTINUATION not after HEADERS/CONTINUATION without END_HEADERS is a
    # connection error PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(frame(CONTINUATION, END_HEADERS, 1, c.encoder.encode(request_headers())))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_continuation_interrupted(host, port, timeout):
    # RFC 9113 §6.10: any other frame inside a header block is a connection error
    # PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers(), end_headers=False) +
               frame(PING, 0, 0, b"\0" * 8))
        c.expect_goaway([PROTOCOL_ERROR])
    finally:
        c.close()


def case_continuation_flood(host, port, timeout):
    # CVE-2024-27316-style: a header block that never ends, in endless CONTINUATION frames
    # (empty, and with repeated fields). The server must end the connection, not buffer.
    for filler in (b"", b"\x40\x05x-pad\x05abcde" * 100):
        c = Conn(host, port, timeout)
        try:
            c.send(c.headers(1, request_headers(), end_headers=False))
            burst = frame(CONTINUATION, 0, 1, filler) * 200
            ended = False
            for _ in range(100):
                try:
                    c.send(burst)
                except OSError:
                    ended = True
                    break
            if not ended:
                try:
                    c.expect_goaway(list(range(12)), may_just_close=True)
                except Fail as e:
                    raise Fail("filler %d bytes: %s" % (len(filler), e))
            for f in c.seen:
                if f.type == GOAWAY and f.error_code() == NO_ERROR:
                    raise Fail("GOAWAY NO_ERROR for a CONTINUATION flood")
        finally:
            c.close()


def case_rapid_reset(host, port, timeout):
    # CVE-2023-44487: many HEADERS, each reset at once. The server keeps serving, or ends the
    # connection with GOAWAY ENHANCE_YOUR_CALM; it never crashes (checked after the case).
    c = Conn(host, port, timeout)
    try:
        burst = bytearray()
        for i in range(5000):
            sid = 1 + 2 * i
            burst += c.headers(sid, request_headers()) + rst_stream(sid, CANCEL)
        c.send_tolerant(bytes(burst))
        c.send_tolerant(frame(PING, 0, 0, b"rr-done!"))
        while True:
            try:
                f = c.recv_frame()
            except Eof:
                raise Fail("closed without a GOAWAY after the resets")
            if f.type == GOAWAY:
                if f.error_code() != ENHANCE_YOUR_CALM:
                    raise Fail("%r, expected ENHANCE_YOUR_CALM (or to go on serving)" % f)
                c.expect_close()
                return
            if f.type == PING and f.flags & ACK and f.payload == b"rr-done!":
                raw_send(c, 1 + 2 * 5000, b"after the resets")  # still serving
                return
    finally:
        c.close()


def case_hpack_bomb(host, port, timeout):
    # One 4 KiB field in the dynamic table, then a header block referencing it 1,000 times (two
    # bytes each): 4 MB of header list from 2 KB of input. RFC 9113 §10.5.1: the server refuses
    # the request (RST_STREAM, a 431, or a gRPC RESOURCE_EXHAUSTED) and the connection goes on.
    c = Conn(host, port, timeout)
    try:
        big = b"b" * 4000
        first = c.encoder.encode(request_headers() + [("x-bomb", big.decode())])
        c.send(frame(HEADERS, END_HEADERS, 1, first))
        # The entry just added is at dynamic index 62 (indexed field representation: 0xbe);
        # the other fields go as never-indexed literals so that it stays there.
        bomb = c.encoder.encode([(k, v, True) for k, v in request_headers()]) + b"\xbe" * 1000
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, bomb))
        heads, _, rst = c.response(3)
        if rst is None:
            status = heads[0].get(":status") if heads else None
            grpc_status = heads[-1].get("grpc-status") if heads else None
            if status != "431" and grpc_status != "8":
                raise Fail("an HPACK bomb was taken: %r" % heads)
        c.send(rst_stream(1, CANCEL))
        raw_send(c, 5, b"after the bomb")
    finally:
        c.close()


def case_oversize_header_list(host, port, timeout):
    # A plain header list over the advertised SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB), spread
    # over CONTINUATION frames: refused as above, the connection goes on.
    c = Conn(host, port, timeout)
    try:
        fields = request_headers([("x-big-%d" % i, "v" * 1000) for i in range(40)])
        block = c.encoder.encode(fields)
        parts = [block[i:i + 8000] for i in range(0, len(block), 8000)]
        out = frame(HEADERS, END_STREAM | (END_HEADERS if len(parts) == 1 else 0), 1, parts[0])
        for i, p in enumerate(parts[1:]):
            out += frame(CONTINUATION, END_HEADERS if i == len(parts) - 2 else 0, 1, p)
        c.send(out)
        heads, _, rst = c.response(1)
        if rst is None:
            status = heads[0].get(":status") if heads else None
            grpc_status = heads[-1].get("grpc-status") if heads else None
            if status != "431" and grpc_status != "8":
                raise Fail("an oversize header list was taken: %r" % heads)
        raw_send(c, 3, b"after the big head")
    finally:
        c.close()


def case_too_many_streams(host, port, timeout):
    # RFC 9113 §5.1.2: streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused with a stream
    # error PROTOCOL_ERROR or REFUSED_STREAM.
    c = Conn(host, port, timeout)
    try:
        limit = None
        while limit is None:
            f = c.expect_frame(SETTINGS)
            if f.flags & ACK:
                continue
            for i in range(0, len(f.payload), 6):
                k, v = struct.unpack("!HI", f.payload[i:i + 6])
                if k == 3:
                    limit = v
            if limit is None:
                return  # no limit announced: nothing to check
        out = bytearray()
        for i in range(limit + 1):
            out += c.headers(1 + 2 * i, request_headers())
        c.send(bytes(out))
        c.expect_rst(1 + 2 * limit, [PROTOCOL_ERROR, REFUSED_STREAM])
    finally:
        c.close()


def case_request_without_path(host, port, timeout):
    # RFC 9113 §8.3.1: a request without :path is malformed: a stream error PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        fields = [f for f in request_headers() if f[0] != ":path"]
        c.send(c.headers(1, fields, end_stream=True))
        c.expect_rst(1, [PROTOCOL_ERROR])
        raw_send(c, 3, b"after a malformed request")
    finally:
        c.close()


def case_connection_header(host, port, timeout):
    # RFC 9113 §8.2.2: a connection-specific field makes the request malformed.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers([("connection", "keep-alive")]), end_stream=True))
        c.expect_rst(1, [PROTOCOL_ERROR])
        raw_send(c, 3, b"after a connection header")
    finally:
        c.close()


def case_uppercase_header(host, port, timeout):
    # RFC 9113 §8.2.1: an uppercase field name makes the request malformed.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers([("X-Upper", "1")]), end_stream=True))
        c.expect_rst(1, [PROTOCOL_ERROR])
        raw_send(c, 3, b"after an uppercase name")
    finally:
        c.close()


def expect_stream_error(c, stream, code):
    """RST_STREAM `code` on `stream`, or the connection error RFC 9113 §5.4 allows instead."""
    while True:
        try:
            f = c.recv_frame()
        except Eof:
            raise Fail("closed without RST_STREAM or GOAWAY %s" % error_name(code))
        if f.type == GOAWAY or (f.type == RST_STREAM and f.stream == stream):
            break
    if f.error_code() != code:
        raise Fail("%r, expected %s" % (f, error_name(code)))
    if f.type == GOAWAY:
        c.expect_close()


def case_priority_self_dependency(host, port, timeout):
    # RFC 9113 §5.3.1: a stream cannot depend on itself: PROTOCOL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers()) +
               frame(PRIORITY, 0, 1, struct.pack("!IB", 1, 15)))
        expect_stream_error(c, 1, PROTOCOL_ERROR)
    finally:
        c.close()


def case_data_after_end_stream(host, port, timeout):
    # RFC 9113 §5.1: DATA on a half-closed (remote) stream is a STREAM_CLOSED error.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers(), end_stream=True) + frame(DATA, 0, 1, b"x"))
        expect_stream_error(c, 1, STREAM_CLOSED)
    finally:
        c.close()


def case_initial_window_overflow(host, port, timeout):
    # RFC 9113 §6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes a stream window past
    # 2^31-1 is a connection error FLOW_CONTROL_ERROR.
    c = Conn(host, port, timeout)
    try:
        c.send(c.headers(1, request_headers()) + window_update(1, 0x7FFFFFFF - 65535 - 10))
        c.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 65535 + 100)))
        c.expect_goaway([FLOW_CONTROL_ERROR])
    finally:
        c.close()


def case_malformed_requests(host, port, timeout):
    # RFC 9113 §8.1 / §8.2.2 / §8.3: malformed requests are stream errors PROTOCOL_ERROR; the
    # connection goes on.
    c = Conn(host, port, timeout)
    try:
        cases = [
            ("trailers without END_STREAM",
             lambda sid: c.headers(sid, request_headers()) +
             frame(DATA, 0, sid, grpc_message(b"x")) + c.headers(sid, [("x-t", "1")])),
            ("TE other than trailers",
             lambda sid: c.headers(sid, [f for f in request_headers() if f[0] != "te"] +
                                   [("te", "gzip")], end_stream=True)),
            ("a pseudo-header after a regular field",
             lambda sid: c.headers(sid, request_headers([(":status", "200")]), end_stream=True)),
            ("content-length not matching the DATA",
             lambda sid: c.headers(sid, request_headers([("content-length", "3")])) +
             frame(DATA, END_STREAM, sid, b"12345")),
        ]
        sid = 1
        for title, make in cases:
            c.send(make(sid))
            try:
                c.expect_rst(sid, [PROTOCOL_ERROR])
            except Fail as e:
                raise Fail("%s: %s" % (title, e))
            sid += 2
        raw_send(c, sid, b"after malformed requests")
    finally:
        c.close()


def case_goaway_from_client(host, port, timeout):
    # RFC 9113 §6.8: after the client's GOAWAY the server finishes and closes.
    c = Conn(host, port, timeout)
    try:
        raw_send(c, 1, b"before goaway")
        c.send(frame(GOAWAY, 0, 0, struct.pack("!II", 0, NO_ERROR)))
        while True:
            try:
                c.recv_frame()
            except Eof:
                return
    finally:
        c.close()


CASES = [
    # id, title, function, timeout (s)
    ("1.1", "a valid lane7 Send over raw frames", case_valid_send, 10),
    ("3.4.1", "a wrong client preface", case_bad_preface, 10),
    ("3.4.2", "an HTTP/1.1 request instead of the preface", case_http1_request, 10),
    ("3.4.3", "a preface whose first frame is not SETTINGS", case_preface_not_settings, 10),
    ("4.1", "frames of an unknown type are ignored", case_unknown_frame_ignored, 10),
    ("4.2", "a DATA frame over SETTINGS_MAX_FRAME_SIZE", case_frame_too_large, 10),
    ("5.1.1", "a decreasing stream id", case_stream_id_decreasing, 10),
    ("5.1.2", "a stream id used again", case_stream_id_reuse, 10),
    ("5.1.3", "an even stream id from the client", case_stream_id_even, 10),
    ("5.1.4", "DATA on an idle stream", case_data_on_idle_stream, 10),
    ("5.1.5", "more streams than SETTINGS_MAX_CONCURRENT_STREAMS", case_too_many_streams, 20),
    ("5.1.6", "DATA after END_STREAM", case_data_after_end_stream, 10),
    ("5.3.1", "a stream depending on itself", case_priority_self_dependency, 10),
    ("6.2", "HEADERS on stream 0", case_headers_on_stream_zero, 10),
    ("6.5.1", "SETTINGS is acknowledged", case_settings_ack, 10),
    ("6.5.2", "a SETTINGS ACK with a payload", case_settings_ack_with_payload, 10),
    ("6.5.3", "a SETTINGS length not a multiple of 6", case_settings_bad_length, 10),
    ("6.5.4", "SETTINGS values out of range", case_settings_bad_values, 20),
    ("6.5.5", "SETTINGS on a stream", case_settings_on_stream, 10),
    ("6.7", "PING is answered; a short PING is a FRAME_SIZE_ERROR", case_ping, 10),
    ("6.8", "the client's GOAWAY", case_goaway_from_client, 10),
    ("6.9.1", "a WINDOW_UPDATE overflowing the connection window",
     case_window_overflow_connection, 10),
    ("6.9.2", "a WINDOW_UPDATE overflowing a stream window", case_window_overflow_stream, 10),
    ("6.9.3", "a WINDOW_UPDATE of 0", case_window_update_zero, 10),
    ("6.9.4", "SETTINGS_INITIAL_WINDOW_SIZE overflowing a stream window",
     case_initial_window_overflow, 10),
    ("6.10.1", "CONTINUATION without HEADERS", case_continuation_orphan, 10),
    ("6.10.2", "another frame inside a header block", case_continuation_interrupted, 10),
    ("6.10.3", "a CONTINUATION flood", case_continuation_flood, 20),
    ("8.1.1", "malformed requests: trailers, TE, pseudo-header order, content-length",
     case_malformed_requests, 10),
    ("8.2.1", "an uppercase field name", case_uppercase_header, 10),
    ("8.2.2", "a connection-specific field", case_connection_header, 10),
    ("8.3.1", "a request without :path", case_request_without_path, 10),
    ("10.5.1", "an HPACK bomb", case_hpack_bomb, 20),
    ("10.5.2", "a header list over SETTINGS_MAX_HEADER_LIST_SIZE", case_oversize_header_list, 20),
    ("10.5.3", "rapid reset: 5,000 HEADERS each reset at once", case_rapid_reset, 60),
]


def run_case(args, fn, timeout):
    try:
        fn(args.host, args.port, timeout)
        h2_send(args.host, args.port, timeout)
        return None
    except Fail as e:
        return str(e)
    except socket.timeout:
        return "timed out (%.0f s)" % timeout
    except Eof:
        return "the server closed the TCP connection unexpectedly"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the initiator's grpc:// port")
    p.add_argument("--timeout-scale", type=float, default=1.0)
    p.add_argument("--cases", default="", help="comma-separated id prefixes to run (all if empty)")
    args = p.parse_args()
    only = [x for x in args.cases.split(",") if x]
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"

    passed = failed = 0
    started = time.monotonic()
    for cid, title, fn, timeout in CASES:
        if only and not any(cid == o or cid.startswith(o + ".") for o in only):
            continue
        err = run_case(args, fn, timeout * args.timeout_scale)
        if err is None:
            print("PASS %s %s" % (cid, title), flush=True)
            passed += 1
        else:
            print("FAIL %s %s: %s" % (cid, title, err), flush=True)
            failed += 1
    print("h2_conformance: %d cases: %d passed, %d failed (%.1f s)"
          % (passed + failed, passed, failed, time.monotonic() - started), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
