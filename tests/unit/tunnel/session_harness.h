// The harness of the tunnel tests: two Sessions (or one and a raw peer) over loopback TCP in one
// ring the test drives like a shard's loop, with stream ends that check every byte.
#pragma once

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/buf/pool.h"
#include "ferry/io/ring.h"
#include "ferry/io/socket.h"
#include "ferry/loop/context.h"
#include "ferry/loop/context_owner.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/transport/transport.h"
#include "ferry/tunnel/metrics.h"
#include "ferry/tunnel/session.h"
#include "ferry/tunnel/stream.h"
#include "ferry/tunnel/tuning.h"

namespace ferry::tunnel::harness {

namespace pt = proto::tunnel;

constexpr uint32_t kBufferSize = 16384;

// Byte `i` of the test stream with this seed: every offset differs, so a lost, repeated or
// reordered piece shows up as a mismatch at a known offset.
inline char pattern_byte(uint32_t seed, uint64_t i) {
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL + seed * 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return static_cast<char>(x >> 17);
}

// The local end of a stream, as a test sees it: records what the peer sent and, unless told to
// hold it, returns the credit at once (like a socket that always takes the bytes).
class TestHandler final : public StreamHandler {
  public:
    void on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept override {
        // Message streams: every piece of a message has its kind; the last one ends it.
        if (flags.end_message() || data.size() > 0) {
            current_message.append(reinterpret_cast<const char*>(data.data()), data.size());
            current_kind = flags.kind();
            if (flags.end_message()) {
                messages.emplace_back(flags.kind(), std::move(current_message));
                current_message.clear();
            }
        }
        ++pieces;
        if (data.size() == 0) {
            return;
        }
        const auto* p = reinterpret_cast<const char*>(data.data());
        if (fin) {
            data_after_fin = true;
        }
        if (seed.has_value()) {
            for (uint32_t i = 0; i < data.size(); ++i) {
                if (p[i] != pattern_byte(*seed, received + i) && first_mismatch == UINT64_MAX) {
                    first_mismatch = received + i;
                }
            }
        } else {
            text.append(p, data.size());
        }
        received += data.size();
        if (consume && stream != nullptr) {
            stream->consumed(data.size());
        } else {
            held += data.size();
        }
        if (keep_chunks) {
            kept.push_back(std::move(data));
        }
    }
    void on_stream_fin() noexcept override { fin = true; }
    void on_stream_trailers(const pt::MetadataView& t) noexcept override {
        fin = true;
        for (const auto& [name, value] : t) {
            trailers.emplace_back(std::string(name), std::string(value));
        }
        got_trailers = true;
    }
    void on_stream_accepted(const pt::MetadataView& m) noexcept override {
        ++accepted;
        for (const auto& [name, value] : m) {
            accept_metadata.emplace_back(std::string(name), std::string(value));
        }
    }
    void on_stream_reset(pt::ErrorCode code) noexcept override {
        reset = code;
        stream = nullptr;
    }
    void on_stream_writable() noexcept override {
        ++writable;
        if (on_writable) {
            on_writable();
        }
    }

    // Returns the credit of everything held so far.
    void release_held() {
        ASSERT_NE(stream, nullptr);
        stream->consumed(static_cast<uint32_t>(held));
        held = 0;
    }

    Stream* stream = nullptr;
    std::optional<uint32_t> seed;  // verify bytes against pattern_byte instead of keeping them
    bool consume = true;
    bool keep_chunks = false;  // hold the received buffers (as a slow local socket would)
    std::vector<buf::Chunk> kept;
    std::string text;
    uint64_t received = 0;
    uint64_t held = 0;
    uint64_t first_mismatch = UINT64_MAX;
    bool fin = false;
    bool data_after_fin = false;
    std::optional<pt::ErrorCode> reset;
    int writable = 0;
    std::function<void()> on_writable;
    // v1.1: whole messages (kind, bytes), trailers and the OPEN_ACK's metadata.
    std::vector<std::pair<pt::MessageKind, std::string>> messages;
    std::string current_message;
    pt::MessageKind current_kind = pt::MessageKind::Binary;
    int pieces = 0;
    std::vector<std::pair<std::string, std::string>> trailers;
    bool got_trailers = false;
    int accepted = 0;
    std::vector<std::pair<std::string, std::string>> accept_metadata;
};

class TestOwner final : public SessionOwner {
  public:
    void on_session_ready(Session&) noexcept override { ++ready; }
    OpenDecision on_stream_open(Session&, Stream& stream, const pt::Open& open) noexcept override {
        opened_keys.emplace_back(open.routing_key);
        opened_ids.push_back(stream.id());
        opened_protocols.push_back(open.protocol);
        std::vector<std::pair<std::string, std::string>> md;
        for (const auto& [name, value] : open.metadata) {
            md.emplace_back(std::string(name), std::string(value));
        }
        opened_metadata.push_back(std::move(md));
        if (refuse) {
            return OpenDecision::refuse(refuse_code, "refused by the test");
        }
        TestHandler& h = accepted.emplace_back();
        h.stream = &stream;
        if (configure) {
            configure(h, open);
        }
        return OpenDecision::accept(&h);
    }
    void on_session_draining(Session&) noexcept override { ++draining; }
    void on_session_closed(Session&) noexcept override { ++closed; }
    void on_session_rotation_due(Session&, const char* why) noexcept override {
        rotations.emplace_back(why);
    }

    // The handler of the `i`-th stream the peer opened.
    TestHandler& handler(size_t i) { return accepted.at(i); }

    int ready = 0;
    int draining = 0;
    int closed = 0;
    bool refuse = false;
    pt::ErrorCode refuse_code = pt::ErrorCode::RefusedStream;
    std::vector<std::vector<std::pair<std::string, std::string>>> opened_metadata;
    std::vector<std::string> rotations;
    std::vector<std::string> opened_keys;
    std::vector<uint32_t> opened_ids;
    std::vector<pt::StreamProtocol> opened_protocols;
    std::deque<TestHandler> accepted;  // deque: handlers never move
    std::function<void(TestHandler&, const pt::Open&)> configure;
};

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
    io::set_nodelay(server);
    return {client, server};
}

class SessionHarness : public ::testing::Test {
  protected:
    void SetUp() override {
        tuning_.stream_window = 256 * 1024;
        tuning_.connection_window = 16 * 1024 * 1024;
    }

    void TearDown() override {
        hoard_.clear();
        shut_down();
        if (raw_fd_ >= 0) {
            close(raw_fd_);
        }
    }

    // Builds a shard's worth of context by hand; tests adjust tuning_ before.
    void build() {
        loop::ContextOptions options;
        options.ring.entries = 256;
        options.buffer_size = kBufferSize;
        options.buffer_count = 2048;
        options.buffer_ring_entries = 512;
        options.tunnel_buffer_count = 1024;
        options.tunnel_buffer_ring_entries = 256;
        absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
            loop::ContextOwner::create(options, loop_metrics_);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        ctx_ = &owner_->context();
    }

    // The transport under the sessions: plain TCP unless a test suite says otherwise.
    virtual std::unique_ptr<transport::Transport> make_transport(int fd, Session::Role) {
        return std::make_unique<transport::TcpTransport>(*ctx_, transport_metrics_, fd);
    }

    std::unique_ptr<Session> make_session(int fd, Session::Role role, TestOwner* owner,
                                          std::string_view name) {
        return make_session(make_transport(fd, role), role, owner, name);
    }
    std::unique_ptr<Session> make_session(std::unique_ptr<transport::Transport> transport,
                                          Session::Role role, TestOwner* owner,
                                          std::string_view name) {
        return std::make_unique<Session>(SessionEnv{*ctx_, metrics_, tuning_}, owner,
                                         std::move(transport), role, name);
    }

    // Two sessions over loopback TCP in this one ring, HELLOs exchanged.
    void connect() {
        build();
        if (IsSkipped()) {
            return;
        }
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        ASSERT_GE(b, 0);
        ASSERT_NO_FATAL_FAILURE(start_sessions(a, b));
    }

    // An initiator session on `initiator_fd` and a terminator on `terminator_fd`, HELLOs exchanged.
    void start_sessions(int initiator_fd, int terminator_fd) {
        start_sessions(make_transport(initiator_fd, Session::Role::Initiator),
                       make_transport(terminator_fd, Session::Role::Terminator));
    }
    // The same over transports the test made (build() first).
    void start_sessions(std::unique_ptr<transport::Transport> initiator_side,
                        std::unique_ptr<transport::Transport> terminator_side) {
        initiator_ = make_session(std::move(initiator_side), Session::Role::Initiator, &init_owner_,
                                  "initiator-node");
        terminator_ = make_session(std::move(terminator_side), Session::Role::Terminator,
                                   &term_owner_, "terminator-node");
        initiator_->start();
        terminator_->start();
        ASSERT_TRUE(run_until([&] { return init_owner_.ready == 1 && term_owner_.ready == 1; }));
    }

    // One terminator session whose peer is a raw socket the test writes by hand.
    void connect_raw() {
        build();
        if (IsSkipped()) {
            return;
        }
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        ASSERT_GE(b, 0);
        raw_fd_ = a;
        terminator_ = make_session(b, Session::Role::Terminator, &term_owner_, "terminator-node");
        terminator_->start();
    }

    // The shard loop's end-of-iteration work (src/shard/shard.cc), minus services.
    void housekeeping() { loop::end_of_iteration(*ctx_); }

    // One loop iteration: submit, wait (at most `wait_ms`) for a CQE, dispatch, housekeeping.
    unsigned step(int wait_ms = 20) {
        housekeeping();
        __kernel_timespec ts{0, static_cast<long long>(wait_ms) * 1'000'000};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx_->ring.raw(), &cqe, 1, &ts, nullptr);
        ctx_->now_ns = base::mono_ns();
        unsigned n = ctx_->ring.dispatch();
        housekeeping();
        if (between_steps_) {
            between_steps_();
        }
        return n;
    }

    // Runs the loop until `cond` holds; bounded in iterations and in time.
    template <class Cond>
    bool run_until(Cond cond, int max_steps = 20000) {
        const uint64_t deadline = base::mono_ns() + 20'000'000'000ULL;
        for (int i = 0; i < max_steps && !cond() && base::mono_ns() < deadline; ++i) {
            step(step_wait_ms_);
        }
        return cond();
    }

    // Runs until the loop goes quiet: no completion within 20 ms and nothing left to flush.
    void settle() {
        int quiet = 0;
        for (int i = 0; i < 2000 && quiet < 3; ++i) {
            quiet = step(step_wait_ms_) == 0 && !ctx_->flush_pending() ? quiet + 1 : 0;
        }
    }

    void shut_down() {
        if (ctx_ == nullptr) {
            return;
        }
        between_steps_ = nullptr;
        for (auto* s : {initiator_.get(), terminator_.get()}) {
            if (s != nullptr && s->state() != Session::State::Closed) {
                s->abort("test over");
            }
        }
        run_until([&] {
            return (initiator_ == nullptr || init_owner_.closed > 0) &&
                   (terminator_ == nullptr || term_owner_.closed > 0);
        });
        initiator_.reset();
        terminator_.reset();
    }

    // Queues pattern bytes [sent, total) on `s` in pool-buffer pieces, stopping early when the
    // stream says to pause (unless `ignore_pause`). Returns the new `sent`.
    uint64_t pump(Stream* s, uint32_t seed, uint64_t sent, uint64_t total,
                  bool ignore_pause = false) {
        while (sent < total && (ignore_pause || !s->should_pause())) {
            buf::Chunk c = ctx_->local_pool.try_alloc();
            if (c.empty()) {
                break;
            }
            const auto n = static_cast<uint32_t>(std::min<uint64_t>(c.size(), total - sent));
            auto* p = reinterpret_cast<char*>(c.data());
            for (uint32_t i = 0; i < n; ++i) {
                p[i] = pattern_byte(seed, sent + i);
            }
            c.set_size(n);
            s->write(std::move(c));
            sent += n;
        }
        return sent;
    }

    // Takes every free buffer of both pools, as local streams waiting for credit would.
    void hoard() {
        for (buf::Pool* pool : {&ctx_->tunnel_pool, &ctx_->local_pool}) {
            for (buf::Chunk c = pool->try_alloc(); !c.empty(); c = pool->try_alloc()) {
                hoard_.push_back(std::move(c));
            }
        }
    }

    // Queues `text` in pool-buffer pieces; `flags` (a message's end and kind) go with the last.
    void write_text(Stream* s, std::string_view text, pt::DataFlags flags = {}) {
        do {
            buf::Chunk c;
            size_t n = 0;
            if (!text.empty()) {
                c = ctx_->local_pool.try_alloc();
                ASSERT_FALSE(c.empty());
                n = std::min<size_t>(text.size(), c.size());
                std::memcpy(c.data(), text.data(), n);
                c.set_size(static_cast<uint32_t>(n));
            }
            text.remove_prefix(n);
            const pt::DataFlags piece =
                text.empty()
                    ? flags
                    : pt::DataFlags{static_cast<uint8_t>(flags.bits & pt::kMessageKindMask)};
            s->write(std::move(c), piece);
        } while (!text.empty());
    }

    Stream* open(TestHandler& h, std::string_view key = "svc",
                 pt::StreamProtocol protocol = pt::StreamProtocol::Tcp,
                 std::span<const pt::MetadataEntry> metadata = {}) {
        h.stream = initiator_->open_stream(protocol, key, metadata, &h);
        return h.stream;
    }

    // Declared in construction order; destroyed in reverse (sessions first, ring last).
    loop::Metrics loop_metrics_;
    Metrics metrics_;
    transport::Metrics transport_metrics_;
    Tuning tuning_;
    std::unique_ptr<loop::ContextOwner> owner_;
    loop::Context* ctx_ = nullptr;
    std::vector<buf::Chunk> hoard_;  // buffers taken by hoard()
    std::deque<TestHandler> handlers_;
    TestOwner init_owner_;
    TestOwner term_owner_;
    std::unique_ptr<Session> initiator_;
    std::unique_ptr<Session> terminator_;
    std::function<void()> between_steps_;
    // How long one step waits for a completion: shorter where between_steps_ moves bytes itself.
    int step_wait_ms_ = 20;
    int raw_fd_ = -1;
};

}  // namespace ferry::tunnel::harness
