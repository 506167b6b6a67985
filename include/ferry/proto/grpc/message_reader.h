// Incremental reader of gRPC Length-Prefixed-Messages (PROTOCOL-HTTP2.md): the DATA bytes of
// one call in, each message's start and its payload pieces out to a sink. Pure: no I/O, no
// allocation; pieces are views of the caller's span, so a proxy forwards them without a copy.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ferry/proto/grpc/status.h"
#include "ferry/proto/grpc/wire.h"

namespace ferry::proto::grpc {

// 4 MiB is gRPC's own default receive limit; a proxy takes what its ends take.
inline constexpr uint32_t kDefaultMaxMessageSize = uint32_t{4} << 20;

template <class S>
concept MessageSink = requires(S s, MessagePrefix p, std::span<const std::byte> b, bool end) {
    // A message starts (its prefix is in). false stops the reader before any of its payload.
    { s.on_message_start(p) } -> std::same_as<bool>;
    // A piece of the current message's payload; `end` on its last (an empty message gives one
    // empty piece with end set). false stops the reader after this piece.
    { s.on_message_data(b, end) } -> std::same_as<bool>;
};

// NeedMore: all input was taken. Stopped: the sink returned false; input[consumed..] was not
// looked at. Error: the call must fail with `code` (`detail` a static reason); the reader stays
// failed.
enum class ReadStatus : uint8_t { NeedMore, Stopped, Error };

struct ReadResult {
    size_t consumed;
    ReadStatus status;
    StatusCode code;     // meaningful only for Error
    const char* detail;  // null unless Error
};

class MessageReader {
  public:
    explicit MessageReader(uint32_t max_message_size = kDefaultMaxMessageSize) noexcept
        : max_(max_message_size) {}

    template <MessageSink Sink>
    ReadResult feed(std::span<const std::byte> in, Sink& sink) noexcept {
        size_t at = 0;
        if (failed_) {
            return error(0, failed_code_, failed_detail_);
        }
        while (at < in.size() || (in_payload_ && remaining_ == 0)) {
            if (!in_payload_) {
                const size_t take = std::min(kPrefixSize - have_, in.size() - at);
                for (size_t i = 0; i < take; ++i) {
                    prefix_[have_ + i] = in[at + i];
                }
                have_ = static_cast<uint8_t>(have_ + take);
                at += take;
                if (have_ < kPrefixSize) {
                    break;
                }
                have_ = 0;
                const auto flag = static_cast<uint8_t>(prefix_[0]);
                const uint32_t length = (uint32_t{static_cast<uint8_t>(prefix_[1])} << 24) |
                                        (uint32_t{static_cast<uint8_t>(prefix_[2])} << 16) |
                                        (uint32_t{static_cast<uint8_t>(prefix_[3])} << 8) |
                                        uint32_t{static_cast<uint8_t>(prefix_[4])};
                if (flag > 1) {
                    return fail(at, StatusCode::Internal, "invalid gRPC compressed flag");
                }
                if (length > max_) {
                    return fail(at, StatusCode::ResourceExhausted,
                                "gRPC message larger than the maximum message size");
                }
                in_payload_ = true;
                remaining_ = length;
                if (!sink.on_message_start(MessagePrefix{flag == 1, length})) {
                    return {at, ReadStatus::Stopped, StatusCode::Ok, nullptr};
                }
                continue;
            }
            const size_t take = std::min<size_t>(remaining_, in.size() - at);
            remaining_ -= static_cast<uint32_t>(take);
            const bool end = remaining_ == 0;
            if (end) {
                in_payload_ = false;
            }
            const std::span<const std::byte> piece = in.subspan(at, take);
            at += take;
            if (!sink.on_message_data(piece, end)) {
                return {at, ReadStatus::Stopped, StatusCode::Ok, nullptr};
            }
        }
        return {at, ReadStatus::NeedMore, StatusCode::Ok, nullptr};
    }

    // True between messages: the call's request may end here (END_STREAM inside a message is
    // an INTERNAL error for the caller to report).
    [[nodiscard]] bool at_boundary() const noexcept { return !in_payload_ && have_ == 0; }
    [[nodiscard]] uint32_t max_message_size() const noexcept { return max_; }

  private:
    ReadResult fail(size_t at, StatusCode code, const char* detail) noexcept {
        failed_ = true;
        failed_code_ = code;
        failed_detail_ = detail;
        return error(at, code, detail);
    }
    static ReadResult error(size_t at, StatusCode code, const char* detail) noexcept {
        return {at, ReadStatus::Error, code, detail};
    }

    uint32_t max_;
    uint32_t remaining_ = 0;  // payload bytes of the current message still to come
    std::byte prefix_[kPrefixSize]{};
    uint8_t have_ = 0;  // prefix bytes collected
    bool in_payload_ = false;
    bool failed_ = false;
    StatusCode failed_code_ = StatusCode::Ok;
    const char* failed_detail_ = nullptr;
};

}  // namespace ferry::proto::grpc
