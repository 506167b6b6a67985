// The WebSocket echo peer of `ferry-load serve --mode ws-echo`, without I/O: bytes a client
// sent in, the bytes to answer with out (the 101, echoed messages as server frames, Pong,
// Close). ServerConn (server.cc) moves the bytes; tests drive it in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "echo_session.h"
#include "ferry/proto/http1/request_parser.h"
#include "ferry/proto/ws/frame_parser.h"

namespace ferry::bench {

// Largest message echoed: --size of `ferry-load run` is at most 64 MiB.
inline constexpr uint64_t kWsMaxMessageSize = uint64_t{64} << 20;

// One accepted connection's protocol state, used from the connection's thread only.
// Handshake: an HTTP/1.1 Upgrade request (any path), answered with 101 and the first offered
// subprotocol, or with 400/405/426 and a close. Then every Text/Binary message is reassembled
// into one per-connection buffer (grown to the largest message, never shrunk: no allocation per
// message once warm) and written back whole, with its opcode, as one unmasked frame. Ping is
// answered with Pong (same payload), Close with Close (same code), and a protocol error with
// Close carrying the parser's code; after either Close the connection is closed once `output`
// has been sent.
class WsEchoSession final : public EchoSession {
  public:
    WsEchoSession() noexcept;

    // Takes every byte of `input` (frames are unmasked in place in it) and appends what to
    // answer to output(). Bytes after a Close or an error are ignored.
    [[nodiscard]] Next feed(std::span<std::byte> input) noexcept override;

    [[nodiscard]] std::span<const std::byte> output() const noexcept override { return out_; }
    void clear_output() noexcept override { out_.clear(); }

    [[nodiscard]] bool open() const noexcept { return state_ == State::Open; }

  private:
    enum class State : uint8_t { Handshake, Open, Done };

    // The FrameSink: handlers append to message_ / out_.
    struct Sink {
        WsEchoSession& session;
        void on_message_start(proto::ws::Opcode op) noexcept;
        bool on_data(std::span<const std::byte> bytes, bool fin) noexcept;
        bool on_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    };

    Next feed_handshake(std::span<std::byte> input) noexcept;
    Next feed_frames(std::span<std::byte> input) noexcept;
    void append_frame(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    void append_text(std::span<const char> text) noexcept;

    State state_ = State::Handshake;
    proto::http1::RequestParser request_;
    proto::ws::FrameParser parser_;
    proto::ws::Opcode message_op_ = proto::ws::Opcode::Binary;
    std::vector<std::byte> message_;
    std::vector<std::byte> out_;
};

}  // namespace ferry::bench
