#include "ferry/role/tunnel_placement.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/io/ring.h"

namespace ferry::role {
namespace {

std::unique_ptr<io::Ring> make_ring() {
    io::RingOptions options;
    options.entries = 64;
    absl::StatusOr<std::unique_ptr<io::Ring>> ring = io::Ring::create(options);
    return ring.ok() ? *std::move(ring) : nullptr;
}

// Places `n` connections accepted on `on` and returns where each went.
std::vector<size_t> place_n(TunnelPlacement& p, size_t on, int n) {
    std::vector<size_t> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(p.place(on));
    }
    return out;
}

TEST(TunnelPlacement, BalancedFillsTheEmptiestShardAndKeepsTiesWhereAccepted) {
    TunnelPlacement p(4, TunnelPlacementPolicy::Balanced);
    // Everything accepted on shard 2 (what SO_REUSEPORT does to a few connections).
    EXPECT_EQ(place_n(p, 2, 8), (std::vector<size_t>{2, 0, 1, 3, 2, 0, 1, 3}));
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(p.connections(i), 2);
    }
    // A shard that lost its connections gets the next ones, wherever they were accepted.
    p.release(1);
    p.release(1);
    EXPECT_EQ(place_n(p, 3, 3), (std::vector<size_t>{1, 1, 3}));
}

TEST(TunnelPlacement, KernelKeepsEveryConnectionWhereItWasAccepted) {
    TunnelPlacement p(2, TunnelPlacementPolicy::Kernel);
    EXPECT_EQ(place_n(p, 1, 3), (std::vector<size_t>{1, 1, 1}));
    EXPECT_EQ(p.connections(0), 0);
    EXPECT_EQ(p.connections(1), 3);
}

TEST(TunnelPlacement, RotateAlwaysHandsToTheNextShard) {
    TunnelPlacement p(3, TunnelPlacementPolicy::Rotate);
    EXPECT_EQ(p.place(0), 1U);
    EXPECT_EQ(p.place(1), 2U);
    EXPECT_EQ(p.place(2), 0U);
    TunnelPlacement one(1, TunnelPlacementPolicy::Rotate);
    EXPECT_EQ(one.place(0), 0U);
}

// Collects what is handed to its shard.
class Receiver final : public HandoffReceiver {
  public:
    void on_handed_off(int fd) noexcept override { fds.push_back(fd); }
    std::vector<int> fds;
};

class HandoffTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ring_ = make_ring();
        if (ring_ == nullptr) {
            GTEST_SKIP() << "io_uring is not available";
        }
    }
    void TearDown() override {
        placement_.detach(1);
        for (int fd : receiver_.fds) {
            close(fd);
        }
    }
    // The owning shard's loop, bounded: waits for `n` connections.
    bool receive(size_t n) {
        const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
        while (receiver_.fds.size() < n && base::mono_ns() < deadline) {
            __kernel_timespec ts{0, 50'000'000};
            io_uring_cqe* cqe = nullptr;
            (void)io_uring_submit_and_wait_timeout(ring_->raw(), &cqe, 1, &ts, nullptr);
            ring_->dispatch();
        }
        return receiver_.fds.size() >= n;
    }
    // A connected pair: the first end is handed over, the second stays with the test.
    static std::pair<int, int> pair() {
        int sv[2] = {-1, -1};
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        return {sv[0], sv[1]};
    }

    TunnelPlacement placement_{2, TunnelPlacementPolicy::Rotate};
    Receiver receiver_;
    std::unique_ptr<io::Ring> ring_;
};

// The handed fd is the same open connection on the other side: bytes written to its peer are
// read through it.
void expect_same_connection(int handed, int kept) {
    ASSERT_EQ(write(kept, "ping", 4), 4);
    char buf[4] = {};
    ASSERT_EQ(read(handed, buf, sizeof(buf)), 4);
    EXPECT_EQ(std::string(buf, 4), "ping");
}

TEST_F(HandoffTest, AConnectionHandedFromAnotherShardsRingArrivesByMsgRing) {
    if (!ring_->features().msg_ring) {
        GTEST_SKIP() << "no IORING_OP_MSG_RING";
    }
    placement_.attach(1, ring_.get(), &receiver_);
    auto [handed, kept] = pair();
    bool sent = false;
    std::thread shard0([&] {
        std::unique_ptr<io::Ring> mine = make_ring();  // SINGLE_ISSUER: made on its thread
        ASSERT_NE(mine, nullptr);
        const size_t to = placement_.place(0);
        ASSERT_EQ(to, 1U);
        sent = placement_.hand_off(0, to, handed, mine.get());
        __kernel_timespec ts{1, 0};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(mine->raw(), &cqe, 1, &ts, nullptr);
        mine->dispatch();
    });
    shard0.join();
    ASSERT_TRUE(sent);
    ASSERT_TRUE(receive(1));
    EXPECT_EQ(receiver_.fds, std::vector<int>{handed});
    EXPECT_EQ(placement_.connections(0), 0);
    EXPECT_EQ(placement_.connections(1), 1);
    expect_same_connection(handed, kept);
    close(kept);
}

TEST_F(HandoffTest, HandOffsBeforeTheOwnerAttachesArriveThroughTheEventfd) {
    auto [a, a_kept] = pair();
    auto [b, b_kept] = pair();
    ASSERT_TRUE(placement_.hand_off(0, placement_.place(0), a, nullptr));
    ASSERT_TRUE(placement_.hand_off(0, placement_.place(0), b, ring_.get()));  // not attached
    placement_.attach(1, ring_.get(), &receiver_);
    ASSERT_TRUE(receive(2));
    EXPECT_EQ(receiver_.fds, (std::vector<int>{a, b}));
    expect_same_connection(a, a_kept);
    expect_same_connection(b, b_kept);
    EXPECT_EQ(placement_.connections(1), 2);
    close(a_kept);
    close(b_kept);
}

TEST_F(HandoffTest, AStoppedShardRefusesHandOffsAndClosesWhatItNeverTook) {
    auto [queued, queued_kept] = pair();
    ASSERT_TRUE(placement_.hand_off(0, placement_.place(0), queued, nullptr));
    placement_.detach(1);
    // What was queued for it is closed (its peer sees the end) and no longer counted there.
    char c = 0;
    EXPECT_EQ(read(queued_kept, &c, 1), 0);
    EXPECT_EQ(placement_.connections(1), 0);
    // A later hand-off fails, and the connection counts where it was accepted again.
    auto [late, late_kept] = pair();
    EXPECT_FALSE(placement_.hand_off(0, placement_.place(0), late, nullptr));
    EXPECT_EQ(placement_.connections(0), 1);
    EXPECT_EQ(placement_.connections(1), 0);
    EXPECT_NE(fcntl(late, F_GETFD), -1) << "the caller still owns a refused connection";
    close(late);
    close(late_kept);
    close(queued_kept);
}

}  // namespace
}  // namespace ferry::role
