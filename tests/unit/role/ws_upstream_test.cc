#include "ferry/role/ws_upstream.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ferry/proto/tunnel/frame_encoder.h"
#include "ferry/proto/ws/handshake.h"
#include "ferry/role/terminator.h"
#include "role_loop.h"

namespace ferry::role {
namespace {

namespace pt = proto::tunnel;
namespace ws = proto::ws;
using testing::listen_loopback;
using testing::preface_and_hello;
using testing::RawPeer;
using testing::tcp_pair;

std::vector<std::byte> message_frame(uint32_t id, std::string_view payload, pt::MessageKind kind,
                                     bool end) {
    std::vector<std::byte> out(pt::kFrameHeaderSize + payload.size());
    (void)pt::encode_data_header(out, id, static_cast<uint32_t>(payload.size()),
                                 pt::DataFlags::make(false, end, kind));
    std::memcpy(out.data() + pt::kFrameHeaderSize, payload.data(), payload.size());
    return out;
}

// A terminator whose ws upstream is a loopback listener the test plays the server on.
class WsUpstreamTest : public testing::RoleLoop {
  protected:
    void TearDown() override {
        services_.clear();
        peer_.reset();
        terminator_.reset();
        for (int fd : {upstream_, listener_}) {
            if (fd >= 0) {
                close(fd);
            }
        }
    }

    void start(const std::string& upstream_path = "/") {
        build();
        if (IsSkipped()) {
            return;
        }
        uint16_t port = 0;
        listener_ = listen_loopback(&port);
        ASSERT_GE(listener_, 0);
        TerminatorConfig c;
        c.node_name = "terminator-under-test";
        c.security.tls = false;
        ServiceUrl up;
        up.scheme = Scheme::Ws;
        up.host = "127.0.0.1";
        up.port = port;
        up.path = upstream_path;
        up.address = *io::parse_address("127.0.0.1:" + std::to_string(port));
        up.text = "ws://127.0.0.1:" + std::to_string(port) + upstream_path;
        c.upstreams.push_back(up);
        terminator_ = std::make_unique<Terminator>(*ctx_, metrics_, limits_, std::move(c));
        services_.push_back(terminator_.get());
        ASSERT_TRUE(terminator_->start_without_listener());
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        peer_ = std::make_unique<RawPeer>(a);
        terminator_->adopt_tunnel_connection(b);
        between_steps_ = [this] { (void)peer_->poll_input(); };
        pt::HelloSettings h;
        h.capabilities = pt::kCapabilityMessages;
        peer_->send(preface_and_hello(h));
        ASSERT_TRUE(run_until([&] { return metrics_.role.tunnel_up.value() == 1; }));
    }

    void open_stream(std::string_view path) {
        const pt::MetadataEntry metadata[] = {
            {":path", path}, {"sec-websocket-protocol", "chat, superchat"}, {"trail", "gw-a"}};
        std::vector<std::byte> open(
            pt::open_frame_size(pt::StreamProtocol::WebSocket, path, metadata));
        open.resize(pt::encode_open(open, 1, pt::StreamProtocol::WebSocket, path, metadata));
        peer_->send(open);
    }

    // Accepts the upstream connection and reads the Upgrade request head.
    std::string accept_upgrade() {
        std::string head;
        EXPECT_TRUE(run_until([&] {
            pollfd p{listener_, POLLIN, 0};
            if (upstream_ < 0 && poll(&p, 1, 0) == 1) {
                upstream_ = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            }
            if (upstream_ >= 0) {
                char buf[4096];
                const ssize_t n = recv(upstream_, buf, sizeof(buf), MSG_DONTWAIT);
                if (n > 0) {
                    head.append(buf, static_cast<size_t>(n));
                }
            }
            return head.find("\r\n\r\n") != std::string::npos;
        }));
        return head;
    }

    static std::string header(const std::string& head, const std::string& name) {
        const size_t at = head.find("\r\n" + name + ": ");
        if (at == std::string::npos) {
            return {};
        }
        const size_t from = at + name.size() + 4;
        return head.substr(from, head.find("\r\n", from) - from);
    }

    void upstream_send(const std::string& bytes) {
        ASSERT_EQ(send(upstream_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }

    // Reads bytes from the upstream socket until `n` came.
    std::string upstream_read(size_t n) {
        std::string got;
        EXPECT_TRUE(run_until([&] {
            char buf[4096];
            const ssize_t r = recv(upstream_, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                got.append(buf, static_cast<size_t>(r));
            }
            return got.size() >= n;
        }));
        return got;
    }

    ProcessLimits limits_{0, 1024};
    std::unique_ptr<Terminator> terminator_;
    std::unique_ptr<RawPeer> peer_;
    int listener_ = -1;
    int upstream_ = -1;
};

TEST_F(WsUpstreamTest, TheUpgradeCarriesPathTrailAndOfferAndFramesAreMaskedBothWays) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    open_stream("/room?x=1");
    const std::string head = accept_upgrade();
    EXPECT_EQ(head.rfind("GET /room?x=1 HTTP/1.1\r\n", 0), 0U) << head;
    EXPECT_EQ(header(head, "X-Ferry-Trail"), "gw-a, terminator-under-test") << head;
    EXPECT_EQ(header(head, "Sec-WebSocket-Protocol"), "chat, superchat") << head;
    const std::string key = header(head, "Sec-WebSocket-Key");
    ASSERT_TRUE(ws::is_valid_client_key(key)) << head;
    EXPECT_TRUE(peer_->capture.open_acks.empty()) << "accepted before the 101";

    const auto accept = ws::compute_accept_key(key);
    upstream_send(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        std::string(accept.data(), accept.size()) + "\r\nSec-WebSocket-Protocol: chat\r\n\r\n" +
        std::string("\x81\x02hi", 4));
    ASSERT_TRUE(run_until([&] { return peer_->capture.data[1] == "hi"; }));
    EXPECT_EQ(peer_->capture.open_acks, (std::vector<uint32_t>{1}));

    // A message in two pieces: two masked frames, Text then Continuation with FIN.
    peer_->send(message_frame(1, "hel", pt::MessageKind::Text, false));
    peer_->send(message_frame(1, "lo", pt::MessageKind::Text, true));
    const std::string frames = upstream_read(2 * 6 + 5);
    ASSERT_EQ(frames.size(), 17U);
    EXPECT_EQ(static_cast<uint8_t>(frames[0]), 0x01);  // Text, no FIN
    EXPECT_EQ(static_cast<uint8_t>(frames[1]), 0x83);  // masked, 3 bytes
    EXPECT_EQ(static_cast<uint8_t>(frames[9]), 0x80);  // Continuation, FIN
    EXPECT_EQ(static_cast<uint8_t>(frames[10]), 0x82);
    std::string payload;
    for (size_t at : {size_t{2}, size_t{11}}) {
        const size_t len = static_cast<uint8_t>(frames[at - 1]) & 0x7f;
        for (size_t i = 0; i < len; ++i) {
            payload.push_back(static_cast<char>(frames[at + 4 + i] ^ frames[at + (i & 3)]));
        }
    }
    EXPECT_EQ(payload, "hello");
    EXPECT_NE(frames.substr(2, 4), frames.substr(11, 4)) << "one key for two frames";

    // A Ping from the upstream gets its Pong, masked.
    upstream_send(std::string("\x89\x01p", 3));
    const std::string pong = upstream_read(7);
    ASSERT_EQ(pong.size(), 7U);
    EXPECT_EQ(static_cast<uint8_t>(pong[0]), 0x8a);
    EXPECT_EQ(static_cast<uint8_t>(pong[1]), 0x81);
    EXPECT_EQ(static_cast<char>(pong[6] ^ pong[2]), 'p');

    // The upstream closes with 4002: a Close message to the tunnel, a masked Close echoed.
    upstream_send(std::string("\x88\x02\x0f\xa2", 4));
    ASSERT_TRUE(run_until([&] { return !peer_->capture.fins.empty(); }));
    EXPECT_EQ(peer_->capture.data[1], std::string("hi\x0f\xa2", 4));
    const std::string close = upstream_read(8);
    ASSERT_EQ(close.size(), 8U);
    EXPECT_EQ(static_cast<uint8_t>(close[0]), 0x88);
    EXPECT_EQ(static_cast<uint8_t>(close[1]), 0x82);
    EXPECT_EQ(static_cast<uint8_t>(close[6] ^ close[2]), 0x0f);
    EXPECT_EQ(static_cast<uint8_t>(close[7] ^ close[3]), 0xa2);
    EXPECT_TRUE(peer_->capture.resets.empty());
}

TEST_F(WsUpstreamTest, AnUpstreamPathKeepsItsOwnPathAndTakesTheClientsQuery) {
    ASSERT_NO_FATAL_FAILURE(start("/backend"));
    if (IsSkipped()) {
        return;
    }
    open_stream("/front?x=1");
    const std::string head = accept_upgrade();
    EXPECT_EQ(head.rfind("GET /backend?x=1 HTTP/1.1\r\n", 0), 0U) << head;
}

TEST_F(WsUpstreamTest, ANon101AnswerResetsTheStreamAsRefused) {
    ASSERT_NO_FATAL_FAILURE(start());
    if (IsSkipped()) {
        return;
    }
    open_stream("/");
    (void)accept_upgrade();
    upstream_send("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    ASSERT_TRUE(run_until([&] { return !peer_->capture.resets.empty(); }));
    EXPECT_EQ(peer_->capture.resets[0].code, pt::ErrorCode::RefusedStream);
    EXPECT_TRUE(peer_->capture.open_acks.empty());
}

}  // namespace
}  // namespace ferry::role
