#include "ferry/role/terminator.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "ferry/route/rendezvous_set.h"
#include "role_loop.h"

namespace ferry::role {
namespace {

namespace pt = proto::tunnel;
using testing::listen_loopback;
using testing::open_frame;
using testing::preface_and_hello;
using testing::RawPeer;
using testing::tcp_pair;

class TerminatorTest : public testing::RoleLoop {
  protected:
    void TearDown() override {
        services_.clear();
        peer_.reset();
        terminator_.reset();
        if (upstream_listener_ >= 0) {
            close(upstream_listener_);
        }
    }

    // A plain-tunnel terminator whose TCP upstream is a loopback listener the test holds (or,
    // with `upstream_up` false, a port where nothing listens), and a raw peer on one tunnel
    // connection.
    void start(bool upstream_up = true, int backlog = 16) {
        build();
        if (IsSkipped()) {
            return;
        }
        uint16_t port = 0;
        upstream_listener_ = listen_loopback(&port, backlog);
        ASSERT_GE(upstream_listener_, 0);
        if (!upstream_up) {
            close(upstream_listener_);
            upstream_listener_ = -1;
        }
        TerminatorConfig c;
        c.node_name = "terminator-under-test";
        c.security.tls = false;
        ServiceUrl up;
        up.address = *io::parse_address("127.0.0.1:" + std::to_string(port));
        up.text = "tcp://127.0.0.1:" + std::to_string(port);
        c.upstreams.push_back(up);
        for (size_t i = 0; i < more_upstreams_; ++i) {
            uint16_t more_port = 0;
            more_listeners_.push_back(listen_loopback(&more_port, backlog));
            ASSERT_GE(more_listeners_.back(), 0);
            ServiceUrl more;
            more.address = *io::parse_address("127.0.0.1:" + std::to_string(more_port));
            more.text = "tcp://127.0.0.1:" + std::to_string(more_port);
            c.upstreams.push_back(more);
        }
        upstream_ids_.clear();
        for (const ServiceUrl& u : c.upstreams) {
            upstream_ids_.push_back(u.address.to_string());
        }
        c.max_pending = max_pending_;
        c.handshake_timeout_ns = handshake_timeout_ns_;
        c.max_upstream_connects_per_tunnel = per_tunnel_connects_;
        terminator_ = std::make_unique<Terminator>(*ctx_, metrics_, limits_, std::move(c));
        services_.push_back(terminator_.get());
        ASSERT_TRUE(terminator_->start_without_listener());
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        peer_ = std::make_unique<RawPeer>(a);
        terminator_->adopt_tunnel_connection(b);
        between_steps_ = [this] { (void)peer_->poll_input(); };
    }

    // HELLO from the raw peer: v1.1 (Messages) unless `v1`, NodeName only when given.
    void hello(bool v1 = false, std::string_view node_name = {}) {
        pt::HelloSettings h;
        h.capabilities = v1 ? 0 : pt::kCapabilityMessages;
        h.node_name = node_name;
        peer_->send(preface_and_hello(h));
        ASSERT_TRUE(run_until([&] { return metrics_.role.tunnel_up.value() == 1; }));
    }

    // A silent connection to the terminator (a raw peer that never says anything).
    std::unique_ptr<RawPeer> silent_peer() {
        auto [a, b] = tcp_pair();
        EXPECT_GE(a, 0);
        terminator_->adopt_tunnel_connection(b);
        return std::make_unique<RawPeer>(a);
    }

    ProcessLimits limits_{0, 1024};
    uint32_t max_pending_ = 256;
    uint64_t handshake_timeout_ns_ = 10'000'000'000;
    uint32_t per_tunnel_connects_ = 256;
    std::unique_ptr<Terminator> terminator_;
    std::unique_ptr<RawPeer> peer_;
    int upstream_listener_ = -1;
    size_t more_upstreams_ = 0;        // TCP upstreams beyond the first, set before start()
    std::vector<int> more_listeners_;  // their listeners
    std::vector<std::string> upstream_ids_;
};

TEST_F(TerminatorTest, ATunnelWhoseHelloNamesNoNodeCountsUpAndThenDown) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    // NodeName is optional in HELLO (docs/tunnel-protocol.md §6.1).
    ASSERT_NO_FATAL_FAILURE(hello(/*v1=*/false, /*node_name=*/{}));
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 1);
    peer_->close_now();
    ASSERT_TRUE(run_until([&] { return metrics_.role.tunnel_disconnects.value() == 1; }));
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 0) << "a closed tunnel must not stay counted up";
}

TEST_F(TerminatorTest, AConnectionThatNeverSaidHelloIsNeverCountedUp) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    peer_->close_now();
    // A connection that never got through its HELLO failed; it was never a tunnel that went down.
    ASSERT_TRUE(run_until([&] { return metrics_.role.tunnel_connect_failures.value() == 1; }));
    EXPECT_EQ(metrics_.role.tunnel_disconnects.value(), 0U);
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 0);
    EXPECT_EQ(metrics_.role.tunnel_pending.value(), 0);
}

TEST_F(TerminatorTest, AnUnknownProtocolIsResetAsUnsupportedWithAReason) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    peer_->send(open_frame(1, static_cast<pt::StreamProtocol>(7)));
    peer_->send(open_frame(3, static_cast<pt::StreamProtocol>(3)));
    ASSERT_TRUE(run_until([&] { return peer_->capture.resets.size() == 2; }));
    for (const auto& r : peer_->capture.resets) {
        EXPECT_EQ(r.code, pt::ErrorCode::UnsupportedProtocol);
        EXPECT_NE(r.reason.find("protocol"), std::string::npos) << r.reason;
    }
    EXPECT_EQ(peer_->capture.resets[0].id, 1U);
    EXPECT_EQ(peer_->capture.resets[1].id, 3U);
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 1) << "only the streams were refused";
    EXPECT_EQ(metrics_.tunnel.tunnel_protocol_errors.value(), 0U);
}

// A DATA frame of a message stream: `kind`, END_MESSAGE when `end`.
std::vector<std::byte> message_frame(uint32_t id, std::string_view payload, pt::MessageKind kind,
                                     bool end) {
    std::vector<std::byte> out(pt::kFrameHeaderSize + payload.size());
    (void)pt::encode_data_header(out, id, static_cast<uint32_t>(payload.size()),
                                 pt::DataFlags::make(false, end, kind));
    std::memcpy(out.data() + pt::kFrameHeaderSize, payload.data(), payload.size());
    return out;
}

TEST_F(TerminatorTest, AWebSocketStreamIsAnsweredByTheSinkAndItsCloseEchoed) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    const pt::MetadataEntry metadata[] = {{":path", "/chat"}, {"trail", "gateway-a"}};
    std::vector<std::byte> open(
        pt::open_frame_size(pt::StreamProtocol::WebSocket, "/chat", metadata));
    open.resize(pt::encode_open(open, 1, pt::StreamProtocol::WebSocket, "/chat", metadata));
    peer_->send(open);
    // One message in two pieces, then a Close (code 4001, "bye").
    peer_->send(message_frame(1, "hel", pt::MessageKind::Text, false));
    peer_->send(message_frame(1, "lo", pt::MessageKind::Text, true));
    const std::string close_payload(
        "\x0f\xa1"
        "bye",
        5);
    peer_->send(message_frame(1, close_payload, pt::MessageKind::Close, true));
    ASSERT_TRUE(run_until([&] { return !peer_->capture.fins.empty(); }));
    ASSERT_EQ(peer_->capture.open_acks.size(), 1U);
    const std::string& got = peer_->capture.data[1];
    EXPECT_EQ(got, R"({"binary":false,"message":"hello","shard":0,)"
                   R"("trail":["gateway-a","terminator-under-test"]})" +
                       close_payload);
    EXPECT_TRUE(peer_->capture.resets.empty());
}

TEST_F(TerminatorTest, AV1PeerGetsItsRefusalWithoutReasonText) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello(/*v1=*/true, "old-initiator"));
    peer_->send(open_frame(1, pt::StreamProtocol::Grpc));
    ASSERT_TRUE(run_until([&] { return peer_->capture.resets.size() == 1; }));
    EXPECT_EQ(peer_->capture.resets[0].code, pt::ErrorCode::UnsupportedProtocol);
    EXPECT_TRUE(peer_->capture.resets[0].reason.empty()) << "a v1 RESET is exactly 4 bytes";
}

TEST_F(TerminatorTest, ATcpStreamIsAcceptedOnceItsUpstreamConnected) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    peer_->send(open_frame(1, pt::StreamProtocol::Tcp));
    peer_->send(testing::data_frame(1, "ping through", /*fin=*/false));
    int upstream = -1;
    ASSERT_TRUE(run_until([&] {
        pollfd p{upstream_listener_, POLLIN, 0};
        if (upstream < 0 && poll(&p, 1, 0) == 1) {
            upstream = accept4(upstream_listener_, nullptr, nullptr, SOCK_CLOEXEC);
        }
        return upstream >= 0 && !peer_->capture.open_acks.empty();
    }));
    EXPECT_EQ(peer_->capture.open_acks, (std::vector<uint32_t>{1}));
    char buf[64] = {};
    std::string got;
    ASSERT_TRUE(run_until([&] {
        ssize_t n = recv(upstream, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            got.append(buf, static_cast<size_t>(n));
        }
        return got == "ping through";
    }));
    ASSERT_EQ(send(upstream, "pong", 4, MSG_NOSIGNAL), 4);
    ASSERT_TRUE(run_until([&] { return peer_->capture.data[1] == "pong"; }));
    close(upstream);
}

TEST_F(TerminatorTest, SeveralTcpUpstreamsShareStreamsByTheOpensRoutingKey) {
    more_upstreams_ = 2;
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    std::vector<int> listeners = {upstream_listener_};
    listeners.insert(listeners.end(), more_listeners_.begin(), more_listeners_.end());
    // The choice a RendezvousSet with the same ids makes, in any order: the initiator's too.
    route::RendezvousSet expected;
    for (auto it = upstream_ids_.rbegin(); it != upstream_ids_.rend(); ++it) {
        ASSERT_TRUE(expected.add(*it).ok());
    }
    std::vector<int> accepted;
    std::vector<size_t> hits(listeners.size());
    for (uint32_t k = 0; k < 12; ++k) {
        const std::string key = "tenant-" + std::to_string(k);
        const uint32_t id = 1 + 2 * k;
        peer_->send(open_frame(id, pt::StreamProtocol::Tcp, key));
        size_t which = listeners.size();
        ASSERT_TRUE(run_until([&] {
            if (which < listeners.size()) {
                return true;  // run_until asks once more after the last step
            }
            for (size_t i = 0; i < listeners.size(); ++i) {
                pollfd p{listeners[i], POLLIN, 0};
                if (poll(&p, 1, 0) == 1) {
                    accepted.push_back(accept4(listeners[i], nullptr, nullptr, SOCK_CLOEXEC));
                    which = i;
                    return true;
                }
            }
            return false;
        })) << key;
        const std::string want(expected.id(expected.choose(key).endpoint));
        EXPECT_EQ(upstream_ids_[which], want) << key;
        ++hits[which];
    }
    EXPECT_GE(std::count_if(hits.begin(), hits.end(), [](size_t n) { return n > 0; }), 2)
        << "the keys spread over the upstreams";
    for (int fd : accepted) {
        close(fd);
    }
    for (int fd : more_listeners_) {
        close(fd);
    }
}

TEST_F(TerminatorTest, AnUpstreamThatRefusesResetsTheStreamAsConnectRefused) {
    ASSERT_NO_FATAL_FAILURE(start(/*upstream_up=*/false));
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    peer_->send(open_frame(1, pt::StreamProtocol::Tcp));
    ASSERT_TRUE(run_until([&] { return !peer_->capture.resets.empty(); }));
    EXPECT_EQ(peer_->capture.resets[0].code, pt::ErrorCode::ConnectRefused);
    EXPECT_TRUE(peer_->capture.open_acks.empty()) << "never accepted";
    EXPECT_EQ(metrics_.role.upstream_connect_errors.value(), 1U);
}

TEST_F(TerminatorTest, DrainingRefusesNewStreamsAndAnnouncesTwice) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    terminator_->drain();
    // The announcement (2^31-1) and its PING come first; the peer answers the PING.
    ASSERT_TRUE(run_until([&] { return !peer_->capture.pings.empty(); }));
    ASSERT_EQ(peer_->capture.goaways.size(), 1U);
    EXPECT_EQ(peer_->capture.goaways[0], pt::kMaxStreamId);
    peer_->send(open_frame(1, pt::StreamProtocol::Tcp));
    std::vector<std::byte> ack(pt::kPingFrameSize);
    ack.resize(pt::encode_ping(ack, true, peer_->capture.pings.back()));
    peer_->send(ack);
    ASSERT_TRUE(run_until([&] { return peer_->capture.goaways.size() == 2; }));
    EXPECT_EQ(peer_->capture.goaways[1], 1U) << "the final GOAWAY names the last stream seen";
    ASSERT_FALSE(peer_->capture.resets.empty());
    EXPECT_EQ(peer_->capture.resets[0].code, pt::ErrorCode::RefusedStream);
    ASSERT_TRUE(run_until([&] { return peer_->eof && terminator_->idle(); }));
}

// ---- hardening: no lock-out before authentication, bounded upstream connects
// ---------------------

TEST_F(TerminatorTest, SilentConnectionsShareABudgetAndTheOldestMakesRoom) {
    max_pending_ = 3;
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    // The fixture's peer is the oldest silent connection; three more arrive.
    std::vector<std::unique_ptr<RawPeer>> silent;
    for (int i = 0; i < 3; ++i) {
        silent.push_back(silent_peer());
    }
    EXPECT_EQ(metrics_.role.tunnel_pending.value(), 3);
    EXPECT_EQ(metrics_.role.pending_evicted.value(), 1U);
    ASSERT_TRUE(run_until([&] { return !peer_->poll_input() && peer_->eof; }))
        << "the oldest was closed";
    // A real initiator still gets in, evicting the next oldest.
    auto [a, b] = tcp_pair();
    terminator_->adopt_tunnel_connection(b);
    RawPeer real(a);
    pt::HelloSettings h;
    h.capabilities = pt::kCapabilityMessages;
    real.send(preface_and_hello(h));
    ASSERT_TRUE(run_until([&] { return metrics_.role.tunnel_up.value() == 1; }));
    EXPECT_EQ(metrics_.role.pending_evicted.value(), 2U);
    EXPECT_LE(metrics_.role.tunnel_pending.value(), 3);
}

TEST_F(TerminatorTest, AConnectionThatNeverFinishesItsHandshakeIsClosedInTime) {
    handshake_timeout_ns_ = 200'000'000;
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    // Half a preface, then silence.
    peer_->send({std::byte{0x89}, std::byte{'F'}, std::byte{'E'}});
    ASSERT_TRUE(run_until([&] { return (void)peer_->poll_input(), peer_->eof; }));
    EXPECT_EQ(metrics_.role.handshake_timeouts.value(), 1U);
    EXPECT_EQ(metrics_.role.tunnel_pending.value(), 0);
    EXPECT_EQ(metrics_.role.tunnel_up.value(), 0);
}

TEST_F(TerminatorTest, AnOpenFloodCannotStartMoreUpstreamConnectsThanTheBound) {
    // An upstream whose accept queue is full: connects to it hang, as to an overloaded service.
    per_tunnel_connects_ = 4;
    ASSERT_NO_FATAL_FAILURE(start(/*upstream_up=*/true, /*backlog=*/0));
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(hello());
    for (uint32_t id = 1; id < 40; id += 2) {
        peer_->send(open_frame(id, pt::StreamProtocol::Tcp));
    }
    ASSERT_TRUE(run_until([&] { return peer_->capture.resets.size() >= 16; }));
    for (int i = 0; i < 20; ++i) {
        step();
    }
    EXPECT_LE(metrics_.role.upstream_connects_in_flight.value(), 4);
    EXPECT_GE(metrics_.role.upstream_connects_refused.value(), 15U);
    for (const auto& r : peer_->capture.resets) {
        if (r.code == pt::ErrorCode::RefusedStream) {
            EXPECT_NE(r.reason.find("upstream connects in flight"), std::string::npos) << r.reason;
        }
    }
}

}  // namespace
}  // namespace ferry::role
