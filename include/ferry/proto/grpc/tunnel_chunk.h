// The messages of the gRPC tunnel transport (proto/tunnel.proto): each a ferry.tunnel.v1.Chunk,
// that is one protobuf field 1 (tag 0x0a, varint length) wrapping a piece of the tunnel's byte
// stream. Writer: the few header bytes in front of a piece. Reader: DATA bytes in, the pieces'
// bytes out as views of the input. Pure: no I/O, no allocation.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ferry/proto/grpc/message_reader.h"
#include "ferry/proto/grpc/wire.h"

namespace ferry::proto::grpc {

// The 5-byte message prefix, the field tag and a varint of up to 5 bytes.
inline constexpr size_t kMaxChunkHeaderSize = kPrefixSize + 1 + 5;

// Header bytes in front of a piece of `len` bytes (an empty piece is an empty message).
[[nodiscard]] size_t chunk_header_size(uint32_t len) noexcept;
// Writes that header into out[0..chunk_header_size(len)); returns its size.
size_t write_chunk_header(std::span<std::byte, kMaxChunkHeaderSize> out, uint32_t len) noexcept;

template <class S>
concept ChunkSink = requires(S s, std::span<const std::byte> b) {
    // Bytes of the tunnel's stream, a view of the input given to feed. false stops the reader
    // after these bytes.
    { s.on_chunk_data(b) } -> std::same_as<bool>;
};

// Reads Chunk messages from a call's DATA bytes, split anywhere. Strict: a message must be empty
// or exactly one field 1 filling it; anything else (another field, a wire type other than
// length-delimited, a compressed message, a length that disagrees) is an error that stays.
class ChunkReader {
  public:
    explicit ChunkReader(uint32_t max_message_size = kDefaultMaxMessageSize) noexcept
        : messages_(max_message_size) {}

    template <ChunkSink Sink>
    ReadResult feed(std::span<const std::byte> in, Sink& sink) noexcept {
        if (error_ != nullptr) {
            return {0, ReadStatus::Error, StatusCode::Internal, error_};
        }
        Events<Sink> events{this, &sink};
        ReadResult r = messages_.feed(in, events);
        if (error_ != nullptr) {
            return {r.consumed, ReadStatus::Error, StatusCode::Internal, error_};
        }
        if (r.status == ReadStatus::Stopped && !events.stopped) {
            r.status = ReadStatus::NeedMore;  // cannot happen: only the sink stops the reader
        }
        return r;
    }

    // Between messages: the stream may end here.
    [[nodiscard]] bool at_boundary() const noexcept { return messages_.at_boundary(); }

  private:
    enum class Field : uint8_t { Tag, Length, Data, Done };

    template <class Sink>
    struct Events {
        ChunkReader* r;
        Sink* sink;
        bool stopped = false;
        bool on_message_start(MessagePrefix p) noexcept {
            if (p.compressed) {
                r->error_ = "compressed tunnel Chunk";
                return false;
            }
            r->left_ = p.length;
            r->field_ = p.length == 0 ? Field::Done : Field::Tag;
            return true;
        }
        bool on_message_data(std::span<const std::byte> piece, bool end) noexcept {
            const std::span<const std::byte> data = r->header(piece);
            if (r->error_ != nullptr) {
                return false;
            }
            if (end && r->field_ != Field::Done) {
                r->error_ = "truncated tunnel Chunk";
                return false;
            }
            if (!data.empty() && !sink->on_chunk_data(data)) {
                stopped = true;
                return false;
            }
            return true;
        }
    };

    // Takes the field header from the front of `piece`; returns the data bytes in it.
    [[nodiscard]] std::span<const std::byte> header(std::span<const std::byte> piece) noexcept;

    MessageReader messages_;
    uint32_t left_ = 0;    // bytes of the current message not yet looked at
    uint32_t varint_ = 0;  // the field length being read
    uint8_t shift_ = 0;    // bits of it read
    Field field_ = Field::Done;
    const char* error_ = nullptr;
};

}  // namespace ferry::proto::grpc
