// The client side of `ferry-load run --mode ws-rr|ws-verify`, without I/O: writes the Upgrade
// request, checks the 101, frames (masks) each request message and checks the echoed message
// as it arrives. LoadConn (load.cc) moves the bytes; tests drive it against WsEchoSession.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ferry/proto/ws/frame_parser.h"
#include "ferry/proto/ws/mask.h"
#include "ferry/proto/ws/response_head_parser.h"

namespace ferry::bench {

// At most 3 fragments and a Ping per request message.
inline constexpr size_t kMaxFrameKeys = 4;

struct WsClientOptions {
    std::string host;         // Host header, e.g. "127.0.0.1:8080"
    std::string path = "/";   // origin-form request target
    std::string subprotocol;  // offered when not empty; the server must then choose it
    bool text = false;        // Text messages (the payload must be ASCII) instead of Binary
    bool verify = false;      // compare the echoed bytes with the request, not only its length
    // Any whole data message answers the request (ferry's sink answers with JSON, not an echo).
    bool any_reply = false;
};

// One connection's protocol state, used from one thread. Sequence: handshake_request() once,
// feed_handshake() until Open, then for each message frame_message() and feed_echo() until
// MessageDone. Any Error is final: the caller counts it and drops the connection (§4.1 / §7.1.7;
// a load generator does not need to close politely).
class WsClient final {
  public:
    enum class Status : uint8_t {
        NeedMore,     // all input taken; feed more
        Open,         // feed_handshake: the 101 was valid; input[consumed..] are frames
        MessageDone,  // feed_echo: the whole echoed message arrived (and matched); all input taken
        Error,        // see error()
    };
    struct Result {
        size_t consumed;
        Status status;
    };

    // `max_payload` bounds the request payload and sizes the per-connection frame buffer.
    WsClient(const WsClientOptions& options, size_t max_payload);

    // The Upgrade request with the Sec-WebSocket-Key made from `nonce` (16 random bytes); the
    // view is valid until the next frame_message().
    [[nodiscard]] std::span<const std::byte> handshake_request(
        std::span<const std::byte, 16> nonce) noexcept;
    [[nodiscard]] Result feed_handshake(std::span<const std::byte> input) noexcept;

    // The frames of one request message carrying `payload` (Text or Binary per the options),
    // in this client's own buffer: the view is valid until the next call. `payload` itself must
    // stay valid and unchanged until MessageDone (ws-verify compares the echo with it). One
    // masking key per frame (§5.3): with one key, one final frame; with n keys (2 < n <=
    // kMaxFrameKeys), the payload split into n - 1 fragments (Text/Binary, then Continuation)
    // with a Ping, masked with the last key, between the last two, which the server must answer
    // in between (§5.4: control frames may be interleaved with fragments).
    [[nodiscard]] std::span<const std::byte> frame_message(
        std::span<const std::byte> payload, std::span<const proto::ws::MaskKey> keys) noexcept;
    [[nodiscard]] std::span<const std::byte> frame_message(std::span<const std::byte> payload,
                                                           const proto::ws::MaskKey& key) noexcept {
        return frame_message(payload, std::span<const proto::ws::MaskKey>(&key, 1));
    }

    // Server frames in. Pings and Pongs are ignored; a data message is checked against the
    // outstanding request (opcode, length, bytes when verifying) and so is anything arriving
    // with no request outstanding (an error). A Close from the server is an error.
    [[nodiscard]] Result feed_echo(std::span<std::byte> input) noexcept;

    // The reason of the last Error: a static string or one kept in this object.
    [[nodiscard]] std::string_view error() const noexcept { return error_; }

  private:
    struct Sink {
        WsClient& client;
        void on_message_start(proto::ws::Opcode op) noexcept;
        bool on_data(std::span<const std::byte> bytes, bool fin) noexcept;
        bool on_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    };
    Result fail(size_t consumed, std::string_view why) noexcept;

    WsClientOptions options_;
    size_t max_payload_;
    std::unique_ptr<std::byte[]> frame_;  // header + masked payload of the current request
    std::string key_;
    std::string error_;
    proto::ws::ResponseHeadParser response_;
    proto::ws::FrameParser parser_;
    std::span<const std::byte> expected_;  // the outstanding request's payload
    bool outstanding_ = false;
    bool done_ = false;          // the outstanding request's echo completed in this feed
    const char* bad_ = nullptr;  // set by the sink
    uint64_t received_ = 0;      // of the current echoed message
};

}  // namespace ferry::bench
