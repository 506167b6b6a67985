// Tunnel protocol v1.1 encoder: the session builds frames into its own send buffers with these
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
// not peer input. The caller also keeps each frame within the peer's MaxFrameSize, and sends the
// v1.1 items (message flags, OPEN_ACK, TRAILERS, RESET reasons) only when Messages was
// negotiated: the encoder does not know what the peer speaks.

inline constexpr size_t kWindowFrameSize = kFrameHeaderSize + 4;
inline constexpr size_t kResetFrameSize = kFrameHeaderSize + 4;  // RESET without a reason
inline constexpr size_t kPingFrameSize = kFrameHeaderSize + 8;

[[nodiscard]] size_t encode_preface(std::span<std::byte> out) noexcept;

// Size of the whole HELLO frame for `settings`; 0 when they cannot be encoded (node_name longer
// than kMaxNodeNameSize, or a value the decoder would reject).
[[nodiscard]] size_t hello_frame_size(const HelloSettings& settings) noexcept;
// Advertises version range 1..1 and every setting explicitly.
[[nodiscard]] size_t encode_hello(std::span<std::byte> out, const HelloSettings& settings) noexcept;

// Size of the whole OPEN frame; 0 when a length does not fit its u16 field or the payload
// exceeds kMaxFrameSizeLimit. Any `protocol` value is encoded as it is.
[[nodiscard]] size_t open_frame_size(StreamProtocol protocol, std::string_view routing_key,
                                     std::span<const MetadataEntry> metadata) noexcept;
[[nodiscard]] size_t encode_open(std::span<std::byte> out, uint32_t stream_id,
                                 StreamProtocol protocol, std::string_view routing_key,
                                 std::span<const MetadataEntry> metadata) noexcept;

// OPEN_ACK (v1.1): accepts the peer's stream `stream_id` with response metadata. Size is 0 when
// a length does not fit its u16 field or the payload exceeds kMaxFrameSizeLimit.
[[nodiscard]] size_t open_ack_frame_size(std::span<const MetadataEntry> metadata) noexcept;
[[nodiscard]] size_t encode_open_ack(std::span<std::byte> out, uint32_t stream_id,
                                     std::span<const MetadataEntry> metadata) noexcept;

// TRAILERS (v1.1): ends this side's direction of `stream_id` (an implicit FIN) with trailing
// metadata; values are raw bytes (`-bin` values unencoded). Sized like OPEN_ACK.
[[nodiscard]] size_t trailers_frame_size(std::span<const MetadataEntry> metadata) noexcept;
[[nodiscard]] size_t encode_trailers(std::span<std::byte> out, uint32_t stream_id,
                                     std::span<const MetadataEntry> metadata) noexcept;

// Writes only the 12-byte header of a DATA frame carrying `payload_len` bytes. `flags` must
// have no reserved bit set (DataFlags::make never sets one).
[[nodiscard]] size_t encode_data_header(std::span<std::byte> out, uint32_t stream_id,
                                        uint32_t payload_len, DataFlags flags) noexcept;
// The byte-stream form (Tcp streams, or any stream without Messages): FIN only.
[[nodiscard]] inline size_t encode_data_header(std::span<std::byte> out, uint32_t stream_id,
                                               uint32_t payload_len, bool fin) noexcept {
    return encode_data_header(out, stream_id, payload_len, DataFlags::make(fin));
}

// `stream_id` 0 credits the connection window; `increment` is in 1..kMaxWindowSize.
[[nodiscard]] size_t encode_window(std::span<std::byte> out, uint32_t stream_id,
                                   uint32_t increment) noexcept;

// Size of a RESET carrying `reason` (empty: kResetFrameSize); 0 when the reason is longer than
// kMaxResetReasonSize.
[[nodiscard]] constexpr size_t reset_frame_size(std::string_view reason) noexcept {
    return reason.size() <= kMaxResetReasonSize ? kResetFrameSize + reason.size() : 0;
}
// `reason` is optional UTF-8 text for the peer (v1.1: send one only with Messages negotiated,
// since a v1 peer rejects a RESET longer than 4 bytes).
[[nodiscard]] size_t encode_reset(std::span<std::byte> out, uint32_t stream_id, ErrorCode code,
                                  std::string_view reason = {}) noexcept;
[[nodiscard]] size_t encode_ping(std::span<std::byte> out, bool ack, uint64_t opaque) noexcept;

[[nodiscard]] inline size_t goaway_frame_size(std::string_view debug) noexcept {
    return kFrameHeaderSize + 8 + debug.size();
}
// `debug` is optional UTF-8 text for the peer's log; keep it short (it must fit MaxFrameSize).
[[nodiscard]] size_t encode_goaway(std::span<std::byte> out, uint32_t last_stream_id,
                                   ErrorCode code, std::string_view debug) noexcept;

}  // namespace ferry::proto::tunnel
