#include "ferry/proto/ws/mask.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace ferry::proto::ws {
namespace {

// The obvious per-byte XOR of RFC 6455 §5.3, as the reference.
std::vector<std::byte> reference_mask(std::vector<std::byte> data, const MaskKey& key,
                                      size_t phase) {
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] ^= key[(phase + i) % 4];
    }
    return data;
}

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> v(n);
    for (auto& b : v) {
        b = static_cast<std::byte>(rng());
    }
    return v;
}

constexpr MaskKey kKey = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

TEST(WsMask, MasksTheRfcHello) {
    // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d is 7f 9f 4d 51 58.
    std::vector<std::byte> data = {std::byte{'H'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'},
                                   std::byte{'o'}};
    apply_mask(data, kKey);
    EXPECT_EQ(data, (std::vector<std::byte>{std::byte{0x7f}, std::byte{0x9f}, std::byte{0x4d},
                                            std::byte{0x51}, std::byte{0x58}}));
    apply_mask(data, kKey);
    EXPECT_EQ(data[0], std::byte{'H'});
    EXPECT_EQ(data[4], std::byte{'o'});
}

TEST(WsMask, MatchesTheReferenceForEveryLengthPhaseAndAlignment) {
    const MaskKey key = {std::byte{0x01}, std::byte{0x80}, std::byte{0x5a}, std::byte{0xff}};
    for (size_t n = 0; n <= 40; ++n) {
        for (size_t phase = 0; phase < 8; ++phase) {
            for (size_t offset = 0; offset < 8; ++offset) {
                // Masking a slice at `offset` must touch nothing around it.
                std::vector<std::byte> buffer = pattern(n + 16, static_cast<uint32_t>(n));
                const std::vector<std::byte> before = buffer;
                apply_mask(std::span<std::byte>(buffer).subspan(offset, n), key, phase);
                const std::vector<std::byte> expected = reference_mask(
                    std::vector<std::byte>(before.begin() + static_cast<ptrdiff_t>(offset),
                                           before.begin() + static_cast<ptrdiff_t>(offset + n)),
                    key, phase);
                for (size_t i = 0; i < buffer.size(); ++i) {
                    const std::byte want =
                        i >= offset && i < offset + n ? expected[i - offset] : before[i];
                    ASSERT_EQ(buffer[i], want)
                        << "n=" << n << " phase=" << phase << " offset=" << offset << " i=" << i;
                }
            }
        }
    }
}

TEST(WsMask, MasksPieceByPieceLikeInOneGo) {
    const std::vector<std::byte> original = pattern(1000, 7);
    const std::vector<std::byte> whole = reference_mask(original, kKey, 0);
    std::mt19937 rng(42);
    for (int round = 0; round < 50; ++round) {
        std::vector<std::byte> data = original;
        for (size_t pos = 0; pos < data.size();) {
            const size_t n = std::min<size_t>(data.size() - pos, rng() % 30);
            apply_mask(std::span<std::byte>(data).subspan(pos, n), kKey, pos);
            pos += n;
        }
        ASSERT_EQ(data, whole) << "round " << round;
    }
}

TEST(WsMask, AcceptsAnEmptySpan) {
    apply_mask({}, kKey, 3);
    std::vector<std::byte> one = {std::byte{0}};
    apply_mask(one, kKey, 5);  // phase 5 is phase 1
    EXPECT_EQ(one[0], std::byte{0xfa});
}

}  // namespace
}  // namespace ferry::proto::ws
