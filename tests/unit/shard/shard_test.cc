#include "ferry/shard/shard.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/buf/pool.h"
#include "ferry/io/socket.h"
#include "ferry/io/socket_io.h"
#include "ferry/loop/context.h"
#include "ferry/shard/runtime.h"
#include "ferry/shard/service.h"

namespace ferry::shard {
namespace {

// What the services of a test report across threads; tests wait on it with a deadline.
struct Board {
    std::mutex mu;
    std::condition_variable cv;
    int started = 0;
    int ticks = 0;
    int drains = 0;
    int housekeeping = 0;
    int destroyed = 0;
    std::vector<int> shard_indices;
    std::vector<std::thread::id> threads;

    template <class Cond>
    bool wait(Cond cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, limit, [&] { return cond(); });
    }
    template <class Fn>
    void update(Fn fn) {
        {
            std::lock_guard<std::mutex> lock(mu);
            fn();
        }
        cv.notify_all();
    }
};

class TestService final : public Service {
  public:
    TestService(Board* board, int shard, bool start_ok, bool idle_when_drained)
        : board_(board), start_ok_(start_ok), idle_when_drained_(idle_when_drained) {
        board_->update([&] {
            board_->shard_indices.push_back(shard);
            board_->threads.push_back(std::this_thread::get_id());
        });
    }
    ~TestService() override {
        board_->update([&] { ++board_->destroyed; });
    }
    bool start() noexcept override {
        board_->update([&] { ++board_->started; });
        return start_ok_;
    }
    void drain() noexcept override {
        drained_ = true;
        board_->update([&] { ++board_->drains; });
    }
    bool idle() const noexcept override { return drained_ && idle_when_drained_; }
    void tick(uint64_t) noexcept override {
        board_->update([&] { ++board_->ticks; });
    }
    void housekeeping() noexcept override {
        board_->update([&] { ++board_->housekeeping; });
    }

  private:
    Board* board_;
    bool start_ok_;
    bool idle_when_drained_;
    bool drained_ = false;
};

// Reads a loopback socket into the local-socket pool and keeps every chunk, so the pool runs
// dry while the peer still has bytes queued: the socket's recv then starves for buffers.
class HoardingService final : public Service, private io::SocketEvents {
  public:
    HoardingService(loop::Context& ctx, Board* board)
        : board_(board), io_(ctx, ctx.local_bufs, this) {}
    ~HoardingService() override {
        held_.clear();
        for (int fd : {io_.fd(), peer_}) {
            if (fd >= 0) {
                close(fd);
            }
        }
        board_->update([&] { ++board_->destroyed; });
    }
    bool start() noexcept override {
        absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
        absl::StatusOr<int> lfd = io::listen_tcp(*any, /*reuse_port=*/false, 4);
        if (!lfd.ok()) {
            return false;
        }
        absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
        peer_ = io::new_tcp_socket(AF_INET);
        bool ok = peer_ >= 0 && connect(peer_, addr->get(), addr->length) == 0;
        int fd = ok ? accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC) : -1;
        close(*lfd);
        if (fd < 0) {
            return false;
        }
        io_.attach(fd);
        io_.start_reading();
        board_->update([&] { ++board_->started; });
        return true;
    }
    void drain() noexcept override {}
    bool idle() const noexcept override { return true; }
    void tick(uint64_t) noexcept override {}
    // Keeps the peer's side full without blocking the shard.
    void housekeeping() noexcept override {
        while (written_ < kTotal) {
            ssize_t n = send(peer_, chunk_.data(), chunk_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            written_ += static_cast<size_t>(n);
        }
        board_->update([&] { ++board_->housekeeping; });
    }

  private:
    static constexpr size_t kTotal = 1 << 20;
    void on_socket_data(buf::Chunk&& bytes) noexcept override { held_.push_back(std::move(bytes)); }
    void on_socket_eof() noexcept override {}
    void on_socket_error(const char*, int) noexcept override {}
    void on_socket_sent() noexcept override {}
    void on_socket_connected(int) noexcept override {}
    void on_socket_closed() noexcept override {}

    Board* board_;
    io::SocketIo io_;
    std::vector<buf::Chunk> held_;
    std::string chunk_ = std::string(16384, 'h');
    size_t written_ = 0;
    int peer_ = -1;
};

ShardOptions small_shard() {
    ShardOptions o;
    o.ring.entries = 64;
    o.buffer_size = 4096;
    o.buffer_count = 64;
    o.buffer_ring_entries = 16;
    o.tunnel_buffer_count = 64;
    o.tunnel_buffer_ring_entries = 16;
    o.tick_ns = 1'000'000;  // 1 ms, so ticks come quickly
    return o;
}

ServiceFactory factory(Board* board, bool start_ok = true, bool idle_when_drained = true) {
    return [=](loop::Context&, int index) {
        std::vector<std::unique_ptr<Service>> services;
        services.push_back(
            std::make_unique<TestService>(board, index, start_ok, idle_when_drained));
        return services;
    };
}

// Posts Stop when a test leaves early, so ~Shard's join never waits on a running loop.
class StopOnExit {
  public:
    explicit StopOnExit(Shard& shard) : shard_(shard) {}
    ~StopOnExit() { shard_.post(Message{MessageType::Stop}, nullptr); }
    StopOnExit(const StopOnExit&) = delete;
    StopOnExit& operator=(const StopOnExit&) = delete;

  private:
    Shard& shard_;
};

// Status is published by the shard thread; poll it with a deadline (the exit path has no
// other signal once the services are gone).
bool wait_status(const Shard& shard, Shard::Status want) {
    const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
    while (shard.status() != want && base::mono_ns() < deadline) {
        std::this_thread::yield();
    }
    return shard.status() == want;
}

TEST(Shard, StartsRunsTicksDrainsAndExits) {
    Board board;
    loop::Metrics metrics;
    Shard shard(0, small_shard(), factory(&board), &metrics);
    StopOnExit guard(shard);
    EXPECT_EQ(shard.status(), Shard::Status::Starting);
    shard.start();
    ASSERT_TRUE(board.wait([&] { return board.ticks >= 3; })) << "ticks: " << board.ticks;
    EXPECT_EQ(shard.status(), Shard::Status::Running);
    EXPECT_EQ(board.started, 1);
    EXPECT_GE(board.housekeeping, 1);
    EXPECT_NE(board.threads[0], std::this_thread::get_id()) << "services live on the shard";

    shard.post(Message{MessageType::Drain}, nullptr);
    ASSERT_TRUE(board.wait([&] { return board.destroyed == 1; }));
    EXPECT_EQ(board.drains, 1);
    ASSERT_TRUE(wait_status(shard, Shard::Status::Exited));
    shard.join();
}

TEST(Shard, DrainWaitsUntilEveryServiceIsIdleAndStopEndsItAnyway) {
    Board board;
    loop::Metrics metrics;
    Shard shard(3, small_shard(), factory(&board, true, /*idle_when_drained=*/false), &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(board.wait([&] { return board.ticks >= 1; }));
    EXPECT_EQ(board.shard_indices, std::vector<int>{3});
    shard.post(Message{MessageType::Drain}, nullptr);
    ASSERT_TRUE(board.wait([&] { return board.drains == 1; }));
    // Still busy: the loop keeps running (and ticking) after the drain.
    const int ticks = board.ticks;
    ASSERT_TRUE(board.wait([&] { return board.ticks >= ticks + 3; }));
    EXPECT_EQ(shard.status(), Shard::Status::Running);
    EXPECT_EQ(board.destroyed, 0);

    shard.post(Message{MessageType::Stop}, nullptr);
    ASSERT_TRUE(board.wait([&] { return board.destroyed == 1; }));
    ASSERT_TRUE(wait_status(shard, Shard::Status::Exited));
    EXPECT_EQ(board.drains, 1) << "a second drain request is not relayed twice";
}

TEST(Shard, ADrainPostedTwiceDrainsTheServicesOnce) {
    Board board;
    loop::Metrics metrics;
    Shard shard(0, small_shard(), factory(&board, true, false), &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(board.wait([&] { return board.ticks >= 1; }));
    shard.post(Message{MessageType::Drain}, nullptr);
    shard.post(Message{MessageType::Drain}, nullptr);
    ASSERT_TRUE(board.wait([&] { return board.drains >= 1; }));
    const int ticks = board.ticks;
    ASSERT_TRUE(board.wait([&] { return board.ticks >= ticks + 2; }));
    EXPECT_EQ(board.drains, 1);
    shard.post(Message{MessageType::Stop}, nullptr);
    ASSERT_TRUE(wait_status(shard, Shard::Status::Exited));
}

TEST(Shard, AServiceThatFailsToStartMarksTheShardFailed) {
    Board board;
    loop::Metrics metrics;
    Shard shard(0, small_shard(), factory(&board, /*start_ok=*/false), &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(wait_status(shard, Shard::Status::Failed));
    shard.join();
    EXPECT_EQ(board.started, 1);
    EXPECT_EQ(board.ticks, 0);
    EXPECT_EQ(board.destroyed, 1);
}

TEST(Shard, AnImpossibleRingMarksTheShardFailed) {
    Board board;
    loop::Metrics metrics;
    ShardOptions o = small_shard();
    o.ring.entries = 0;
    Shard shard(0, o, factory(&board), &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(wait_status(shard, Shard::Status::Failed));
    shard.join();
    EXPECT_EQ(board.started, 0) << "no service is built without a ring";
}

TEST(Shard, PublishesBuffersInUseToItsMetrics) {
    Board board;
    loop::Metrics metrics;
    Shard shard(0, small_shard(), factory(&board), &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(board.wait([&] { return board.housekeeping >= 2; }));
    // Every ring slot holds a pool buffer lent to the kernel.
    EXPECT_EQ(metrics.buffers_in_use.value(), 16);
    EXPECT_EQ(metrics.tunnel_buffers_in_use.value(), 16);
    shard.post(Message{MessageType::Drain}, nullptr);
    ASSERT_TRUE(wait_status(shard, Shard::Status::Exited));
}

// A parked reader is re-armed only once its own ring has buffers again: while the pool stays
// dry an immediate ENOBUFS on every iteration would keep submit_and_wait() from ever sleeping.
TEST(Shard, AReadStarvedOfBuffersDoesNotSpinTheLoop) {
    Board board;
    loop::Metrics metrics;
    ShardOptions o = small_shard();
    o.tick_ns = 50'000'000;  // an idle loop wakes ~20 times a second
    ServiceFactory hoarder = [&](loop::Context& ctx, int) {
        std::vector<std::unique_ptr<Service>> services;
        services.push_back(std::make_unique<HoardingService>(ctx, &board));
        return services;
    };
    Shard shard(0, o, hoarder, &metrics);
    StopOnExit guard(shard);
    shard.start();
    ASSERT_TRUE(board.wait([&] { return metrics.socket.recv_no_buffers.value() >= 1; }))
        << "the pool never ran dry";
    const int before = board.housekeeping;
    // Nothing can change while every buffer is held: a sleeping loop iterates only on ticks.
    EXPECT_FALSE(board.wait([&] { return board.housekeeping > before + 1000; },
                            std::chrono::milliseconds(500)))
        << board.housekeeping - before << " loop iterations in 500 ms, "
        << metrics.socket.recv_no_buffers.value() << " ENOBUFS completions";
    shard.post(Message{MessageType::Stop}, nullptr);
    ASSERT_TRUE(wait_status(shard, Shard::Status::Exited));
}

TEST(Runtime, StartsTwoShardsAndRequestDrainEndsBoth) {
    Board board;
    RuntimeOptions options;
    options.shards = 2;
    options.shard = small_shard();
    {
        Runtime runtime(options, factory(&board));
        ASSERT_TRUE(runtime.start().ok());
        EXPECT_EQ(runtime.shard_count(), 2U);
        ASSERT_TRUE(board.wait([&] { return board.started == 2 && board.ticks >= 4; }));
        std::vector<int> indices = board.shard_indices;
        std::sort(indices.begin(), indices.end());
        EXPECT_EQ(indices, (std::vector<int>{0, 1}));
        EXPECT_NE(board.threads[0], board.threads[1]) << "one thread per shard";

        runtime.request_drain();
        // Both loops end on their own: their services are torn down before the runtime is.
        ASSERT_TRUE(board.wait([&] { return board.destroyed == 2; }));
        EXPECT_EQ(board.drains, 2);
        EXPECT_EQ(runtime.metrics(0).buffers_in_use.value(), 16);
    }
    EXPECT_EQ(board.destroyed, 2);
}

TEST(Runtime, StartReportsAShardThatFailed) {
    Board board;
    RuntimeOptions options;
    options.shards = 2;
    options.shard = small_shard();
    Runtime runtime(options, factory(&board, /*start_ok=*/false));
    absl::Status st = runtime.start();
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ferry::shard
