#include "ferry/proto/grpc/tunnel_chunk.h"

#include <algorithm>

namespace ferry::proto::grpc {

namespace {

// Field 1, wire type 2 (length-delimited): (1 << 3) | 2.
constexpr std::byte kDataTag{0x0a};

size_t varint_size(uint32_t v) noexcept {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

}  // namespace

size_t chunk_header_size(uint32_t len) noexcept {
    return len == 0 ? kPrefixSize : kPrefixSize + 1 + varint_size(len);
}

size_t write_chunk_header(std::span<std::byte, kMaxChunkHeaderSize> out, uint32_t len) noexcept {
    const size_t size = chunk_header_size(len);
    write_prefix(out.first<kPrefixSize>(), false, static_cast<uint32_t>(size - kPrefixSize + len));
    if (len == 0) {
        return size;
    }
    out[kPrefixSize] = kDataTag;
    size_t at = kPrefixSize + 1;
    uint32_t v = len;
    while (v >= 0x80) {
        out[at++] = static_cast<std::byte>((v & 0x7F) | 0x80);
        v >>= 7;
    }
    out[at++] = static_cast<std::byte>(v);
    return at;
}

std::span<const std::byte> ChunkReader::header(std::span<const std::byte> piece) noexcept {
    size_t at = 0;
    while (at < piece.size()) {
        switch (field_) {
            case Field::Tag:
                if (piece[at] != kDataTag) {
                    error_ = "tunnel Chunk holds a field other than data";
                    return {};
                }
                ++at;
                --left_;
                varint_ = 0;
                shift_ = 0;
                field_ = Field::Length;
                break;
            case Field::Length: {
                const auto b = static_cast<uint8_t>(piece[at]);
                ++at;
                --left_;
                if (shift_ >= 32 || (shift_ == 28 && (b & 0x70) != 0)) {
                    error_ = "tunnel Chunk length overflows";
                    return {};
                }
                varint_ |= uint32_t{static_cast<uint8_t>(b & 0x7F)} << shift_;
                shift_ = static_cast<uint8_t>(shift_ + 7);
                if ((b & 0x80) == 0) {
                    // The one field fills the message exactly.
                    if (varint_ != left_) {
                        error_ = "tunnel Chunk length disagrees with its message";
                        return {};
                    }
                    field_ = left_ == 0 ? Field::Done : Field::Data;
                }
                break;
            }
            case Field::Data: {
                const size_t take = std::min<size_t>(left_, piece.size() - at);
                left_ -= static_cast<uint32_t>(take);
                if (left_ == 0) {
                    field_ = Field::Done;
                }
                if (at + take != piece.size()) {
                    error_ = "tunnel Chunk longer than its message";  // cannot happen: framed
                    return {};
                }
                return piece.subspan(at, take);
            }
            case Field::Done:
                error_ = "bytes after the tunnel Chunk's data";
                return {};
        }
    }
    return {};
}

}  // namespace ferry::proto::grpc
