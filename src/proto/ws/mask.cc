#include "ferry/proto/ws/mask.h"

#include <cstdint>
#include <cstring>

namespace ferry::proto::ws {

void apply_mask(std::span<std::byte> data, const MaskKey& key, size_t phase) noexcept {
    // The key rotated to this phase and repeated twice: data[i] pairs with rotated[i % 8] because
    // every 8-byte step is a whole number of key periods.
    std::array<std::byte, 8> rotated;
    for (size_t i = 0; i < rotated.size(); ++i) {
        rotated[i] = key[(phase + i) & 3];
    }
    uint64_t key64 = 0;
    std::memcpy(&key64, rotated.data(), sizeof(key64));

    std::byte* p = data.data();
    const size_t n = data.size();
    size_t i = 0;
    // memcpy keeps the loads and stores legal at any alignment; compilers turn them into plain
    // (or vector) moves.
    for (; i + 8 <= n; i += 8) {
        uint64_t word = 0;
        std::memcpy(&word, p + i, sizeof(word));
        word ^= key64;
        std::memcpy(p + i, &word, sizeof(word));
    }
    for (; i < n; ++i) {
        p[i] ^= rotated[i & 7];
    }
}

}  // namespace ferry::proto::ws
