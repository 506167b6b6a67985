// RFC 6455 frame encoding: a connection writes frame headers (and whole control frames) into its
// own send buffers with these free functions; data payloads leave from the caller's buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/mask.h"

namespace ferry::proto::ws {

// Writes the header of one frame carrying `payload_len` bytes and returns its size (2 to 14).
// Lengths use the shortest encoding (§5.2). With `mask_key` (a client's frames; §5.3: a fresh
// CSPRNG key per frame, drawn by the caller) the header carries the key and the caller masks
// the payload with apply_mask(payload, key, 0), in one go or piece by piece. A control opcode
// needs fin and payload_len <= 125, and payload_len < 2^63: breaking either is a caller bug.
[[nodiscard]] size_t write_frame_header(std::span<std::byte, kMaxFrameHeaderSize> out, Opcode op,
                                        bool fin, uint64_t payload_len,
                                        std::optional<MaskKey> mask_key) noexcept;

// The longest prefix of `text` of at most `max_size` bytes that does not cut a UTF-8 sequence
// (`text` is assumed to be UTF-8).
[[nodiscard]] std::string_view utf8_prefix(std::string_view text, size_t max_size) noexcept;

// Writes a Close body: `code` big-endian, then as much of `reason` (UTF-8) as fits in 123 bytes,
// cut on a sequence boundary. Returns the size. NoStatusReceived writes the empty body (a Close
// without a code, e.g. to answer one); other codes must pass is_valid_close_code_on_wire()
// (a caller bug otherwise).
[[nodiscard]] size_t write_close_payload(std::span<std::byte, kMaxControlPayload> out,
                                         CloseCode code, std::string_view reason) noexcept;

// Writes a whole control frame (Ping, Pong or Close): header, then `payload`, masked with
// `mask_key` when given. Returns its size, or 0 when `payload` is longer than 125 bytes.
[[nodiscard]] size_t write_control_frame(std::span<std::byte, kMaxControlFrameSize> out, Opcode op,
                                         std::span<const std::byte> payload,
                                         std::optional<MaskKey> mask_key) noexcept;

// A whole Close frame with write_close_payload()'s body.
[[nodiscard]] size_t write_close_frame(std::span<std::byte, kMaxControlFrameSize> out,
                                       CloseCode code, std::string_view reason,
                                       std::optional<MaskKey> mask_key) noexcept;

}  // namespace ferry::proto::ws
