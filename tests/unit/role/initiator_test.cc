#include "ferry/role/initiator.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "ferry/role/terminator.h"
#include "role_loop.h"

namespace ferry::role {
namespace {

using testing::listen_loopback;

// A port on 127.0.0.1 that nothing listens on (bound, then closed).
uint16_t dead_port() {
    uint16_t port = 0;
    int fd = listen_loopback(&port);
    close(fd);
    return port;
}

ServiceUrl tcp_url(uint16_t port) {
    ServiceUrl u;
    u.address = *io::parse_address("127.0.0.1:" + std::to_string(port));
    u.port = port;
    u.text = "127.0.0.1:" + std::to_string(port);
    return u;
}

// An initiator and a terminator on one loop, a test-held echo upstream behind the terminator.
class InitiatorTest : public testing::RoleLoop {
  protected:
    void TearDown() override {
        services_.clear();
        initiator_.reset();
        terminator_.reset();
        for (int fd : {upstream_listener_, upstream_, client_}) {
            if (fd >= 0) {
                close(fd);
            }
        }
    }

    void start(std::vector<uint16_t> peer_ports, uint16_t terminator_port) {
        build();
        if (IsSkipped()) {
            return;
        }
        uint16_t upstream_port = 0;
        upstream_listener_ = listen_loopback(&upstream_port);
        ASSERT_GE(upstream_listener_, 0);
        TerminatorConfig t;
        t.listen_tunnel = tcp_url(terminator_port).address;
        t.upstreams.push_back(tcp_url(upstream_port));
        t.node_name = "terminator";
        t.security.tls = false;
        terminator_ =
            std::make_unique<Terminator>(*ctx_, terminator_metrics_, limits_, std::move(t));
        ASSERT_TRUE(terminator_->start());
        services_.push_back(terminator_.get());

        listen_port_ = dead_port();
        InitiatorConfig i;
        i.listen.push_back(tcp_url(listen_port_));
        for (uint16_t p : peer_ports) {
            i.peers.push_back(tcp_url(p).address);
        }
        i.node_name = "initiator";
        i.security.tls = false;
        i.handshake_timeout_ns = handshake_timeout_ns_;
        initiator_ = std::make_unique<Initiator>(*ctx_, metrics_, limits_, std::move(i));
        ASSERT_TRUE(initiator_->start());
        services_.push_back(initiator_.get());
        // The echo upstream: accept one connection and send back what it reads.
        between_steps_ = [this] {
            pollfd p{upstream_listener_, POLLIN, 0};
            if (upstream_ < 0 && poll(&p, 1, 0) == 1) {
                upstream_ = accept4(upstream_listener_, nullptr, nullptr, SOCK_CLOEXEC);
            }
            char buf[4096];
            ssize_t n = upstream_ >= 0 ? recv(upstream_, buf, sizeof(buf), MSG_DONTWAIT) : -1;
            if (n > 0) {
                (void)send(upstream_, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
            }
        };
    }

    // Connects a client to the initiator's listener and returns what comes back for `text`.
    std::string round_trip(const std::string& text) {
        client_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        io::SocketAddress a = tcp_url(listen_port_).address;
        (void)connect(client_, a.get(), a.length);
        bool sent = false;
        std::string got;
        (void)run_until([&] {
            if (!sent && send(client_, text.data(), text.size(), MSG_NOSIGNAL) ==
                             static_cast<ssize_t>(text.size())) {
                sent = true;
            }
            char buf[4096];
            ssize_t n = recv(client_, buf, sizeof(buf), 0);
            if (n > 0) {
                got.append(buf, static_cast<size_t>(n));
            }
            return got.size() >= text.size();
        });
        return got;
    }

    ProcessLimits limits_{0, 1024};
    uint64_t handshake_timeout_ns_ = 10'000'000'000;
    ShardMetrics terminator_metrics_;
    std::unique_ptr<Terminator> terminator_;
    std::unique_ptr<Initiator> initiator_;
    uint16_t listen_port_ = 0;
    int upstream_listener_ = -1;
    int upstream_ = -1;
    int client_ = -1;
};

TEST_F(InitiatorTest, StreamsSkipAPeerWithoutAUsableTunnel) {
    const uint16_t dead = dead_port();
    const uint16_t live = dead_port();
    ASSERT_NO_FATAL_FAILURE(start({dead, live}, live));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return metrics_.role.ready.value() == 1; }));
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 1) << "one of the two peers is up";
    EXPECT_EQ(round_trip("through the live peer"), "through the live peer");
    EXPECT_GE(metrics_.role.tunnel_connect_failures.value(), 1U) << "the dead peer was tried";
    EXPECT_EQ(terminator_metrics_.role.connections_accepted.value(), 1U);
}

// Records the one answer of an admin request.
struct RecordedReply final : AdminReply {
    void respond(int s, std::string_view, std::string_view b) noexcept override {
        status = s;
        body = b;
    }
    int status = 0;
    std::string body;
};

TEST_F(InitiatorTest, RoutesSaysWhereAKeyGoesAmongTheUsablePeers) {
    const uint16_t dead = dead_port();
    const uint16_t live = dead_port();
    ASSERT_NO_FATAL_FAILURE(start({dead, live}, live));
    if (IsSkipped()) {
        return;
    }
    bool usable = true;
    const route::Choice before = initiator_->route_of("tenant-1", &usable);
    EXPECT_FALSE(usable) << "no tunnel is up yet: the choice is among all peers";
    EXPECT_TRUE(before.found());
    ASSERT_TRUE(run_until([&] { return metrics_.role.ready.value() == 1; }));
    for (const char* key : {"tenant-1", "tenant-2", "tenant-3", ""}) {
        const route::Choice c = initiator_->route_of(key, &usable);
        EXPECT_TRUE(usable);
        ASSERT_EQ(c.endpoint, 1U) << "only the live peer is eligible: " << key;
        EXPECT_EQ(c.runner_up, route::Choice::kNone);
    }
    RecordedReply reply;
    initiator_->routes_endpoint()->serve("GET", "x=1&key=tenant%2D1", "", reply);
    EXPECT_EQ(reply.status, 200);
    EXPECT_NE(reply.body.find("\"key\":\"tenant-1\""), std::string::npos) << reply.body;
    EXPECT_NE(reply.body.find("\"endpoint\":\"127.0.0.1:" + std::to_string(live) + "\""),
              std::string::npos)
        << reply.body;
    EXPECT_NE(reply.body.find("\"runner_up\":null"), std::string::npos) << reply.body;
    RecordedReply missing;
    initiator_->routes_endpoint()->serve("GET", "k=1", "", missing);
    EXPECT_EQ(missing.status, 400);
    RecordedReply post;
    initiator_->routes_endpoint()->serve("POST", "key=1", "", post);
    EXPECT_EQ(post.status, 405);
}

TEST_F(InitiatorTest, ClientsWaitForATunnelThenGoThrough) {
    const uint16_t live = dead_port();
    ASSERT_NO_FATAL_FAILURE(start({live}, live));
    if (IsSkipped()) {
        return;
    }
    // No step has run yet: the tunnel is not up when the client arrives.
    EXPECT_EQ(metrics_.role.ready.value(), 0);
    EXPECT_EQ(round_trip("held, then carried"), "held, then carried");
    EXPECT_EQ(metrics_.role.connections_rejected.value(), 0U);
}

TEST_F(InitiatorTest, DrainEndsWithEveryTunnelClosed) {
    const uint16_t live = dead_port();
    ASSERT_NO_FATAL_FAILURE(start({live}, live));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return metrics_.role.ready.value() == 1; }));
    initiator_->drain();
    ASSERT_TRUE(run_until([&] { return initiator_->idle(); }));
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 0);
    EXPECT_EQ(metrics_.role.ready.value(), 0);
    ASSERT_TRUE(run_until([&] { return terminator_metrics_.role.tunnel_up.value() == 0; }));
}

TEST_F(InitiatorTest, APeerThatAcceptsButNeverAnswersIsRetriedWithBackoff) {
    // A "terminator" that takes the TCP connection and then says nothing at all.
    uint16_t mute_port = 0;
    const int mute = listen_loopback(&mute_port);
    ASSERT_GE(mute, 0);
    handshake_timeout_ns_ = 150'000'000;
    const uint16_t live = dead_port();
    ASSERT_NO_FATAL_FAILURE(start({mute_port}, live));
    if (IsSkipped()) {
        close(mute);
        return;
    }
    std::vector<int> held;
    ASSERT_TRUE(run_until([&] {
        pollfd p{mute, POLLIN, 0};
        if (poll(&p, 1, 0) == 1) {
            held.push_back(accept4(mute, nullptr, nullptr, SOCK_CLOEXEC));
        }
        return metrics_.role.tunnel_connect_failures.value() >= 2;
    }));
    EXPECT_GE(metrics_.role.handshake_timeouts.value(), 2U);
    EXPECT_GE(held.size(), 2U) << "each attempt was a fresh connection";
    EXPECT_EQ(metrics_.role.ready.value(), 0);
    for (int fd : held) {
        close(fd);
    }
    close(mute);
}

}  // namespace
}  // namespace ferry::role
