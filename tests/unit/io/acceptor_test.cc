#include "ferry/io/acceptor.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "ferry/io/ring.h"
#include "ferry/io/socket.h"

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

class CollectingHandler final : public AcceptHandler {
  public:
    ~CollectingHandler() {
        for (int fd : fds) {
            close(fd);
        }
    }
    void on_accepted(int fd) noexcept override { fds.push_back(fd); }
    std::vector<int> fds;
};

class AcceptorTest : public ::testing::Test {
  protected:
    void SetUp() override {
        RingOptions options;
        options.entries = 64;
        absl::StatusOr<std::unique_ptr<Ring>> ring = Ring::create(options);
        if (!ring.ok()) {
            GTEST_SKIP() << ring.status();
        }
        ring_ = *std::move(ring);
        acceptor_ = std::make_unique<Acceptor>(*ring_, &handler_);
        absl::StatusOr<SocketAddress> any = parse_address("127.0.0.1:0");
        ASSERT_TRUE(any.ok());
        ASSERT_TRUE(acceptor_->listen(*any, 64).ok());
        absl::StatusOr<SocketAddress> local = local_address(acceptor_->fd());
        ASSERT_TRUE(local.ok());
        addr_ = *local;
    }
    void TearDown() override {
        for (int fd : clients_) {
            close(fd);
        }
        if (acceptor_ != nullptr) {
            acceptor_->stop();
            run_until(*ring_, [&] { return acceptor_->idle(); });
        }
    }
    // A blocking connect: on loopback the handshake completes without the accept.
    int connect_client() {
        int fd = new_tcp_socket(AF_INET);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(connect(fd, addr_.get(), addr_.length), 0) << strerror(errno);
        clients_.push_back(fd);
        return fd;
    }

    std::unique_ptr<Ring> ring_;
    CollectingHandler handler_;
    std::unique_ptr<Acceptor> acceptor_;
    SocketAddress addr_;
    std::vector<int> clients_;
};

TEST_F(AcceptorTest, ListenBindsAndExposesTheListener) {
    EXPECT_GE(acceptor_->fd(), 0);
    EXPECT_NE(addr_.port(), 0);
    EXPECT_TRUE(acceptor_->idle()) << "not armed before start()";
}

TEST_F(AcceptorTest, AcceptsSeveralConnectionsWithOneMultishotAccept) {
    acceptor_->start();
    constexpr size_t kClients = 6;
    for (size_t i = 0; i < kClients; ++i) {
        connect_client();
    }
    ASSERT_TRUE(run_until(*ring_, [&] { return handler_.fds.size() == kClients; }));
    EXPECT_FALSE(acceptor_->idle());

    // Each accepted fd is the server side of one client, with TCP_NODELAY set.
    for (size_t i = 0; i < kClients; ++i) {
        const char byte = static_cast<char>('a' + i);
        ASSERT_EQ(write(clients_[i], &byte, 1), 1);
    }
    std::string seen;
    for (int fd : handler_.fds) {
        char c = 0;
        ASSERT_EQ(read(fd, &c, 1), 1);
        seen.push_back(c);
        int on = 0;
        socklen_t len = sizeof(on);
        ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
        EXPECT_NE(on, 0);
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, "abcdef");
}

TEST_F(AcceptorTest, ConnectionsMadeBeforeStartAreAcceptedOnceStarted) {
    connect_client();
    connect_client();
    acceptor_->start();
    ASSERT_TRUE(run_until(*ring_, [&] { return handler_.fds.size() == 2; }));
}

TEST_F(AcceptorTest, StartTwiceArmsOnlyOneAccept) {
    acceptor_->start();
    acceptor_->start();
    connect_client();
    ASSERT_TRUE(run_until(*ring_, [&] { return handler_.fds.size() == 1; }));
    // A second armed accept would have taken nothing more, but nothing must be duplicated.
    step(*ring_);
    EXPECT_EQ(handler_.fds.size(), 1U);
}

TEST_F(AcceptorTest, StopEndsTheAcceptAndClosesTheListener) {
    acceptor_->start();
    connect_client();
    ASSERT_TRUE(run_until(*ring_, [&] { return handler_.fds.size() == 1; }));
    acceptor_->stop();
    ASSERT_TRUE(run_until(*ring_, [&] { return acceptor_->idle(); }));
    EXPECT_EQ(acceptor_->fd(), -1);

    // The port is closed now: a new client is refused and nothing more is handed out.
    int fd = new_tcp_socket(AF_INET);
    ASSERT_GE(fd, 0);
    EXPECT_NE(connect(fd, addr_.get(), addr_.length), 0);
    close(fd);
    step(*ring_);
    EXPECT_EQ(handler_.fds.size(), 1U);
}

TEST_F(AcceptorTest, StartAfterStopDoesNothing) {
    acceptor_->start();
    acceptor_->stop();
    ASSERT_TRUE(run_until(*ring_, [&] { return acceptor_->idle(); }));
    acceptor_->start();
    EXPECT_TRUE(acceptor_->idle());
}

TEST_F(AcceptorTest, StopBeforeStartLeavesItIdle) {
    acceptor_->stop();
    EXPECT_TRUE(acceptor_->idle());
    acceptor_->start();
    EXPECT_TRUE(acceptor_->idle());
}

}  // namespace
}  // namespace ferry::io
