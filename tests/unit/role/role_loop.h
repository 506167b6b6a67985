// The loop of the role tests: a shard's context built by hand, stepped by the test like the
// shard's own loop (dispatch, end of iteration, the service's housekeeping and ticks), and a
// raw tunnel peer that speaks the protocol with the codec.
#pragma once

#include <gtest/gtest.h>
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/io/socket.h"
#include "ferry/loop/context.h"
#include "ferry/loop/context_owner.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/proto/tunnel/frame_encoder.h"
#include "ferry/role/metrics.h"
#include "ferry/shard/service.h"

namespace ferry::role::testing {

namespace pt = proto::tunnel;

// A connected loopback TCP pair (client, server).
inline std::pair<int, int> tcp_pair() {
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, /*reuse_port=*/false, 4);
    if (!lfd.ok()) {
        return {-1, -1};
    }
    absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
    int client = io::new_tcp_socket(AF_INET);
    if (client < 0 || connect(client, addr->get(), addr->length) != 0) {
        close(*lfd);
        return {-1, -1};
    }
    int server = accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC);
    close(*lfd);
    return {client, server};
}

// A listening loopback socket on a free port (`port` set); -1 on failure.
inline int listen_loopback(uint16_t* port, int backlog = 16) {
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, /*reuse_port=*/false, backlog);
    if (!lfd.ok()) {
        return -1;
    }
    *port = io::local_address(*lfd)->port();
    return *lfd;
}

// What a raw peer decoded from the role's side of a tunnel connection.
struct Capture {
    bool on_hello(const pt::Hello& h) noexcept {
        ++hellos;
        capabilities = h.settings.capabilities;
        return true;
    }
    bool on_open(uint32_t id, const pt::Open& open) noexcept {
        opens.emplace_back(id, open.protocol);
        return true;
    }
    bool on_data(uint32_t id, std::span<const std::byte> piece, pt::DataFlags f) noexcept {
        data[id].append(reinterpret_cast<const char*>(piece.data()), piece.size());
        if (f.fin()) {
            fins.push_back(id);
        }
        return true;
    }
    bool on_window(uint32_t, uint32_t) noexcept { return true; }
    bool on_reset(uint32_t id, pt::ErrorCode code, std::string_view reason) noexcept {
        resets.push_back({id, code, std::string(reason)});
        return true;
    }
    bool on_ping(bool ack, uint64_t opaque) noexcept {
        if (!ack) {
            pings.push_back(opaque);
        }
        return true;
    }
    bool on_goaway(uint32_t last, pt::ErrorCode, std::string_view) noexcept {
        goaways.push_back(last);
        return true;
    }
    bool on_open_ack(uint32_t id, const pt::MetadataView&) noexcept {
        open_acks.push_back(id);
        return true;
    }
    bool on_trailers(uint32_t, const pt::MetadataView&) noexcept { return true; }

    struct Reset {
        uint32_t id;
        pt::ErrorCode code;
        std::string reason;
    };
    int hellos = 0;
    uint32_t capabilities = 0;
    std::vector<std::pair<uint32_t, pt::StreamProtocol>> opens;
    std::map<uint32_t, std::string> data;
    std::vector<uint32_t> fins;
    std::vector<Reset> resets;
    std::vector<uint64_t> pings;
    std::vector<uint32_t> goaways;
    std::vector<uint32_t> open_acks;
};

// The far end of a tunnel connection, written and read by hand (blocking socket, bounded reads).
class RawPeer {
  public:
    explicit RawPeer(int fd) : fd_(fd), decoder_(capture, pt::kDefaultMaxFrameSize) {}
    ~RawPeer() { close_now(); }
    RawPeer(const RawPeer&) = delete;
    RawPeer& operator=(const RawPeer&) = delete;

    void send(const std::vector<std::byte>& bytes) {
        size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            ASSERT_GT(n, 0) << strerror(errno);
            off += static_cast<size_t>(n);
        }
    }
    // Decodes whatever has arrived; false once the role closed the connection.
    bool poll_input() {
        std::byte buf[65536];
        for (;;) {
            ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0) {
                eof = true;
                return false;
            }
            if (n < 0) {
                return errno == EAGAIN || errno == EWOULDBLOCK;
            }
            pt::DecodeResult r = decoder_.feed({buf, static_cast<size_t>(n)});
            EXPECT_NE(r.status, pt::DecodeStatus::Error) << r.detail;
        }
    }
    void close_now() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    Capture capture;
    bool eof = false;

  private:
    int fd_;
    pt::FrameDecoder<Capture> decoder_;
};

// Frames a test sends as the raw peer.
inline std::vector<std::byte> preface_and_hello(const pt::HelloSettings& settings) {
    std::vector<std::byte> out(pt::kPrefaceSize + pt::hello_frame_size(settings));
    size_t n = pt::encode_preface(out);
    n += pt::encode_hello(std::span<std::byte>(out).subspan(n), settings);
    out.resize(n);
    return out;
}
inline std::vector<std::byte> open_frame(uint32_t id, pt::StreamProtocol protocol,
                                         std::string_view key = "k") {
    std::vector<std::byte> out(pt::open_frame_size(protocol, key, {}));
    out.resize(pt::encode_open(out, id, protocol, key, {}));
    return out;
}
inline std::vector<std::byte> data_frame(uint32_t id, std::string_view payload, bool fin) {
    std::vector<std::byte> out(pt::kFrameHeaderSize + payload.size());
    (void)pt::encode_data_header(out, id, static_cast<uint32_t>(payload.size()), fin);
    std::memcpy(out.data() + pt::kFrameHeaderSize, payload.data(), payload.size());
    return out;
}

class RoleLoop : public ::testing::Test {
  protected:
    void build() {
        loop::ContextOptions options;
        options.ring.entries = 256;
        options.buffer_size = 16384;
        options.buffer_count = 256;
        options.buffer_ring_entries = 64;
        options.tunnel_buffer_count = 256;
        options.tunnel_buffer_ring_entries = 64;
        options.socket.connect_timeout_ns = 2'000'000'000;
        absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
            loop::ContextOwner::create(options, loop_metrics_);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        ctx_ = &owner_->context();
    }

    // One iteration of the shard loop, with every service's housekeeping and a tick.
    void step(int wait_ms = 5) {
        __kernel_timespec ts{0, static_cast<long long>(wait_ms) * 1'000'000};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx_->ring.raw(), &cqe, 1, &ts, nullptr);
        ctx_->now_ns = base::mono_ns();
        ctx_->ring.dispatch();
        loop::end_of_iteration(*ctx_);
        for (shard::Service* s : services_) {
            s->housekeeping();
            s->tick(ctx_->now_ns);
        }
        if (between_steps_) {
            between_steps_();
        }
    }
    template <class Cond>
    bool run_until(Cond cond) {
        const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
        while (!cond() && base::mono_ns() < deadline) {
            step();
        }
        return cond();
    }

    loop::Metrics loop_metrics_;
    ShardMetrics metrics_;
    std::unique_ptr<loop::ContextOwner> owner_;
    loop::Context* ctx_ = nullptr;
    std::vector<shard::Service*> services_;
    std::function<void()> between_steps_;
};

}  // namespace ferry::role::testing
