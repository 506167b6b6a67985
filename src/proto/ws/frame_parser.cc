#include "ferry/proto/ws/frame_parser.h"

#include "ferry/base/check.h"

namespace ferry::proto::ws {
namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kRsvBits = 0x70;
constexpr uint8_t kOpcodeBits = 0x0f;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7f;
constexpr uint8_t kLength16 = 126;
constexpr uint8_t kLength64 = 127;

uint8_t byte_at(const std::array<std::byte, kMaxFrameHeaderSize>& h, size_t i) noexcept {
    return std::to_integer<uint8_t>(h[i]);
}

constexpr FrameError kOk{CloseCode::NormalClosure, nullptr};

FrameError protocol_error(const char* detail) noexcept {
    return {CloseCode::ProtocolError, detail};
}

}  // namespace

FrameError parse_close_payload(std::span<const std::byte> payload, CloseInfo* out) noexcept {
    if (payload.empty()) {
        *out = {CloseCode::NoStatusReceived, {}};
        return kOk;
    }
    // RFC 6455 §5.5.1: a body starts with a 2-byte code, so 1 byte cannot be one.
    if (payload.size() == 1) {
        return protocol_error("close frame with a 1-byte payload");
    }
    const auto code = static_cast<uint16_t>((std::to_integer<unsigned>(payload[0]) << 8) |
                                            std::to_integer<unsigned>(payload[1]));
    if (!is_valid_close_code_on_wire(code)) {
        return protocol_error("close frame with an invalid close code");
    }
    const std::span<const std::byte> reason = payload.subspan(2);
    // §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails the connection with 1007.
    if (!is_valid_utf8(reason)) {
        return {CloseCode::InvalidPayload, "close reason is not valid UTF-8"};
    }
    *out = {static_cast<CloseCode>(code),
            {reinterpret_cast<const char*>(reason.data()), reason.size()}};
    return kOk;
}

FrameError FrameParser::check_first_bytes() const noexcept {
    const uint8_t b0 = byte_at(header_, 0);
    const uint8_t b1 = byte_at(header_, 1);
    const uint8_t op = b0 & kOpcodeBits;
    const bool control = (op & 0x8) != 0;
    // RFC 6455 §5.2: RSV bits are 0 unless a negotiated extension defines them; the extensions
    // ferry could negotiate (permessage-deflate, RFC 7692 §6.1) define none for control frames.
    if ((b0 & kRsvBits) != 0 && (!options_.allow_rsv || control)) {
        return protocol_error("RSV bit set without a negotiated extension");
    }
    if (!is_known_opcode(op)) {
        return protocol_error("reserved opcode");
    }
    if (control) {
        // §5.5: control frames are never fragmented and carry at most 125 bytes (so never an
        // extended length).
        if ((b0 & kFin) == 0) {
            return protocol_error("fragmented control frame");
        }
        if ((b1 & kLengthBits) > kMaxControlPayload) {
            return protocol_error("control frame payload longer than 125 bytes");
        }
        if (static_cast<Opcode>(op) == Opcode::Close && (b1 & kLengthBits) == 1) {
            return protocol_error("close frame with a 1-byte payload");
        }
    }
    // §5.1: a server fails the connection on an unmasked frame, a client on a masked one.
    const bool masked = (b1 & kMaskBit) != 0;
    if (options_.role == Role::Server && !masked) {
        return protocol_error("unmasked frame from a client");
    }
    if (options_.role == Role::Client && masked) {
        return protocol_error("masked frame from a server");
    }
    // §5.4: fragments of one message are contiguous; only control frames go between them.
    if (!control) {
        if (static_cast<Opcode>(op) == Opcode::Continuation && !in_message_) {
            return protocol_error("continuation frame without a message to continue");
        }
        if (static_cast<Opcode>(op) != Opcode::Continuation && in_message_) {
            return protocol_error("new message before the fragmented one ended");
        }
    }
    return kOk;
}

FrameError FrameParser::decode_header() noexcept {
    const uint8_t b0 = byte_at(header_, 0);
    const uint8_t b1 = byte_at(header_, 1);
    opcode_ = static_cast<Opcode>(b0 & kOpcodeBits);
    fin_ = (b0 & kFin) != 0;
    masked_ = (b1 & kMaskBit) != 0;
    uint64_t length = b1 & kLengthBits;
    size_t pos = 2;
    if (length == kLength16) {
        length = (uint64_t{byte_at(header_, 2)} << 8) | byte_at(header_, 3);
        pos = 4;
    } else if (length == kLength64) {
        length = 0;
        for (size_t i = 2; i < 10; ++i) {
            length = (length << 8) | byte_at(header_, i);
        }
        pos = 10;
        // §5.2: the most significant bit of a 64-bit length MUST be 0.
        if ((length >> 63) != 0) {
            return protocol_error("64-bit payload length with the most significant bit set");
        }
    }
    if (masked_) {
        std::memcpy(mask_.data(), header_.data() + pos, mask_.size());
    }
    remaining_ = length;
    phase_ = 0;
    if (is_control(opcode_)) {
        return kOk;
    }
    if (opcode_ != Opcode::Continuation) {
        in_message_ = true;
        message_size_ = 0;
        message_rsv_ = b0 & kRsvBits;
        check_utf8_ = opcode_ == Opcode::Text && message_rsv_ == 0;
        utf8_.reset();
    }
    // Subtracting keeps the running total from overflowing whatever the peer announces.
    if (length > options_.max_message_size - message_size_) {
        return {CloseCode::MessageTooBig, "message larger than max_message_size"};
    }
    message_size_ += length;
    return kOk;
}

FrameParser::HeaderStep FrameParser::take_header(std::byte*& p, std::byte* end) noexcept {
    // Header bytes are always collected in header_ (at most 14 per frame), so one code path
    // serves every split and errors surface at the same byte however the input was cut.
    if (have_ < 2) {
        const size_t n = std::min<size_t>(2U - have_, static_cast<size_t>(end - p));
        std::memcpy(header_.data() + have_, p, n);
        have_ = static_cast<uint8_t>(have_ + n);
        p += n;
        if (have_ < 2) {
            return HeaderStep::NeedMore;
        }
        // The first two bytes say what is wrong with most bad frames: fail before the rest.
        if (const FrameError e = check_first_bytes(); e.detail != nullptr) {
            fail(e.code, e.detail);
            return HeaderStep::Fail;
        }
        const uint8_t b1 = byte_at(header_, 1);
        const uint8_t length = b1 & kLengthBits;
        need_ =
            static_cast<uint8_t>(2 + (length == kLength16 ? 2 : 0) + (length == kLength64 ? 8 : 0) +
                                 ((b1 & kMaskBit) != 0 ? 4 : 0));
    }
    const size_t n = std::min<size_t>(need_ - have_, static_cast<size_t>(end - p));
    if (n != 0) {
        std::memcpy(header_.data() + have_, p, n);
    }
    have_ = static_cast<uint8_t>(have_ + n);
    p += n;
    if (have_ < need_) {
        return HeaderStep::NeedMore;
    }
    have_ = 0;
    if (const FrameError e = decode_header(); e.detail != nullptr) {
        fail(e.code, e.detail);
        return HeaderStep::Fail;
    }
    return HeaderStep::Ready;
}

FrameParser::Step FrameParser::fail(CloseCode code, const char* detail) noexcept {
    FERRY_DCHECK(detail != nullptr);
    state_ = State::Failed;
    error_code_ = code;
    error_detail_ = detail;
    return Step::Fail;
}

ParseResult FrameParser::result(Step step, size_t consumed) const noexcept {
    switch (step) {
        case Step::Stop:
            return {consumed, ParseStatus::Stopped, CloseCode::NormalClosure, nullptr};
        case Step::Close:
            return {consumed, ParseStatus::Closed, CloseCode::NormalClosure, nullptr};
        case Step::Fail:
            return {consumed, ParseStatus::Error, error_code_, error_detail_};
        case Step::Continue:
            break;
    }
    FERRY_BUG("ws parser asked for the result of a step that continues");
    return {consumed, ParseStatus::NeedMore, CloseCode::NormalClosure, nullptr};
}

}  // namespace ferry::proto::ws
