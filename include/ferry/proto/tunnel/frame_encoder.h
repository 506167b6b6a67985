// Tunnel protocol v1 encoder: the session builds frames into its own send buffers with these
// free functions. DATA gets a header only; the payload leaves from the caller's buffers (iovecs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ferry/proto/tunnel/frame.h"

namespace ferry::proto::tunnel {

// Every encode_* writes one complete item at the start of `out` and returns the bytes written,
// or 0 (writing nothing useful) when `out` is too small or the arguments cannot be encoded.
// Stream ids and increments are the caller's own state: out-of-range values are bugs (DCHECK),
// not peer input. The caller also keeps each frame within the peer's MaxFrameSize.

inline constexpr size_t kWindowFrameSize = kFrameHeaderSize + 4;
inline constexpr size_t kResetFrameSize = kFrameHeaderSize + 4;
inline constexpr size_t kPingFrameSize = kFrameHeaderSize + 8;

[[nodiscard]] size_t encode_preface(std::span<std::byte> out) noexcept;

// Size of the whole HELLO frame for `settings`; 0 when they cannot be encoded (node_name longer
// than kMaxNodeNameSize, or a value the decoder would reject).
[[nodiscard]] size_t hello_frame_size(const HelloSettings& settings) noexcept;
// Advertises version range 1..1 and every setting explicitly.
[[nodiscard]] size_t encode_hello(std::span<std::byte> out, const HelloSettings& settings) noexcept;

// Size of the whole OPEN frame; 0 when a length does not fit its u16 field or the payload
// exceeds kMaxFrameSizeLimit.
[[nodiscard]] size_t open_frame_size(StreamProtocol protocol, std::string_view routing_key,
                                     std::span<const MetadataEntry> metadata) noexcept;
[[nodiscard]] size_t encode_open(std::span<std::byte> out, uint32_t stream_id,
                                 StreamProtocol protocol, std::string_view routing_key,
                                 std::span<const MetadataEntry> metadata) noexcept;

// Writes only the 12-byte header of a DATA frame carrying `payload_len` bytes.
[[nodiscard]] size_t encode_data_header(std::span<std::byte> out, uint32_t stream_id,
                                        uint32_t payload_len, bool fin) noexcept;

// `stream_id` 0 credits the connection window; `increment` is in 1..kMaxWindowSize.
[[nodiscard]] size_t encode_window(std::span<std::byte> out, uint32_t stream_id,
                                   uint32_t increment) noexcept;
[[nodiscard]] size_t encode_reset(std::span<std::byte> out, uint32_t stream_id,
                                  ErrorCode code) noexcept;
[[nodiscard]] size_t encode_ping(std::span<std::byte> out, bool ack, uint64_t opaque) noexcept;

[[nodiscard]] inline size_t goaway_frame_size(std::string_view debug) noexcept {
    return kFrameHeaderSize + 8 + debug.size();
}
// `debug` is optional UTF-8 text for the peer's log; keep it short (it must fit MaxFrameSize).
[[nodiscard]] size_t encode_goaway(std::span<std::byte> out, uint32_t last_stream_id,
                                   ErrorCode code, std::string_view debug) noexcept;

}  // namespace ferry::proto::tunnel
