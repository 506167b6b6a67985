#include "ferry/io/ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

#include "ferry/io/op.h"

namespace ferry::io {
namespace {

// Records every completion it receives.
class RecordingOp final : public Op {
  public:
    struct Completion {
        int32_t res;
        uint32_t flags;
    };
    void complete(int32_t res, uint32_t flags) noexcept override {
        completions.push_back({res, flags});
    }
    std::vector<Completion> completions;
};

// Waits up to 100 ms for a CQE, then dispatches every ready one.
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

std::unique_ptr<Ring> make_ring(uint32_t entries = 64, bool sqpoll = false) {
    RingOptions options;
    options.entries = entries;
    options.sqpoll = sqpoll;
    absl::StatusOr<std::unique_ptr<Ring>> ring = Ring::create(options);
    if (!ring.ok()) {
        return nullptr;
    }
    return *std::move(ring);
}

#define FERRY_REQUIRE_RING(ring)                                      \
    do {                                                              \
        if ((ring) == nullptr) {                                      \
            GTEST_SKIP() << "io_uring is not available on this host"; \
        }                                                             \
    } while (0)

TEST(IoRing, CreateReportsTheSetupItGot) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    const RingFeatures& f = ring->features();
    EXPECT_GE(ring->fd(), 0);
    EXPECT_FALSE(f.sqpoll);
    EXPECT_FALSE(f.defer_taskrun && f.coop_taskrun);
    const unsigned flags = ring->raw()->flags;
    EXPECT_EQ(f.defer_taskrun, (flags & IORING_SETUP_DEFER_TASKRUN) != 0);
    EXPECT_EQ(f.coop_taskrun, (flags & IORING_SETUP_COOP_TASKRUN) != 0);
    EXPECT_EQ((flags & IORING_SETUP_SQPOLL) != 0, f.sqpoll);
}

TEST(IoRing, CreateReportsOpcodesTheKernelSupports) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    io_uring_probe* probe = io_uring_get_probe_ring(ring->raw());
    ASSERT_NE(probe, nullptr);
    const RingFeatures& f = ring->features();
    EXPECT_EQ(f.msg_ring, io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0);
    EXPECT_EQ(f.send_zc, io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0);
    EXPECT_EQ(f.accept_multishot, f.recv_multishot);
    io_uring_free_probe(probe);
}

TEST(IoRing, CreateSizesTheCompletionQueueAtFourTimesTheSubmissionQueue) {
    std::unique_ptr<Ring> ring = make_ring(128);
    FERRY_REQUIRE_RING(ring);
    EXPECT_EQ(ring->raw()->sq.ring_entries, 128U);
    EXPECT_EQ(ring->raw()->cq.ring_entries, 512U);
}

TEST(IoRing, CreateFailsWithAStatusForAnImpossibleDepth) {
    RingOptions options;
    options.entries = 0;
    absl::StatusOr<std::unique_ptr<Ring>> ring = Ring::create(options);
    ASSERT_FALSE(ring.ok());
    EXPECT_EQ(ring.status().code(), absl::StatusCode::kUnavailable);
}

TEST(IoRing, CreateAcceptsTheLargestDepthTheConfigAllows) {
    RingOptions options;
    options.entries = 32768;
    absl::StatusOr<std::unique_ptr<Ring>> ring = Ring::create(options);
    ASSERT_TRUE(ring.ok()) << ring.status();
    EXPECT_EQ((*ring)->raw()->sq.ring_entries, 32768U);
}

TEST(IoRing, SqpollRequestStillCompletesOps) {
    std::unique_ptr<Ring> ring = make_ring(64, /*sqpoll=*/true);
    FERRY_REQUIRE_RING(ring);
    // SQPOLL may be refused (privileges, kernel); the ring then falls back and must still work.
    EXPECT_EQ((ring->raw()->flags & IORING_SETUP_SQPOLL) != 0, ring->features().sqpoll);
    RecordingOp op;
    io_uring_prep_nop(ring->sqe(&op));
    ASSERT_TRUE(run_until(*ring, [&] { return !op.completions.empty(); }));
    EXPECT_EQ(op.completions[0].res, 0);
}

TEST(IoRing, NopCompletesToItsOpWithResultZero) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    RecordingOp op;
    io_uring_prep_nop(ring->sqe(&op));
    ASSERT_TRUE(run_until(*ring, [&] { return !op.completions.empty(); }));
    ASSERT_EQ(op.completions.size(), 1U);
    EXPECT_EQ(op.completions[0].res, 0);
    EXPECT_EQ(op.completions[0].flags & IORING_CQE_F_MORE, 0U);
}

TEST(IoRing, EachCompletionGoesToTheOpNamedInItsUserData) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    RecordingOp a;
    RecordingOp b;
    io_uring_prep_nop(ring->sqe(&a));
    io_uring_prep_nop(ring->sqe(&b));
    io_uring_prep_nop(ring->sqe(&a));
    ASSERT_TRUE(run_until(*ring, [&] { return a.completions.size() + b.completions.size() == 3; }));
    EXPECT_EQ(a.completions.size(), 2U);
    EXPECT_EQ(b.completions.size(), 1U);
}

TEST(IoRing, ReadCompletesWithTheByteCount) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(write(fds[1], "ferry", 5), 5);
    char buf[16] = {};
    RecordingOp op;
    io_uring_prep_read(ring->sqe(&op), fds[0], buf, sizeof(buf), 0);
    ASSERT_TRUE(run_until(*ring, [&] { return !op.completions.empty(); }));
    EXPECT_EQ(op.completions[0].res, 5);
    EXPECT_EQ(std::string(buf, 5), "ferry");
    close(fds[0]);
    close(fds[1]);
}

TEST(IoRing, FailedOpCompletesWithNegativeErrno) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    __kernel_timespec ts{0, 1'000'000};
    RecordingOp op;
    io_uring_prep_timeout(ring->sqe(&op), &ts, 0, 0);
    ASSERT_TRUE(run_until(*ring, [&] { return !op.completions.empty(); }));
    EXPECT_EQ(op.completions[0].res, -ETIME);

    RecordingOp bad;
    char buf[4];
    io_uring_prep_read(ring->sqe(&bad), -1, buf, sizeof(buf), 0);
    ASSERT_TRUE(run_until(*ring, [&] { return !bad.completions.empty(); }));
    EXPECT_EQ(bad.completions[0].res, -EBADF);
}

TEST(IoRing, CompletionWithoutUserDataIsCountedButGoesNowhere) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    io_uring_sqe* sqe = ring->sqe();
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, nullptr);
    RecordingOp op;
    io_uring_prep_nop(ring->sqe(&op));
    unsigned dispatched = 0;
    for (int i = 0; i < 100 && dispatched < 2; ++i) {
        dispatched += step(*ring);
    }
    EXPECT_EQ(dispatched, 2U);
    EXPECT_EQ(op.completions.size(), 1U);
}

TEST(IoRing, DispatchReturnsZeroWhenNothingIsReady) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    EXPECT_EQ(ring->dispatch(), 0U);
}

// An op that queues its next round from inside its own completion, as connections do.
class ChainOp final : public Op {
  public:
    ChainOp(Ring& ring, int rounds) : ring_(ring), left_(rounds) {}
    void start() noexcept { io_uring_prep_nop(ring_.sqe(this)); }
    void complete(int32_t, uint32_t) noexcept override {
        ++done;
        if (--left_ > 0) {
            start();
        }
    }
    int done = 0;

  private:
    Ring& ring_;
    int left_;
};

TEST(IoRing, HandlersMaySubmitFromInsideDispatch) {
    std::unique_ptr<Ring> ring = make_ring();
    FERRY_REQUIRE_RING(ring);
    ChainOp chain(*ring, 50);
    chain.start();
    ASSERT_TRUE(run_until(
        *ring, [&] { return chain.done == 50; }, 500));
}

TEST(IoRing, SqeOnAFullSubmissionQueueSubmitsAndStillHandsOutOne) {
    constexpr uint32_t kEntries = 8;
    std::unique_ptr<Ring> ring = make_ring(kEntries);
    FERRY_REQUIRE_RING(ring);
    RecordingOp op;
    constexpr uint32_t kOps = kEntries * 3;  // fits the 4x completion queue
    for (uint32_t i = 0; i < kOps; ++i) {
        io_uring_sqe* sqe = ring->sqe(&op);
        ASSERT_NE(sqe, nullptr);
        io_uring_prep_nop(sqe);
    }
    // Only the last partial round is still waiting in the SQ: the rest was submitted by sqe().
    EXPECT_LE(io_uring_sq_ready(ring->raw()), kEntries);
    ASSERT_TRUE(run_until(*ring, [&] { return op.completions.size() == kOps; }));
    for (const RecordingOp::Completion& c : op.completions) {
        EXPECT_EQ(c.res, 0);
    }
}

TEST(IoRing, MoreOpsThanTheCompletionQueueHoldsAllComplete) {
    constexpr uint32_t kEntries = 8;
    std::unique_ptr<Ring> ring = make_ring(kEntries);
    FERRY_REQUIRE_RING(ring);
    RecordingOp op;
    constexpr uint32_t kOps = kEntries * 4 * 3;  // three times the completion queue
    for (uint32_t i = 0; i < kOps; ++i) {
        io_uring_prep_nop(ring->sqe(&op));
    }
    ASSERT_TRUE(run_until(*ring, [&] { return op.completions.size() == kOps; }));
}

}  // namespace
}  // namespace ferry::io
