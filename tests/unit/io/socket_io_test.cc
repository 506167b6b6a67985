#include "ferry/io/socket_io.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/io/buf_ring.h"
#include "ferry/io/buffer_wait.h"
#include "ferry/io/io_context.h"
#include "ferry/io/ring.h"
#include "ferry/io/socket.h"

namespace ferry::io {
namespace {

// A connected loopback TCP pair (client, server).
std::pair<int, int> tcp_pair() {
    absl::StatusOr<SocketAddress> any = parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = listen_tcp(*any, /*reuse_port=*/false, 4);
    if (!lfd.ok()) {
        return {-1, -1};
    }
    absl::StatusOr<SocketAddress> addr = local_address(*lfd);
    int client = new_tcp_socket(AF_INET);
    if (client < 0 || connect(client, addr->get(), addr->length) != 0) {
        close(*lfd);
        return {-1, -1};
    }
    int server = accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC);
    close(*lfd);
    set_nodelay(server);
    return {client, server};
}

// What a shard gives its sockets, built by hand: a ring, two pools with their provided-buffer
// rings (local and tunnel, as a shard has), the wait list, counters and knobs.
struct IoParts {
    std::unique_ptr<Ring> ring;
    std::unique_ptr<buf::Pool> pool;
    std::unique_ptr<buf::Pool> tunnel_pool;
    std::unique_ptr<BufRing> bufs;
    std::unique_ptr<BufRing> tunnel_bufs;
    BufferWaitList waits;
    SocketMetrics metrics;
    SocketTuning tuning;
    std::unique_ptr<IoContext> io;
};

class RecordingEvents final : public SocketEvents {
  public:
    void on_socket_data(buf::Chunk&& bytes) noexcept override {
        if (closed > 0) {
            after_close = true;
        }
        text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        ++data_calls;
        if (hold) {
            held.push_back(std::move(bytes));
        }
    }
    void on_socket_eof() noexcept override { ++eofs; }
    void on_socket_error(const char* what, int err) noexcept override {
        errors.emplace_back(what);
        last_errno = err;
    }
    void on_socket_sent() noexcept override { ++sent; }
    void on_socket_connected(int res) noexcept override { connected.push_back(res); }
    void on_socket_closed() noexcept override { ++closed; }

    std::string text;
    int data_calls = 0;
    bool hold = false;
    std::vector<buf::Chunk> held;
    int eofs = 0;
    std::vector<std::string> errors;
    int last_errno = 0;
    int sent = 0;
    std::vector<int> connected;
    int closed = 0;
    bool after_close = false;
};

class SocketIoTest : public ::testing::Test {
  protected:
    void TearDown() override {
        if (io_ != nullptr && !io_->closing() && ctx_ != nullptr) {
            io_->close();
        }
        if (io_ != nullptr && ctx_ != nullptr) {
            run_until([&] { return events_.closed > 0; });
        }
        events_.held.clear();
        if (peer_ >= 0) {
            close(peer_);
        }
    }

    void build(uint32_t buffer_size = 16384, uint32_t buffer_count = 256,
               uint32_t ring_entries = 64) {
        RingOptions ring;
        ring.entries = 64;
        absl::StatusOr<std::unique_ptr<Ring>> r = Ring::create(ring);
        if (!r.ok()) {
            GTEST_SKIP() << r.status();
        }
        parts_ = std::make_unique<IoParts>();
        parts_->ring = *std::move(r);
        parts_->pool = std::make_unique<buf::Pool>(buffer_size, buffer_count);
        parts_->tunnel_pool = std::make_unique<buf::Pool>(buffer_size, 64);
        parts_->bufs = std::make_unique<BufRing>(*parts_->ring, *parts_->pool, 0, ring_entries);
        parts_->tunnel_bufs = std::make_unique<BufRing>(*parts_->ring, *parts_->tunnel_pool, 1, 16);
        for (BufRing* b : {parts_->bufs.get(), parts_->tunnel_bufs.get()}) {
            if (absl::Status st = b->init(); !st.ok()) {
                GTEST_SKIP() << st;
            }
        }
        parts_->tuning = tuning_;
        parts_->io = std::make_unique<IoContext>(*parts_->ring, parts_->waits, parts_->metrics,
                                                 parts_->tuning);
        ctx_ = parts_.get();
        io_ = std::make_unique<SocketIo>(
            *parts_->io, use_tunnel_bufs_ ? *parts_->tunnel_bufs : *parts_->bufs, &events_);
    }

    // A SocketIo on one end of a loopback pair; the test drives the other end by hand.
    void build_connected(uint32_t buffer_size = 16384, uint32_t buffer_count = 256,
                         uint32_t ring_entries = 64) {
        build(buffer_size, buffer_count, ring_entries);
        if (IsSkipped()) {
            return;
        }
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        ASSERT_GE(b, 0);
        io_->attach(a);
        peer_ = b;
    }

    // The shard's buffer housekeeping: lend freed buffers, re-arm starved reads (unless a test
    // holds them parked to look at them).
    void housekeeping() {
        ctx_->bufs->refill();
        ctx_->tunnel_bufs->refill();
        if (rearm_starved_) {
            ctx_->waits.retry_all();
        }
    }

    unsigned step() {
        __kernel_timespec ts{0, 20'000'000};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx_->ring->raw(), &cqe, 1, &ts, nullptr);
        unsigned n = ctx_->ring->dispatch();
        housekeeping();
        if (between_steps_) {
            between_steps_();
        }
        return n;
    }

    template <class Cond>
    bool run_until(Cond cond, int max_steps = 1000) {
        const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
        for (int i = 0; i < max_steps && !cond() && base::mono_ns() < deadline; ++i) {
            step();
        }
        return cond();
    }

    void settle() {
        int quiet = 0;
        for (int i = 0; i < 500 && quiet < 3; ++i) {
            quiet = step() == 0 ? quiet + 1 : 0;
        }
    }

    void peer_write(std::string_view text) {
        ASSERT_EQ(write(peer_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    }

    // Appends whatever the peer end can read right now; true once it read EOF.
    bool peer_drain(std::string* out) {
        char buf[65536];
        for (;;) {
            ssize_t n = recv(peer_, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0) {
                return true;
            }
            if (n < 0) {
                return false;
            }
            out->append(buf, static_cast<size_t>(n));
        }
    }

    SocketTuning tuning_;
    std::unique_ptr<IoParts> parts_;
    IoParts* ctx_ = nullptr;
    RecordingEvents events_;
    std::unique_ptr<SocketIo> io_;
    std::function<void()> between_steps_;
    bool use_tunnel_bufs_ = false;
    bool rearm_starved_ = true;
    int peer_ = -1;
};

TEST_F(SocketIoTest, ReadsBytesAsTheyArrive) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    io_->start_reading();
    EXPECT_TRUE(io_->reading());
    peer_write("first ");
    ASSERT_TRUE(run_until([&] { return events_.text == "first "; }));
    peer_write("second");
    ASSERT_TRUE(run_until([&] { return events_.text == "first second"; }));
    EXPECT_EQ(ctx_->metrics.recv_no_buffers.value(), 0U);
}

TEST_F(SocketIoTest, ReadsLandInTheBufferRingItWasGiven) {
    use_tunnel_bufs_ = true;
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    events_.hold = true;
    io_->start_reading();
    peer_write("tunnel bytes");
    ASSERT_TRUE(run_until([&] { return events_.text == "tunnel bytes"; }));
    ASSERT_EQ(events_.held.size(), 1U);
    const std::span<std::byte> region = ctx_->tunnel_pool->region();
    EXPECT_GE(events_.held[0].data(), region.data());
    EXPECT_LT(events_.held[0].data(), region.data() + region.size());
    EXPECT_EQ(ctx_->bufs->lent(), 64U) << "the local-socket ring is untouched";
}

TEST_F(SocketIoTest, StartingToReadTwiceDeliversEachByteOnce) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    io_->start_reading();
    io_->start_reading();
    peer_write("once");
    ASSERT_TRUE(run_until([&] { return events_.text.size() >= 4; }));
    settle();
    EXPECT_EQ(events_.text, "once");
}

TEST_F(SocketIoTest, APeerHalfCloseIsReportedAsEof) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    io_->start_reading();
    peer_write("bye");
    ASSERT_EQ(shutdown(peer_, SHUT_WR), 0);
    ASSERT_TRUE(run_until([&] { return events_.eofs == 1; }));
    EXPECT_EQ(events_.text, "bye");
    EXPECT_FALSE(io_->reading());
    settle();
    EXPECT_EQ(events_.eofs, 1);
    EXPECT_TRUE(events_.errors.empty());
}

TEST_F(SocketIoTest, SendWritesEveryIovecInOrder) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    std::string a = "alpha-";
    std::string b = "beta-";
    std::string c = "gamma";
    iovec iov[3] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    io_->send(iov, 3, a.size() + b.size() + c.size());
    EXPECT_TRUE(io_->sending());
    ASSERT_TRUE(run_until([&] { return events_.sent == 1; }));
    EXPECT_FALSE(io_->sending());
    std::string got;
    ASSERT_TRUE(run_until([&] {
        peer_drain(&got);
        return got.size() == 16;
    }));
    EXPECT_EQ(got, "alpha-beta-gamma");
}

TEST_F(SocketIoTest, ALargeSendCompletesOnceAfterEveryByteLeft) {
    tuning_.zerocopy_threshold = 64 * 1024;
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    std::string big(2 * 1024 * 1024, '\0');
    for (size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>((i * 7) ^ (i >> 9));
    }
    // Many odd-sized iovecs (within IOV_MAX), so a short write resumes in the middle of one.
    std::vector<iovec> iov;
    for (size_t off = 0; off < big.size(); off += 8191) {
        iov.push_back({big.data() + off, std::min<size_t>(8191, big.size() - off)});
    }
    ASSERT_LE(iov.size(), 1024U);
    std::string got;
    between_steps_ = [&] { peer_drain(&got); };
    io_->send(iov.data(), static_cast<uint32_t>(iov.size()), big.size());
    ASSERT_TRUE(run_until([&] { return events_.sent == 1 && got.size() == big.size(); }))
        << "sent " << events_.sent << ", peer got " << got.size() << ", errors "
        << events_.errors.size();
    EXPECT_TRUE(got == big) << "payload differs";
    EXPECT_FALSE(io_->sending());
    if (ctx_->ring->features().send_zc) {
        EXPECT_GE(ctx_->metrics.send_zc.value(), 1U);
    }
    settle();
    EXPECT_EQ(events_.sent, 1);
}

TEST_F(SocketIoTest, ZeroCopyIsNotUsedBelowTheThreshold) {
    tuning_.zerocopy_threshold = 64 * 1024;
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    std::string small(1000, 'z');
    iovec iov{small.data(), small.size()};
    io_->send(&iov, 1, small.size());
    ASSERT_TRUE(run_until([&] { return events_.sent == 1; }));
    EXPECT_EQ(ctx_->metrics.send_zc.value(), 0U);
}

TEST_F(SocketIoTest, ShutdownWriteSendsAFinToThePeer) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    std::string msg = "last";
    iovec iov{msg.data(), msg.size()};
    io_->send(&iov, 1, msg.size());
    ASSERT_TRUE(run_until([&] { return events_.sent == 1; }));
    io_->shutdown_write();
    std::string got;
    ASSERT_TRUE(run_until([&] { return peer_drain(&got); }));
    EXPECT_EQ(got, "last");
    // Only the write side is shut: the socket still reads.
    io_->start_reading();
    peer_write("still open");
    ASSERT_TRUE(run_until([&] { return events_.text == "still open"; }));
}

TEST_F(SocketIoTest, CloseEndsEveryOpThenReportsClosedOnce) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    io_->start_reading();
    peer_write("x");
    ASSERT_TRUE(run_until([&] { return events_.text == "x"; }));
    io_->close();
    EXPECT_TRUE(io_->closing());
    EXPECT_EQ(events_.closed, 0) << "never reported from inside close()";
    ASSERT_TRUE(run_until([&] { return events_.closed == 1; }));
    EXPECT_EQ(io_->fd(), -1);
    std::string got;
    EXPECT_TRUE(run_until([&] { return peer_drain(&got); })) << "the peer sees the close";
    peer_write("late");
    settle();
    EXPECT_EQ(events_.closed, 1);
    EXPECT_FALSE(events_.after_close);
    EXPECT_EQ(events_.text, "x");
    io_->close();  // idempotent
    settle();
    EXPECT_EQ(events_.closed, 1);
}

TEST_F(SocketIoTest, CloseWithoutASocketStillReportsFromTheRing) {
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    io_->close();
    EXPECT_EQ(events_.closed, 0);
    ASSERT_TRUE(run_until([&] { return events_.closed == 1; }));
}

TEST_F(SocketIoTest, PauseReadingStopsDeliveryUntilReadingStartsAgain) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    io_->start_reading();
    peer_write("before");
    ASSERT_TRUE(run_until([&] { return events_.text == "before"; }));
    io_->pause_reading();
    EXPECT_FALSE(io_->reading());
    settle();
    peer_write("during");
    settle();
    EXPECT_EQ(events_.text, "before");
    io_->start_reading();
    ASSERT_TRUE(run_until([&] { return events_.text == "beforeduring"; }));
}

TEST_F(SocketIoTest, ARecvStarvedOfBuffersIsParkedAndRearmedAfterRefill) {
    // 16 buffers of 256 bytes, 2 of them reserve, lent four at a time.
    ASSERT_NO_FATAL_FAILURE(build_connected(256, 16, 4));
    if (IsSkipped()) {
        return;
    }
    events_.hold = true;
    rearm_starved_ = false;
    io_->start_reading();
    std::string data(256 * 30, '\0');
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>('a' + i % 26);
    }
    peer_write(data);
    // Hold every chunk: the pool drains to its reserve of 2 and the ring stays dry.
    ASSERT_TRUE(run_until([&] { return ctx_->metrics.recv_no_buffers.value() >= 1; }));
    settle();
    EXPECT_TRUE(io_->waiting_for_buffers());
    EXPECT_TRUE(io_->reading()) << "still wants to read; only waits for buffers";
    EXPECT_LT(events_.text.size(), data.size());

    // Release: the shard's housekeeping refills the ring and re-arms the parked read.
    events_.held.clear();
    events_.hold = false;
    rearm_starved_ = true;
    ASSERT_TRUE(run_until([&] { return events_.text.size() == data.size(); }));
    EXPECT_EQ(events_.text, data);
    EXPECT_FALSE(io_->waiting_for_buffers());
}

TEST_F(SocketIoTest, CloseUnparksAStarvedRecv) {
    ASSERT_NO_FATAL_FAILURE(build_connected(256, 16, 4));
    if (IsSkipped()) {
        return;
    }
    events_.hold = true;
    rearm_starved_ = false;
    io_->start_reading();
    peer_write(std::string(256 * 30, 'q'));
    ASSERT_TRUE(run_until([&] { return ctx_->metrics.recv_no_buffers.value() >= 1; }));
    settle();
    ASSERT_TRUE(io_->waiting_for_buffers());
    io_->close();
    EXPECT_FALSE(io_->waiting_for_buffers());
    EXPECT_TRUE(ctx_->waits.empty());
    ASSERT_TRUE(run_until([&] { return events_.closed == 1; }));
}

TEST_F(SocketIoTest, ConnectReportsSuccess) {
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, false, 4);
    ASSERT_TRUE(lfd.ok());
    absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
    io_->attach(io::new_tcp_socket(AF_INET));
    io_->connect(addr->get(), addr->length);
    ASSERT_TRUE(run_until([&] { return !events_.connected.empty(); }));
    EXPECT_EQ(events_.connected[0], 0);
    settle();  // the linked timeout's cancellation CQE must not surface as an event
    EXPECT_EQ(events_.connected.size(), 1U);
    close(*lfd);
}

TEST_F(SocketIoTest, ConnectToAClosedPortReportsRefused) {
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, false, 4);
    ASSERT_TRUE(lfd.ok());
    absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
    close(*lfd);
    io_->attach(io::new_tcp_socket(AF_INET));
    io_->connect(addr->get(), addr->length);
    ASSERT_TRUE(run_until([&] { return !events_.connected.empty(); }));
    EXPECT_EQ(events_.connected[0], -ECONNREFUSED);
}

TEST_F(SocketIoTest, ConnectThatNeverAnswersTimesOut) {
    tuning_.connect_timeout_ns = 50'000'000;
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    // A listener with a full backlog and no accept: further SYNs get no answer.
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, false, 0);
    ASSERT_TRUE(lfd.ok());
    absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        int fd = io::new_tcp_socket(AF_INET);
        timeval tv{0, 100'000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void)connect(fd, addr->get(), addr->length);
        fillers.push_back(fd);
    }
    io_->attach(io::new_tcp_socket(AF_INET));
    io_->connect(addr->get(), addr->length);
    ASSERT_TRUE(run_until([&] { return !events_.connected.empty(); }));
    if (events_.connected[0] == 0) {
        GTEST_SKIP() << "the kernel accepted the handshake despite the full backlog";
    }
    EXPECT_EQ(events_.connected[0], -ETIMEDOUT);
    for (int fd : fillers) {
        close(fd);
    }
    close(*lfd);
}

TEST_F(SocketIoTest, SendingToAResetPeerReportsAnError) {
    ASSERT_NO_FATAL_FAILURE(build_connected());
    if (IsSkipped()) {
        return;
    }
    linger lg{1, 0};
    ASSERT_EQ(setsockopt(peer_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(peer_);  // RST
    peer_ = -1;
    std::string msg(1000, 'r');
    iovec iov{msg.data(), msg.size()};
    for (int i = 0; i < 5 && events_.errors.empty(); ++i) {
        io_->send(&iov, 1, msg.size());
        ASSERT_TRUE(run_until([&] { return events_.sent > i || !events_.errors.empty(); }));
    }
    ASSERT_EQ(events_.errors.size(), 1U);
    EXPECT_TRUE(events_.last_errno == EPIPE || events_.last_errno == ECONNRESET)
        << strerror(events_.last_errno);
    EXPECT_EQ(events_.errors[0], "peer reset the connection");
}

}  // namespace
}  // namespace ferry::io
