#include "ferry/io/buf_ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ferry/buf/pool.h"
#include "ferry/io/op.h"
#include "ferry/io/ring.h"

namespace ferry::io {
namespace {

unsigned step(Ring& ring) {
    __kernel_timespec ts{0, 100'000'000};
    io_uring_cqe* cqe = nullptr;
    (void)io_uring_submit_and_wait_timeout(ring.raw(), &cqe, 1, &ts, nullptr);
    return ring.dispatch();
}

template <class Cond>
bool run_until(Ring& ring, Cond cond, int max_steps = 100) {
    for (int i = 0; i < max_steps && !cond(); ++i) {
        step(ring);
    }
    return cond();
}

std::string pattern(size_t n, uint32_t seed = 1) {
    std::string s(n, '\0');
    uint32_t x = seed;
    for (char& c : s) {
        x = x * 1103515245U + 12345U;
        c = static_cast<char>(x >> 24);
    }
    return s;
}

// A multishot recv that picks its buffers from a BufRing, keeping every Chunk it got.
class MultishotRecv final : public Op {
  public:
    MultishotRecv(Ring& ring, BufRing& bufs, int fd) : ring_(ring), bufs_(bufs), fd_(fd) {}

    void arm() noexcept {
        io_uring_sqe* sqe = ring_.sqe(this);
        io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = bufs_.group();
        armed = true;
    }
    void complete(int32_t res, uint32_t flags) noexcept override {
        if ((flags & IORING_CQE_F_MORE) == 0) {
            armed = false;
        }
        if (res > 0) {
            bids.push_back(flags >> IORING_CQE_BUFFER_SHIFT);
            buf::Chunk c = bufs_.take(flags, res);
            bytes += static_cast<size_t>(res);
            chunks.push_back(std::move(c));
        } else {
            errors.push_back(res);
        }
    }
    [[nodiscard]] std::string received() const {
        std::string out;
        for (const buf::Chunk& c : chunks) {
            out.append(reinterpret_cast<const char*>(c.data()), c.size());
        }
        return out;
    }

    std::vector<buf::Chunk> chunks;
    std::vector<uint32_t> bids;
    std::vector<int32_t> errors;
    size_t bytes = 0;
    bool armed = false;

  private:
    Ring& ring_;
    BufRing& bufs_;
    int fd_;
};

class BufRingTest : public ::testing::Test {
  protected:
    void make(uint32_t buffer_size, uint32_t buffer_count, uint32_t entries) {
        RingOptions options;
        options.entries = 64;
        absl::StatusOr<std::unique_ptr<Ring>> ring = Ring::create(options);
        if (!ring.ok()) {
            GTEST_SKIP() << ring.status();
        }
        ring_ = *std::move(ring);
        pool_ = std::make_unique<buf::Pool>(buffer_size, buffer_count);
        bufs_ = std::make_unique<BufRing>(*ring_, *pool_, /*group=*/1, entries);
        absl::Status st = bufs_->init();
        if (!st.ok()) {
            GTEST_SKIP() << st;
        }
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
        recv_ = std::make_unique<MultishotRecv>(*ring_, *bufs_, fds_[0]);
    }
    void TearDown() override {
        if (recv_ != nullptr) {
            recv_->chunks.clear();
        }
        for (int fd : fds_) {
            if (fd >= 0) {
                close(fd);
            }
        }
        // The closed socket ends the multishot recv; collect that CQE while the op still lives.
        if (ring_ != nullptr && recv_ != nullptr) {
            run_until(*ring_, [&] { return !recv_->armed; });
        }
    }
    void send_all(const std::string& data) {
        size_t off = 0;
        while (off < data.size()) {
            ssize_t n = write(fds_[1], data.data() + off, data.size() - off);
            ASSERT_GT(n, 0);
            off += static_cast<size_t>(n);
        }
    }

    // Destroyed in reverse: the recv op, then the buffer ring, then the pool, then the ring.
    std::unique_ptr<Ring> ring_;
    std::unique_ptr<buf::Pool> pool_;
    std::unique_ptr<BufRing> bufs_;
    std::unique_ptr<MultishotRecv> recv_;
    int fds_[2] = {-1, -1};
};

TEST_F(BufRingTest, InitLendsOneBufferPerEntry) {
    make(256, 32, 16);
    EXPECT_EQ(bufs_->lent(), 16U);
    EXPECT_EQ(bufs_->entries(), 16U);
    EXPECT_EQ(pool_->free_count(), 16U);
    EXPECT_EQ(pool_->in_use().value(), 16);
}

TEST_F(BufRingTest, InitKeepsAnEighthOfThePoolOutOfTheRing) {
    make(256, 16, 16);
    // 16 buffers, reserve 16/8 = 2: the ring gets the other 14 even though it has 16 slots.
    EXPECT_EQ(bufs_->lent(), 14U);
    EXPECT_EQ(pool_->free_count(), 2U);
}

TEST_F(BufRingTest, MultishotRecvDeliversChunksHoldingTheWrittenBytes) {
    make(256, 32, 16);
    recv_->arm();
    const std::string first = "hello over the buffer ring";
    send_all(first);
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == first.size(); }));
    const std::string second = pattern(200);
    send_all(second);
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == first.size() + second.size(); }));
    EXPECT_TRUE(recv_->errors.empty());
    EXPECT_TRUE(recv_->armed) << "a multishot recv stays armed while buffers remain";
    EXPECT_EQ(recv_->received(), first + second);
    const std::span<std::byte> region = pool_->region();
    for (size_t i = 0; i < recv_->chunks.size(); ++i) {
        const buf::Chunk& c = recv_->chunks[i];
        EXPECT_EQ(c.index(), recv_->bids[i]);
        EXPECT_EQ(c.offset(), 0U);
        EXPECT_GE(c.data(), region.data());
        EXPECT_LE(c.data() + c.size(), region.data() + region.size());
    }
}

TEST_F(BufRingTest, ALargeWriteSpansSeveralBuffersInOrder) {
    make(256, 32, 16);
    recv_->arm();
    const std::string data = pattern(256 * 9 + 17, 7);
    send_all(data);
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == data.size(); }));
    EXPECT_GE(recv_->chunks.size(), 10U);
    for (const buf::Chunk& c : recv_->chunks) {
        EXPECT_LE(c.size(), 256U);
    }
    EXPECT_EQ(recv_->received(), data);
}

TEST_F(BufRingTest, BuffersGoBackToThePoolWhenTheirChunksDie) {
    make(256, 32, 16);
    recv_->arm();
    const std::string data = pattern(256 * 3);
    send_all(data);
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == data.size(); }));
    const auto taken = static_cast<uint32_t>(recv_->chunks.size());
    EXPECT_EQ(bufs_->lent(), 16U - taken);
    EXPECT_EQ(pool_->free_count(), 16U);
    EXPECT_EQ(pool_->in_use().value(), 16);

    recv_->chunks.clear();
    EXPECT_EQ(pool_->free_count(), 16U + taken);
    EXPECT_EQ(pool_->in_use().value(), static_cast<int64_t>(16U - taken));
}

TEST_F(BufRingTest, RefillLendsReturnedBuffersAgain) {
    make(256, 32, 16);
    recv_->arm();
    send_all(pattern(256 * 4));
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == 256 * 4; }));
    recv_->chunks.clear();
    bufs_->refill();
    EXPECT_EQ(bufs_->lent(), 16U);
    EXPECT_EQ(pool_->free_count(), 16U);

    // The re-lent buffers carry data again.
    const std::string more = pattern(256 * 20, 3);
    send_all(more.substr(0, 256 * 10));
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == 256 * 14; }));
    EXPECT_EQ(recv_->received(), more.substr(0, 256 * 10));
}

TEST_F(BufRingTest, RefillStopsAtTheReserve) {
    make(256, 16, 16);
    recv_->arm();
    send_all(pattern(256 * 5));
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == 256 * 5; }));
    // Five buffers are out with the application; the pool's two reserve buffers stay put.
    bufs_->refill();
    EXPECT_EQ(pool_->free_count(), 2U);
    EXPECT_EQ(bufs_->lent(), 9U);
}

TEST_F(BufRingTest, AnEmptyRingEndsTheRecvWithEnobufsAndRefillRecovers) {
    make(64, 8, 4);  // reserve 1: all four ring slots are lent
    ASSERT_EQ(bufs_->lent(), 4U);
    const std::string data = pattern(64 * 6, 11);
    send_all(data);
    recv_->arm();
    ASSERT_TRUE(run_until(*ring_, [&] { return !recv_->armed; }));
    ASSERT_EQ(recv_->errors.size(), 1U);
    EXPECT_EQ(recv_->errors[0], -ENOBUFS);
    EXPECT_EQ(recv_->bytes, 64U * 4);
    EXPECT_EQ(bufs_->lent(), 0U);

    // Nothing comes back to the ring by itself: the chunks must die and refill() must run.
    recv_->chunks.clear();
    EXPECT_EQ(bufs_->lent(), 0U);
    bufs_->refill();
    EXPECT_EQ(bufs_->lent(), 4U);
    recv_->arm();
    ASSERT_TRUE(run_until(*ring_, [&] { return recv_->bytes == data.size(); }));
    EXPECT_EQ(recv_->received(), data.substr(64 * 4));
    EXPECT_EQ(recv_->errors.size(), 1U);
}

TEST_F(BufRingTest, TwoRingsCannotShareABufferGroup) {
    make(256, 32, 8);
    BufRing second(*ring_, *pool_, /*group=*/1, 8);
    EXPECT_FALSE(second.init().ok());
    // The failed ring must not unregister the group the first one still uses.
    recv_->arm();
    send_all("still works");
    EXPECT_TRUE(run_until(*ring_, [&] { return recv_->bytes == 11; }));
}

}  // namespace
}  // namespace ferry::io
