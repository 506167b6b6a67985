// The gRPC over HTTP/2 wire details that are not HTTP/2 itself (grpc/doc/PROTOCOL-HTTP2.md):
// the 5-byte message prefix, grpc-timeout values, percent-encoded grpc-message, and the
// content-type test. Pure functions, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ferry::proto::grpc {

// Compressed-Flag (1 byte) + Message-Length (4 bytes, big-endian).
inline constexpr size_t kPrefixSize = 5;

struct MessagePrefix {
    bool compressed;
    uint32_t length;
};

// Writes the prefix of a message of `length` bytes into out[0..5).
void write_prefix(std::span<std::byte, kPrefixSize> out, bool compressed, uint32_t length) noexcept;

// grpc-timeout: 1 to 8 ASCII digits then a unit (H M S m u n). The duration in nanoseconds
// (saturating at UINT64_MAX), or nullopt for anything else.
[[nodiscard]] std::optional<uint64_t> parse_timeout(std::string_view text) noexcept;

// The shortest exact-or-rounded-up grpc-timeout text for `ns` (at most 8 digits, the finest
// unit that fits), written into `out`; the text's length. Rounding is up so a deadline passed
// on is never earlier than the one received; zero becomes "0n".
inline constexpr size_t kMaxTimeoutText = 9;
size_t format_timeout(uint64_t ns, std::span<char, kMaxTimeoutText> out) noexcept;

// True for "application/grpc" and "application/grpc+..." / "application/grpc;..." (any
// message format: ferry never looks inside messages it forwards).
[[nodiscard]] bool is_grpc_content_type(std::string_view value) noexcept;

// grpc-message is percent-encoded (PROTOCOL-HTTP2.md, "Responses"): bytes outside 0x20..0x7E
// and '%' become %XX. The encoded length of `text`.
[[nodiscard]] size_t percent_encoded_size(std::string_view text) noexcept;
// Encodes `text` into `out` (which must hold percent_encoded_size bytes); the length written.
size_t percent_encode(std::string_view text, std::span<char> out) noexcept;
// Decodes in place into `out` (out.size() >= text.size()); a malformed %XX is kept as is, as
// the spec asks receivers to do. The length written.
size_t percent_decode(std::string_view text, std::span<char> out) noexcept;

}  // namespace ferry::proto::grpc
