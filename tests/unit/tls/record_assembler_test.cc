#include "ferry/tls/record_assembler.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"

namespace ferry::tls {
namespace {

using Status = RecordAssembler::Status;

// A byte stream of `count` records with bodies of the given sizes: header type 0x17, legacy
// version 0x0303, then the body bytes, each a function of (record, offset).
std::string records(const std::vector<size_t>& bodies) {
    std::string out;
    for (size_t r = 0; r < bodies.size(); ++r) {
        out += '\x17';
        out += '\x03';
        out += '\x03';
        out += static_cast<char>(bodies[r] >> 8);
        out += static_cast<char>(bodies[r] & 0xff);
        for (size_t i = 0; i < bodies[r]; ++i) {
            out += static_cast<char>(r * 31 + i * 7);
        }
    }
    return out;
}

class RecordAssemblerTest : public ::testing::Test {
  protected:
    buf::Chunk chunk(std::string_view bytes) {
        buf::Chunk c = pool_.try_alloc();
        EXPECT_FALSE(c.empty());
        std::memcpy(c.data(), bytes.data(), bytes.size());
        c.set_size(static_cast<uint32_t>(bytes.size()));
        return c;
    }
    // Feeds `stream` cut at `cuts` and collects every record that comes out.
    std::vector<std::string> assemble(const std::string& stream, std::vector<size_t> cuts,
                                      uint32_t* copied = nullptr) {
        RecordAssembler a(nodes_);
        std::vector<std::string> out;
        cuts.push_back(stream.size());
        size_t at = 0;
        for (size_t cut : cuts) {
            a.push(chunk(std::string_view(stream).substr(at, cut - at)));
            at = cut;
            for (;;) {
                RecordAssembler::Next n = a.next([this] { return pool_.try_alloc(); });
                if (copied != nullptr) {
                    *copied += n.copied;
                }
                if (n.status != Status::Record) {
                    EXPECT_EQ(n.status, Status::NeedMore);
                    break;
                }
                out.emplace_back(reinterpret_cast<const char*>(n.record.data()), n.record.size());
            }
        }
        EXPECT_TRUE(a.empty()) << "whole records in, nothing left over";
        return out;
    }

    buf::Pool pool_{4096, 64};
    buf::NodePool nodes_;
};

TEST_F(RecordAssemblerTest, RecordsInsideOneBufferComeOutAsSlicesWithoutACopy) {
    const std::string stream = records({10, 0, 300});
    uint32_t copied = 0;
    const std::vector<std::string> got = assemble(stream, {}, &copied);
    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(got[0], stream.substr(0, 15));
    EXPECT_EQ(got[1], stream.substr(15, 5));
    EXPECT_EQ(got[2], stream.substr(20));
    EXPECT_EQ(copied, 0U);
}

TEST_F(RecordAssemblerTest, EverySplitOfTheStreamGivesTheSameRecords) {
    const std::string stream = records({1, 200, 3, 0, 1000});
    const std::vector<std::string> whole = assemble(stream, {});
    ASSERT_EQ(whole.size(), 5U);
    for (size_t cut = 1; cut < stream.size(); ++cut) {
        ASSERT_EQ(assemble(stream, {cut}), whole) << "cut at " << cut;
    }
    // Byte by byte: every record but none of the empty ones is gathered.
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) {
        cuts.push_back(i);
    }
    uint32_t copied = 0;
    EXPECT_EQ(assemble(stream, cuts, &copied), whole);
    EXPECT_EQ(copied, stream.size());
    // Random chunkings.
    std::mt19937 rng(7);
    for (int round = 0; round < 200; ++round) {
        std::vector<size_t> random_cuts;
        for (size_t at = 0;;) {
            at += 1 + rng() % 400;
            if (at >= stream.size()) {
                break;
            }
            random_cuts.push_back(at);
        }
        ASSERT_EQ(assemble(stream, random_cuts), whole) << "round " << round;
    }
}

TEST_F(RecordAssemblerTest, ASplitRecordWaitsForABufferAndLosesNothing) {
    const std::string stream = records({100, 2000});
    RecordAssembler a(nodes_);
    a.push(chunk(std::string_view(stream).substr(0, 1000)));
    a.push(chunk(std::string_view(stream).substr(1000)));
    RecordAssembler::Next first = a.next([this] { return pool_.try_alloc(); });
    ASSERT_EQ(first.status, Status::Record);
    // The second record straddles the two buffers and no buffer is free.
    for (int i = 0; i < 3; ++i) {
        RecordAssembler::Next n = a.next([] { return buf::Chunk(); });
        EXPECT_EQ(n.status, Status::NeedBuffer);
        EXPECT_FALSE(a.empty());
    }
    RecordAssembler::Next second = a.next([this] { return pool_.try_alloc(); });
    ASSERT_EQ(second.status, Status::Record);
    EXPECT_EQ(
        std::string(reinterpret_cast<const char*>(second.record.data()), second.record.size()),
        stream.substr(105));
    EXPECT_EQ(second.copied, 2005U);
    EXPECT_TRUE(a.empty());
}

TEST_F(RecordAssemblerTest, ARecordLargerThanABufferIsRefused) {
    RecordAssembler a(nodes_);
    const std::string stream = records({5000});  // 5005 bytes, buffers hold 4096
    a.push(chunk(std::string_view(stream).substr(0, 4000)));
    EXPECT_EQ(a.next([this] { return pool_.try_alloc(); }).status, Status::TooLarge);
}

TEST_F(RecordAssemblerTest, HeldBytesAreCountedAndCleared) {
    RecordAssembler a(nodes_);
    const std::string stream = records({50});
    a.push(chunk(std::string_view(stream).substr(0, 20)));
    EXPECT_EQ(a.next([this] { return pool_.try_alloc(); }).status, Status::NeedMore);
    EXPECT_EQ(a.held_bytes(), 20U);
    EXPECT_FALSE(a.empty());
    const uint32_t free_before = pool_.free_count();
    a.clear();
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(pool_.free_count(), free_before + 1) << "the gathering buffer went back";
}

}  // namespace
}  // namespace ferry::tls
