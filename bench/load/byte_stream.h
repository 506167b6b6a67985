// Deterministic pseudo-random bytes: the content verify mode sends and checks, the pattern the
// source server streams, and the sequence of write sizes. Same seed, same bytes, any machine
// of the same endianness.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace ferry::bench {

// SplitMix64's output function: a bijective 64-bit mixer.
[[nodiscard]] constexpr uint64_t mix64(uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// A sequential generator (SplitMix64) for sizes and other small choices.
class SplitMix final {
  public:
    explicit SplitMix(uint64_t seed) noexcept : state_(seed) {}
    [[nodiscard]] uint64_t next() noexcept {
        state_ += 0x9e3779b97f4a7c15ULL;
        return mix64(state_);
    }

  private:
    uint64_t state_;
};

// Counter-mode byte stream: byte p is byte (p % 8) of mix64(key + p / 8 * golden), so any
// range can be produced without generating what precedes it (the receiver regenerates the
// range it just read and compares).
class ByteStream final {
  public:
    ByteStream(uint64_t seed, uint64_t stream_id) noexcept
        : key_(mix64(seed ^ mix64(stream_id + 0x632be59bd9b4e019ULL))) {}

    // Writes bytes [pos, pos + out.size()) of the stream into out.
    void fill(uint64_t pos, std::span<std::byte> out) const noexcept {
        size_t i = 0;
        while (i < out.size()) {
            const uint64_t p = pos + i;
            const uint64_t word = mix64(key_ + (p >> 3) * 0x9e3779b97f4a7c15ULL);
            const auto offset = static_cast<size_t>(p & 7);
            const size_t take = std::min<size_t>(8 - offset, out.size() - i);
            std::memcpy(out.data() + i, reinterpret_cast<const std::byte*>(&word) + offset, take);
            i += take;
        }
    }

  private:
    uint64_t key_;
};

}  // namespace ferry::bench
