#include "byte_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::bench {
namespace {

std::vector<std::byte> bytes(const ByteStream& stream, uint64_t pos, size_t n) {
    std::vector<std::byte> out(n);
    stream.fill(pos, out);
    return out;
}

TEST(ByteStream, AnyRangeMatchesTheWholeStream) {
    const ByteStream stream(1, 7);
    const std::vector<std::byte> whole = bytes(stream, 0, 4096);
    SplitMix rng(3);
    for (int i = 0; i < 1000; ++i) {
        const auto pos = static_cast<size_t>(rng.next() % 4000);
        const auto n = static_cast<size_t>(rng.next() % (4096 - pos));
        const std::vector<std::byte> part = bytes(stream, pos, n);
        ASSERT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + static_cast<long>(pos)))
            << pos << "+" << n;
    }
}

TEST(ByteStream, SameSeedAndIdGiveTheSameBytes) {
    EXPECT_EQ(bytes(ByteStream(5, 9), 100, 64), bytes(ByteStream(5, 9), 100, 64));
}

TEST(ByteStream, StreamsDifferBySeedAndById) {
    EXPECT_NE(bytes(ByteStream(5, 9), 0, 64), bytes(ByteStream(6, 9), 0, 64));
    EXPECT_NE(bytes(ByteStream(5, 9), 0, 64), bytes(ByteStream(5, 10), 0, 64));
}

}  // namespace
}  // namespace ferry::bench
