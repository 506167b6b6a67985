// RFC 6455 framing vocabulary shared by the WebSocket parser, writer and their callers: opcodes,
// close codes and the size limits of the base framing protocol (§5.2).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::proto::ws {

// RFC 6455 §5.2: 2 bytes, up to 8 of extended length, 4 of masking key.
inline constexpr size_t kMaxFrameHeaderSize = 14;
// RFC 6455 §5.5: control frames carry at most 125 payload bytes and are never fragmented.
inline constexpr size_t kMaxControlPayload = 125;
// A whole control frame as a client sends it (masked).
inline constexpr size_t kMaxControlFrameSize = 2 + 4 + kMaxControlPayload;
// A close payload is a 2-byte code and a UTF-8 reason (§5.5.1).
inline constexpr size_t kMaxCloseReason = kMaxControlPayload - 2;

// RFC 6455 §5.2 / §11.8. 3-7 and 0xB-0xF are reserved and fail the connection.
enum class Opcode : uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

[[nodiscard]] constexpr bool is_control(Opcode op) noexcept {
    return (static_cast<uint8_t>(op) & 0x8) != 0;
}

[[nodiscard]] constexpr bool is_known_opcode(uint8_t op) noexcept {
    return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// RFC 6455 §7.4.1 names, plus the later IANA registrations (1012-1015).
enum class CloseCode : uint16_t {
    NormalClosure = 1000,
    GoingAway = 1001,
    ProtocolError = 1002,
    UnsupportedData = 1003,
    NoStatusReceived = 1005,  // a Close without a code; never on the wire
    AbnormalClosure = 1006,   // the connection dropped without a Close; never on the wire
    InvalidPayload = 1007,    // e.g. a text message that is not UTF-8
    PolicyViolation = 1008,
    MessageTooBig = 1009,
    MandatoryExtension = 1010,  // sent by clients only
    InternalError = 1011,
    ServiceRestart = 1012,
    TryAgainLater = 1013,
    BadGateway = 1014,
    TlsHandshake = 1015,  // never on the wire
};

// Whether a peer may put `code` in a Close frame; any other code fails the connection with
// ProtocolError (RFC 6455 §7.4). Accepted: 1000-1003, 1007-1014 and 3000-4999.
// 1012-1014 are not in RFC 6455 but were registered with IANA later (Service Restart, Try Again
// Later, Bad Gateway) and servers send them; the Autobahn testsuite dropped them from its
// invalid-code cases (7.9.x now tests 0, 999, 1004-1006, 1016, 1100, 2000, 2999). 1015 stays
// invalid: it is registered too, but §7.4.1 says it MUST NOT be sent. 1004 and 1016-2999 are
// reserved for future standards, so a peer cannot mean anything by them yet; 5000 and above are
// outside every range of §7.4.2 (Autobahn 7.13 leaves them to the implementation).
[[nodiscard]] constexpr bool is_valid_close_code_on_wire(uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

}  // namespace ferry::proto::ws
