// Incremental RFC 6455 frame parser: bytes received on an upgraded connection in, message and
// control events out to a sink. Pure: no I/O, no clock, no allocation; payloads are unmasked in
// place in the caller's buffer and handed out as views of it.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/mask.h"
#include "ferry/proto/ws/utf8_validator.h"

namespace ferry::proto::ws {

// The parser transforms in place (unmasking) and never writes outside the span it is given, so
// receive buffers need no headroom or tailroom (uWS's CONSUME_*_PADDING are 0 here).
inline constexpr size_t kParserHeadroom = 0;
inline constexpr size_t kParserTailroom = 0;

// Autobahn case 9 sends messages of up to 16 MiB; this accepts them and nothing larger.
inline constexpr uint64_t kDefaultMaxMessageSize = uint64_t{16} << 20;

// Which end of the connection this parser reads for (RFC 6455 §5.1).
enum class Role : uint8_t {
    Server,  // reads a client: every frame must be masked
    Client,  // reads a server: no frame may be masked
};

struct ParserOptions {
    Role role = Role::Server;
    // Largest message accepted, counted over all its fragments. A frame whose header announces
    // more is MessageTooBig (1009) before any of its payload is read.
    uint64_t max_message_size = kDefaultMaxMessageSize;
    // Set only when an extension defining RSV bits was negotiated (§5.2, §9). Then data frames
    // may carry them (control frames still may not), message_rsv() reports those of a message's
    // first frame, and a text message with RSV bits is not checked as UTF-8: its payload is the
    // extension's encoding, which the caller decodes and checks. Otherwise any RSV bit is 1002.
    bool allow_rsv = false;
};

// NeedMore: all input was taken (consumed == input.size()); feed the next bytes when they come.
// Stopped: the sink returned false; input[consumed..] was not looked at and is fed again later.
// Closed: a valid Close frame was delivered; consumed ends right after it. RFC 6455 §5.5.1: the
// peer sends nothing after Close, so the parser takes nothing more (feed returns Closed, 0).
// Error: fail the connection (§7.1.7): send Close with `code` and close the TCP connection;
// `detail` is a static reason for the log (short enough to be the Close reason). The parser
// stays failed. `consumed` then ends right after the byte that showed the error.
enum class ParseStatus : uint8_t { NeedMore, Stopped, Closed, Error };

struct ParseResult {
    size_t consumed;
    ParseStatus status;
    CloseCode code;      // meaningful only for Error
    const char* detail;  // null unless Error
};

// A sink-independent check: `detail` is null when it passes, else a static reason and the close
// code to fail with.
struct FrameError {
    CloseCode code;
    const char* detail;
};

struct CloseInfo {
    CloseCode code;           // NoStatusReceived when the payload is empty
    std::string_view reason;  // points into the payload; valid UTF-8
};

// Validates an (unmasked) Close payload, RFC 6455 §5.5.1 and §7.4: empty, or a 2-byte code that
// is_valid_close_code_on_wire() accepts followed by a UTF-8 reason. 1 byte or a bad code is
// ProtocolError, a reason that is not UTF-8 is InvalidPayload. `out` is set only on success.
[[nodiscard]] FrameError parse_close_payload(std::span<const std::byte> payload,
                                             CloseInfo* out) noexcept;

// Receives parsed events, synchronously inside feed(); handlers must not call feed() on the same
// parser. Views are valid during the call only: they point into the span passed to feed() (or
// into the parser, for a control payload that straddled feeds).
// clang-format off
template <typename S>
concept FrameSink = requires(S& sink, Opcode op, std::span<const std::byte> bytes, bool fin) {
    // A Text or Binary message begins (its first frame's header was read). It cannot stop the
    // parser: the message's data follows.
    { sink.on_message_start(op) } noexcept -> std::same_as<void>;
    // The next unmasked piece of the current message, in order; a frame may come in many pieces
    // and a message in many frames. `fin` is true on the last piece of the message only. Pieces
    // are never empty, except for the final call of a message whose last frame is empty. Text
    // pieces are UTF-8 so far (a sequence may straddle pieces) and complete when `fin` is set.
    // Returns false to stop right after this piece.
    { sink.on_data(bytes, fin) } noexcept -> std::same_as<bool>;
    // A whole, unmasked Ping, Pong or Close payload (0-125 bytes); a Close payload has passed
    // parse_close_payload(), and the parser stops after it whatever this returns. Control frames
    // may arrive between the frames of a message. Returns false to stop right after it.
    { sink.on_control(op, bytes) } noexcept -> std::same_as<bool>;
};
// clang-format on

// One parser per WebSocket connection, used from the connection's shard only; about 210 bytes of
// state, no allocation. Checked here (each failure names its close code): reserved opcodes and
// RSV bits, masking by role, control frames fragmented or over 125 bytes, fragmentation order
// (a continuation with no message open, a new message inside one), 64-bit lengths with the top
// bit set, max_message_size, Close payloads, and UTF-8 of text messages, incrementally, failing
// at the first invalid byte. Not checked: non-minimal length encodings are accepted (§5.2 says
// the minimal one MUST be used, but rejecting them protects nothing and Autobahn does not test
// it). What to answer (Pong, the closing handshake) is the caller's.
class FrameParser final {
  public:
    explicit FrameParser(const ParserOptions& options = {}) noexcept : options_(options) {}

    // Parses as much of `input` as possible. Bytes before `consumed` may have been unmasked in
    // place; bytes after it are untouched, so after Stopped the caller feeds input[consumed..]
    // again as it is (after an Error, the rest of the piece holding the bad byte may have been
    // unmasked too).
    template <FrameSink Sink>
    [[nodiscard]] ParseResult feed(std::span<std::byte> input, Sink& sink) noexcept;

    [[nodiscard]] bool failed() const noexcept { return state_ == State::Failed; }
    [[nodiscard]] bool closed() const noexcept { return state_ == State::Closed; }
    // A message has started and its final frame has not been fully read.
    [[nodiscard]] bool in_message() const noexcept { return in_message_; }
    // Nothing of a frame is buffered or owed.
    [[nodiscard]] bool at_frame_boundary() const noexcept {
        return state_ == State::Header && have_ == 0;
    }
    // RSV bits (0x70 mask of the first byte) of the current message's first frame; always 0
    // unless allow_rsv.
    [[nodiscard]] uint8_t message_rsv() const noexcept { return message_rsv_; }
    [[nodiscard]] const ParserOptions& options() const noexcept { return options_; }

  private:
    enum class State : uint8_t { Header, Data, Control, Closed, Failed };
    enum class Step : uint8_t { Continue, Stop, Close, Fail };
    enum class HeaderStep : uint8_t { NeedMore, Ready, Fail };

    // Out of line (frame_parser.cc), the same for every sink. take_header collects the header
    // from [p, end), checks it as soon as each part is in, and on Ready has decoded it into the
    // current-frame members and updated the message state.
    HeaderStep take_header(std::byte*& p, std::byte* end) noexcept;
    [[nodiscard]] FrameError check_first_bytes() const noexcept;
    [[nodiscard]] FrameError decode_header() noexcept;
    Step fail(CloseCode code, const char* detail) noexcept;
    [[nodiscard]] ParseResult result(Step step, size_t consumed) const noexcept;
    static Step next(bool keep_going) noexcept { return keep_going ? Step::Continue : Step::Stop; }

    template <FrameSink Sink>
    Step on_header(std::byte*& p, std::byte* end, Sink& sink) noexcept;
    template <FrameSink Sink>
    Step on_payload(std::byte*& p, std::byte* end, Sink& sink) noexcept;
    template <FrameSink Sink>
    Step on_control_bytes(std::byte*& p, std::byte* end, Sink& sink) noexcept;
    template <FrameSink Sink>
    Step deliver_control(std::span<std::byte> payload, Sink& sink) noexcept;
    template <FrameSink Sink>
    Step end_message(std::span<const std::byte> last_piece, Sink& sink) noexcept;

    ParserOptions options_;
    uint64_t remaining_ = 0;     // payload bytes of the current frame not yet taken
    uint64_t message_size_ = 0;  // payload of the current message, counted from frame headers
    const char* error_detail_ = nullptr;
    CloseCode error_code_ = CloseCode::NormalClosure;
    State state_ = State::Header;
    Opcode opcode_ = Opcode::Continuation;  // of the current frame
    uint8_t have_ = 0;                      // header bytes collected in header_
    uint8_t need_ = 2;                      // header size, known once its first 2 bytes are in
    uint8_t phase_ = 0;                     // payload bytes of the frame taken so far, mod 4
    uint8_t control_size_ = 0;
    uint8_t control_have_ = 0;
    uint8_t message_rsv_ = 0;
    bool fin_ = false;
    bool masked_ = false;
    bool in_message_ = false;
    bool check_utf8_ = false;  // the current message is text without extension bits
    MaskKey mask_{};
    Utf8Validator utf8_;
    std::array<std::byte, kMaxFrameHeaderSize> header_{};
    // A control payload that straddles feeds (§5.5: never more than 125 bytes).
    std::array<std::byte, kMaxControlPayload> control_{};
};

template <FrameSink Sink>
ParseResult FrameParser::feed(std::span<std::byte> input, Sink& sink) noexcept {
    if (state_ == State::Failed || state_ == State::Closed) {
        return result(state_ == State::Failed ? Step::Fail : Step::Close, 0);
    }
    std::byte* const begin = input.data();
    std::byte* const end = begin + input.size();
    std::byte* p = begin;
    while (p != end) {
        Step step = Step::Continue;
        switch (state_) {
            case State::Header:
                step = on_header(p, end, sink);
                break;
            case State::Data:
                step = on_payload(p, end, sink);
                break;
            case State::Control:
                step = on_control_bytes(p, end, sink);
                break;
            case State::Closed:
            case State::Failed:
                break;  // the steps entering these states return below
        }
        if (step != Step::Continue) {
            return result(step, static_cast<size_t>(p - begin));
        }
    }
    return {input.size(), ParseStatus::NeedMore, CloseCode::NormalClosure, nullptr};
}

template <FrameSink Sink>
auto FrameParser::on_header(std::byte*& p, std::byte* end, Sink& sink) noexcept -> Step {
    const HeaderStep header = take_header(p, end);
    if (header != HeaderStep::Ready) {
        return header == HeaderStep::Fail ? Step::Fail : Step::Continue;
    }
    if (is_control(opcode_)) {
        const auto size = static_cast<size_t>(remaining_);
        if (static_cast<size_t>(end - p) >= size) {
            // The whole payload is here: unmask and deliver it where it lies.
            const std::span<std::byte> payload(p, size);
            p += size;
            return deliver_control(payload, sink);
        }
        control_size_ = static_cast<uint8_t>(size);
        control_have_ = 0;
        state_ = State::Control;
        return Step::Continue;
    }
    if (opcode_ != Opcode::Continuation) {
        sink.on_message_start(opcode_);
    }
    if (remaining_ > 0) {
        state_ = State::Data;
        return Step::Continue;
    }
    // An empty frame: only the end of a message is worth an event.
    return fin_ ? end_message({}, sink) : Step::Continue;
}

template <FrameSink Sink>
auto FrameParser::on_payload(std::byte*& p, std::byte* end, Sink& sink) noexcept -> Step {
    const auto n =
        static_cast<size_t>(std::min<uint64_t>(remaining_, static_cast<uint64_t>(end - p)));
    const std::span<std::byte> piece(p, n);
    if (masked_) {
        apply_mask(piece, mask_, phase_);
        phase_ = static_cast<uint8_t>((phase_ + n) & 3);
    }
    if (check_utf8_) {
        if (const size_t valid = utf8_.feed(piece); valid < n) {
            p += valid + 1;  // RFC 6455 §8.1: fail as soon as the bytes are known to be invalid
            return fail(CloseCode::InvalidPayload, "text message is not valid UTF-8");
        }
    }
    p += n;
    remaining_ -= n;
    if (remaining_ > 0) {
        return next(sink.on_data(piece, false));
    }
    state_ = State::Header;
    return fin_ ? end_message(piece, sink) : next(sink.on_data(piece, false));
}

template <FrameSink Sink>
auto FrameParser::on_control_bytes(std::byte*& p, std::byte* end, Sink& sink) noexcept -> Step {
    const size_t n = std::min<size_t>(control_size_ - control_have_, static_cast<size_t>(end - p));
    std::memcpy(control_.data() + control_have_, p, n);
    control_have_ = static_cast<uint8_t>(control_have_ + n);
    p += n;
    if (control_have_ < control_size_) {
        return Step::Continue;
    }
    state_ = State::Header;
    return deliver_control({control_.data(), control_size_}, sink);
}

template <FrameSink Sink>
auto FrameParser::deliver_control(std::span<std::byte> payload, Sink& sink) noexcept -> Step {
    if (masked_) {
        apply_mask(payload, mask_, 0);
    }
    if (opcode_ != Opcode::Close) {
        return next(sink.on_control(opcode_, payload));
    }
    CloseInfo info{};
    if (const FrameError e = parse_close_payload(payload, &info); e.detail != nullptr) {
        return fail(e.code, e.detail);
    }
    state_ = State::Closed;
    (void)sink.on_control(opcode_, payload);
    return Step::Close;
}

template <FrameSink Sink>
auto FrameParser::end_message(std::span<const std::byte> last_piece, Sink& sink) noexcept -> Step {
    if (check_utf8_ && !utf8_.is_complete()) {
        return fail(CloseCode::InvalidPayload, "text message ends inside a UTF-8 sequence");
    }
    in_message_ = false;
    return next(sink.on_data(last_piece, true));
}

}  // namespace ferry::proto::ws
