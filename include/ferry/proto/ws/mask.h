// RFC 6455 §5.3 payload masking, used by the parser to unmask client frames in place and by the
// writer's callers to mask what a client sends. The same XOR does both.
#pragma once

#include <array>
#include <cstddef>
#include <span>

namespace ferry::proto::ws {

// The 4-byte masking key as it appears on the wire. A client draws a fresh one from a CSPRNG for
// every frame (§5.3: it must not be predictable); the codec never makes keys.
using MaskKey = std::array<std::byte, 4>;

// XORs `data` in place with `key`, where data[0] is payload byte number `phase` of the frame
// (only phase % 4 matters), so a payload can be (un)masked piece by piece as it arrives:
// the next piece continues at phase + data.size(). Works 8 bytes at a time; any alignment.
void apply_mask(std::span<std::byte> data, const MaskKey& key, size_t phase = 0) noexcept;

}  // namespace ferry::proto::ws
