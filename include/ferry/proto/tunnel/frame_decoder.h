// Incremental tunnel protocol v1.1 decoder: decrypted bytes from the tunnel connection in, typed
// frame events out to a session sink. Pure: no I/O, no clock, no allocation after construction.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "ferry/base/check.h"
#include "ferry/proto/tunnel/frame.h"

namespace ferry::proto::tunnel {

// The sink-independent rules, out of line: they are the same for every FrameDecoder<Sink>.
// `detail` is null when the check passes, else a static reason.
struct FrameError {
    ErrorCode code;
    const char* detail;
};

// Header rules other than the size limit: reserved bits, HELLO first and once, stream-id
// placement, fixed payload lengths and minimum lengths (FrameSizeError: a RESET shorter than 4,
// an OPEN_ACK or TRAILERS too short for its u16 count). `header` holds kFrameHeaderSize bytes.
[[nodiscard]] FrameError check_frame_header(const std::byte* header, bool hello_seen) noexcept;
// Variable-layout payloads of a header that passed; views in `out` point into `payload`.
[[nodiscard]] FrameError decode_hello_payload(std::span<const std::byte> payload,
                                              Hello* out) noexcept;
[[nodiscard]] FrameError decode_open_payload(std::span<const std::byte> payload,
                                             Open* out) noexcept;
// The metadata list shared by OPEN, OPEN_ACK and TRAILERS: u16 count, then count entries, which
// must fill `list` exactly. An overrun (a count too large included) or trailing bytes is a
// ProtocolError whose detail names `frame` ("malformed OPEN_ACK (trailing bytes)").
[[nodiscard]] FrameError decode_metadata_list(std::span<const std::byte> list, FrameType frame,
                                              MetadataView* out) noexcept;

// Receives decoded frames. Each handler returns false to stop decoding right after this event
// (feed then returns Stopped). Handlers run synchronously inside feed() and must not call feed()
// on the same decoder. Views passed to them are valid during the call only.
// The decoder delivers every frame type it knows whatever was negotiated: checking that OPEN_ACK,
// TRAILERS, message flags and RESET reasons were allowed (Messages) is the session's job.
// clang-format off
template <typename S>
concept FrameSink = requires(S& sink, const Hello& hello, const Open& open, uint32_t u32,
                             std::span<const std::byte> piece, DataFlags data_flags, bool flag,
                             ErrorCode code, uint64_t u64, std::string_view text,
                             const MetadataView& metadata) {
    { sink.on_hello(hello) } noexcept -> std::same_as<bool>;
    { sink.on_open(u32, open) } noexcept -> std::same_as<bool>;
    // `piece` points into the span given to feed() (never copied); a frame spanning several
    // feeds arrives in several pieces. Every piece carries the frame's kind bits; FIN and
    // END_MESSAGE are set only on the last piece of a frame that has them; reserved bits are
    // always clear. A zero-length frame gives one call with an empty piece and all its flags;
    // other pieces are never empty.
    { sink.on_data(u32, piece, data_flags) } noexcept -> std::same_as<bool>;
    { sink.on_window(u32, u32) } noexcept -> std::same_as<bool>;
    // `text` is the optional reason (v1.1), empty when the RESET has none.
    { sink.on_reset(u32, code, text) } noexcept -> std::same_as<bool>;
    { sink.on_ping(flag, u64) } noexcept -> std::same_as<bool>;
    { sink.on_goaway(u32, code, text) } noexcept -> std::same_as<bool>;
    { sink.on_open_ack(u32, metadata) } noexcept -> std::same_as<bool>;
    // TRAILERS also ends the sender's direction of the stream (an implicit FIN).
    { sink.on_trailers(u32, metadata) } noexcept -> std::same_as<bool>;
};
// clang-format on

// One decoder per tunnel connection, used from the connection's shard only. feed() consumes all
// input unless the sink stops it or the peer breaks the protocol; after an Error every later
// feed() returns the same error. Checked here: preface, HELLO first and once, header reserved
// bits, frame size, stream-id placement, fixed and minimum lengths and payload layout. Stream
// state, stream id ordering and flow control belong to the session. Not movable: results may
// point into it.
template <FrameSink Sink>
class FrameDecoder final {
  public:
    // `max_frame_size` is the MaxFrameSize this side advertises, in
    // [kDefaultMaxFrameSize, kMaxFrameSizeLimit]; the control-payload buffer has this size.
    explicit FrameDecoder(Sink& sink, uint32_t max_frame_size = kDefaultMaxFrameSize) noexcept
        : sink_(sink),
          control_(std::make_unique_for_overwrite<std::byte[]>(max_frame_size)),
          max_frame_size_(max_frame_size) {
        FERRY_CHECK(max_frame_size >= kDefaultMaxFrameSize && max_frame_size <= kMaxFrameSizeLimit);
    }
    FrameDecoder(const FrameDecoder&) = delete;
    FrameDecoder& operator=(const FrameDecoder&) = delete;

    [[nodiscard]] DecodeResult feed(std::span<const std::byte> input) noexcept;

    [[nodiscard]] bool failed() const noexcept { return state_ == State::Failed; }
    [[nodiscard]] bool hello_received() const noexcept { return hello_seen_; }
    // True between frames: nothing of a frame is buffered or owed (used to drain cleanly).
    [[nodiscard]] bool at_frame_boundary() const noexcept {
        return state_ == State::Header && have_ == 0;
    }
    [[nodiscard]] uint32_t max_frame_size() const noexcept { return max_frame_size_; }

  private:
    enum class State : uint8_t { Preface, Header, Control, Data, Skip, Failed };
    enum class Step : uint8_t { Continue, Stop, Fail };

    Step on_preface(const std::byte*& p, const std::byte* end) noexcept;
    Step on_header(const std::byte* header, const std::byte*& p, const std::byte* end) noexcept;
    Step on_control(std::span<const std::byte> payload) noexcept;
    Step fail(ErrorCode code, const char* detail) noexcept {
        state_ = State::Failed;
        error_code_ = code;
        error_detail_ = detail;
        return Step::Fail;
    }
    static Step next(bool keep_going) noexcept { return keep_going ? Step::Continue : Step::Stop; }

    Sink& sink_;
    // Holds a control payload that straddles feeds; after a failure it holds the formatted detail.
    std::unique_ptr<std::byte[]> control_;
    const char* error_detail_ = nullptr;
    uint32_t max_frame_size_;
    uint32_t length_ = 0;     // payload length of the current frame
    uint32_t remaining_ = 0;  // payload bytes of the current frame not yet seen
    uint32_t stream_id_ = 0;
    ErrorCode error_code_ = ErrorCode::NoError;
    State state_ = State::Preface;
    uint8_t type_ = 0;
    uint8_t flags_ = 0;
    uint8_t have_ = 0;  // bytes of the preface or of header_ received so far
    bool hello_seen_ = false;
    std::byte header_[kFrameHeaderSize] = {};
};

template <FrameSink Sink>
DecodeResult FrameDecoder<Sink>::feed(std::span<const std::byte> input) noexcept {
    const std::byte* const begin = input.data();
    const std::byte* const end = begin + input.size();
    const std::byte* p = begin;
    if (state_ == State::Failed) {
        return {0, DecodeStatus::Error, error_code_, error_detail_};
    }
    while (p != end) {
        const auto avail = static_cast<size_t>(end - p);
        Step step = Step::Continue;
        switch (state_) {
            case State::Preface:
                step = on_preface(p, end);
                break;
            case State::Header: {
                const std::byte* header = p;
                if (have_ == 0 && avail >= kFrameHeaderSize) {
                    p += kFrameHeaderSize;
                } else {
                    const size_t n = std::min<size_t>(kFrameHeaderSize - have_, avail);
                    std::memcpy(header_ + have_, p, n);
                    have_ = static_cast<uint8_t>(have_ + n);
                    p += n;
                    if (have_ < kFrameHeaderSize) {
                        break;
                    }
                    have_ = 0;
                    header = header_;
                }
                step = on_header(header, p, end);
                break;
            }
            case State::Control: {
                const size_t n = std::min<size_t>(remaining_, avail);
                std::memcpy(control_.get() + (length_ - remaining_), p, n);
                p += n;
                remaining_ -= static_cast<uint32_t>(n);
                if (remaining_ == 0) {
                    state_ = State::Header;
                    step = on_control({control_.get(), length_});
                }
                break;
            }
            case State::Data: {
                const size_t n = std::min<size_t>(remaining_, avail);
                const std::span<const std::byte> piece(p, n);
                p += n;
                remaining_ -= static_cast<uint32_t>(n);
                // The kind goes with every piece; FIN and END_MESSAGE only with the last one.
                auto bits = static_cast<uint8_t>(flags_ & kMessageKindMask);
                if (remaining_ == 0) {
                    state_ = State::Header;
                    bits = flags_;
                }
                step = next(sink_.on_data(stream_id_, piece, DataFlags{bits}));
                break;
            }
            case State::Skip: {
                const size_t n = std::min<size_t>(remaining_, avail);
                p += n;
                remaining_ -= static_cast<uint32_t>(n);
                if (remaining_ == 0) {
                    state_ = State::Header;
                }
                break;
            }
            case State::Failed:
                break;
        }
        if (step == Step::Stop) {
            return {static_cast<size_t>(p - begin), DecodeStatus::Stopped, ErrorCode::NoError,
                    nullptr};
        }
        if (step == Step::Fail) {
            return {static_cast<size_t>(p - begin), DecodeStatus::Error, error_code_,
                    error_detail_};
        }
    }
    return {input.size(), DecodeStatus::Ok, ErrorCode::NoError, nullptr};
}

template <FrameSink Sink>
auto FrameDecoder<Sink>::on_preface(const std::byte*& p, const std::byte* end) noexcept -> Step {
    while (p != end && have_ < kPrefaceSize) {
        if (*p != kPreface[have_]) {
            // Only a mismatch on the first byte says what the peer speaks instead.
            const auto first = std::to_integer<uint8_t>(*p);
            if (have_ == 0 && first == 0x16) {
                return fail(ErrorCode::BadPreface,
                            "not a ferry tunnel (bad preface: looks like a TLS handshake)");
            }
            if (have_ == 0 && first >= 'A' && first <= 'Z') {
                return fail(ErrorCode::BadPreface,
                            "not a ferry tunnel (bad preface: looks like plaintext HTTP)");
            }
            return fail(ErrorCode::BadPreface, "not a ferry tunnel (bad preface)");
        }
        ++have_;
        ++p;
    }
    if (have_ == kPrefaceSize) {
        have_ = 0;
        state_ = State::Header;
    }
    return Step::Continue;
}

template <FrameSink Sink>
auto FrameDecoder<Sink>::on_header(const std::byte* header, const std::byte*& p,
                                   const std::byte* end) noexcept -> Step {
    length_ = wire::load_u32(header);
    type_ = std::to_integer<uint8_t>(header[4]);
    flags_ = std::to_integer<uint8_t>(header[5]);
    stream_id_ = wire::load_u32(header + 8);

    if (length_ > max_frame_size_) {
        // The failed decoder never touches control_ again, so it can hold the detail text.
        auto* text = reinterpret_cast<char*>(control_.get());
        std::snprintf(text, max_frame_size_, "frame length %u exceeds max_frame_size %u",
                      static_cast<unsigned>(length_), static_cast<unsigned>(max_frame_size_));
        return fail(ErrorCode::FrameSizeError, text);
    }
    if (const FrameError e = check_frame_header(header, hello_seen_); e.detail != nullptr) {
        return fail(e.code, e.detail);
    }
    switch (static_cast<FrameType>(type_)) {
        case FrameType::Data:
            flags_ = static_cast<uint8_t>(flags_ & kDataFlagsDefined);  // reserved bits: ignored
            remaining_ = length_;
            if (length_ == 0) {
                return next(sink_.on_data(stream_id_, {}, DataFlags{flags_}));
            }
            state_ = State::Data;
            return Step::Continue;
        case FrameType::Hello:
        case FrameType::Open:
        case FrameType::Window:
        case FrameType::Reset:
        case FrameType::Ping:
        case FrameType::GoAway:
        case FrameType::OpenAck:
        case FrameType::Trailers:
            break;
        default:
            // Unknown and reserved types are skipped so later versions can add frames.
            remaining_ = length_;
            state_ = length_ == 0 ? State::Header : State::Skip;
            return Step::Continue;
    }
    // Control frame: decode in place when the whole payload is here, else collect it.
    if (static_cast<size_t>(end - p) >= length_) {
        const std::span<const std::byte> payload(p, length_);
        p += length_;
        return on_control(payload);
    }
    remaining_ = length_;
    state_ = State::Control;
    return Step::Continue;
}

template <FrameSink Sink>
auto FrameDecoder<Sink>::on_control(std::span<const std::byte> payload) noexcept -> Step {
    state_ = State::Header;
    const std::byte* b = payload.data();
    switch (static_cast<FrameType>(type_)) {
        case FrameType::Hello: {
            Hello hello{};
            if (const FrameError e = decode_hello_payload(payload, &hello); e.detail != nullptr) {
                return fail(e.code, e.detail);
            }
            hello_seen_ = true;
            return next(sink_.on_hello(hello));
        }
        case FrameType::Open: {
            Open open{};
            if (const FrameError e = decode_open_payload(payload, &open); e.detail != nullptr) {
                return fail(e.code, e.detail);
            }
            return next(sink_.on_open(stream_id_, open));
        }
        case FrameType::Window: {
            const uint32_t increment = wire::load_u32(b);
            // RFC 9113 §6.9: a zero increment is a protocol error; the top bit is reserved.
            if (increment == 0 || increment > kMaxWindowSize) {
                return fail(ErrorCode::ProtocolError, "WINDOW increment outside 1..2^31-1");
            }
            return next(sink_.on_window(stream_id_, increment));
        }
        case FrameType::Reset:
            return next(sink_.on_reset(stream_id_, static_cast<ErrorCode>(wire::load_u32(b)),
                                       wire::as_text(b + 4, payload.size() - 4)));
        case FrameType::Ping:
            return next(sink_.on_ping((flags_ & kFlagAck) != 0, wire::load_u64(b)));
        case FrameType::GoAway: {
            const uint32_t last_stream_id = wire::load_u32(b);
            if (last_stream_id > kMaxStreamId) {
                return fail(ErrorCode::ProtocolError, "GOAWAY last stream id has bit 31 set");
            }
            return next(sink_.on_goaway(last_stream_id,
                                        static_cast<ErrorCode>(wire::load_u32(b + 4)),
                                        wire::as_text(b + 8, payload.size() - 8)));
        }
        case FrameType::OpenAck:
        case FrameType::Trailers: {
            const auto type = static_cast<FrameType>(type_);
            MetadataView metadata;
            if (const FrameError e = decode_metadata_list(payload, type, &metadata);
                e.detail != nullptr) {
                return fail(e.code, e.detail);
            }
            return next(type == FrameType::OpenAck ? sink_.on_open_ack(stream_id_, metadata)
                                                   : sink_.on_trailers(stream_id_, metadata));
        }
        case FrameType::Data:
            break;
    }
    FERRY_BUG("tunnel decoder collected a payload for a frame type it does not buffer");
    return fail(ErrorCode::InternalError, "decoder state error");
}

}  // namespace ferry::proto::tunnel
