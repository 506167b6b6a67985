#include "ferry/tls/record_sealer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ferry/buf/pool.h"
#include "ferry/tls/key_schedule.h"
#include "ferry/tls/record_layer.h"

namespace ferry::tls {
namespace {

TrafficKeys keys_for(bool is_server) {
    const std::vector<std::byte> c2s(secret_len(Cipher::Aes128Gcm), std::byte{0x11});
    const std::vector<std::byte> s2c(secret_len(Cipher::Aes128Gcm), std::byte{0x22});
    TrafficKeys k;
    k.cipher = Cipher::Aes128Gcm;
    EXPECT_TRUE(derive_key_iv(k.cipher, is_server ? s2c : c2s, &k.tx));
    EXPECT_TRUE(derive_key_iv(k.cipher, is_server ? c2s : s2c, &k.rx));
    return k;
}

// Opens every record of `sealed` (the buffers, in order) and returns the plaintext.
std::string open_all(RecordLayer& rx, std::vector<buf::Chunk>& sealed) {
    std::string plain;
    for (buf::Chunk& c : sealed) {
        std::span<std::byte> rest = c.span();
        while (!rest.empty()) {
            const OpenResult r = rx.open(rest);
            EXPECT_EQ(r.status, OpenStatus::Data) << (r.error != nullptr ? r.error : "");
            if (r.status != OpenStatus::Data) {
                return plain;
            }
            plain.append(reinterpret_cast<const char*>(r.plaintext.data()), r.plaintext.size());
            rest = rest.subspan(r.consumed);
        }
    }
    return plain;
}

class RecordSealerTest : public ::testing::Test {
  protected:
    // An iovec list over pieces of `text` of the given sizes.
    std::vector<iovec> gather(const std::string& text, const std::vector<size_t>& sizes) {
        std::vector<iovec> iov;
        size_t at = 0;
        for (size_t n : sizes) {
            iov.push_back({const_cast<char*>(text.data()) + at, n});
            at += n;
        }
        return iov;
    }

    buf::Pool pool_{16384, 32};
    RecordLayer tx_{keys_for(false)};
    RecordLayer rx_{keys_for(true)};
};

TEST_F(RecordSealerTest, SealsAGatherListIntoBuffersOfWholeRecords) {
    std::string text(40000, '\0');
    for (size_t i = 0; i < text.size(); ++i) {
        text[i] = static_cast<char>(i * 13);
    }
    std::vector<iovec> iov = gather(text, {1, 0, 9999, 20000, 10000});
    RecordSealer sealer;
    sealer.start(iov.data(), static_cast<uint32_t>(iov.size()));
    std::vector<buf::Chunk> sealed;
    const uint64_t n = sealer.seal(
        tx_, 4096, [this] { return pool_.try_alloc(); },
        [&](buf::Chunk&& c) { sealed.push_back(std::move(c)); });
    EXPECT_EQ(n, text.size());
    EXPECT_TRUE(sealer.done());
    for (const buf::Chunk& c : sealed) {
        EXPECT_LE(c.size(), 16384U);
        EXPECT_GT(c.size(), 0U);
    }
    EXPECT_EQ(open_all(rx_, sealed), text);
}

TEST_F(RecordSealerTest, GoesOnWhereItStoppedWhenBuffersRanOut) {
    const std::string text(100000, 'z');
    std::vector<iovec> iov = gather(text, {30000, 70000});
    RecordSealer sealer;
    sealer.start(iov.data(), static_cast<uint32_t>(iov.size()));
    std::vector<buf::Chunk> sealed;
    int budget = 2;  // two buffers now, the rest later
    uint64_t total = sealer.seal(
        tx_, 16384, [&] { return budget-- > 0 ? pool_.try_alloc() : buf::Chunk(); },
        [&](buf::Chunk&& c) { sealed.push_back(std::move(c)); });
    EXPECT_FALSE(sealer.done());
    EXPECT_LT(total, text.size());
    EXPECT_EQ(sealed.size(), 2U);
    total += sealer.seal(
        tx_, 16384, [this] { return pool_.try_alloc(); },
        [&](buf::Chunk&& c) { sealed.push_back(std::move(c)); });
    EXPECT_TRUE(sealer.done());
    EXPECT_EQ(total, text.size());
    EXPECT_EQ(open_all(rx_, sealed), text);
}

TEST_F(RecordSealerTest, AnEmptyListIsDoneAtOnce) {
    RecordSealer sealer;
    iovec none{nullptr, 0};
    sealer.start(&none, 1);
    EXPECT_TRUE(sealer.done());
    int allocs = 0;
    EXPECT_EQ(sealer.seal(
                  tx_, 16384,
                  [&] {
                      ++allocs;
                      return pool_.try_alloc();
                  },
                  [](buf::Chunk&&) {}),
              0U);
    EXPECT_EQ(allocs, 0);
}

}  // namespace
}  // namespace ferry::tls
