#include "idle.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "byte_stream.h"
#include "connect_pacer.h"
#include "ferry/base/clock.h"
#include "net.h"
#include "proc_stats.h"
#include "report.h"
#include "ring.h"
#include "ws_client.h"

namespace ferry::bench {
namespace {

constexpr uint64_t kTickNs = 10'000'000;
constexpr uint64_t kConnectDeadlineNs = 120'000'000'000;
constexpr size_t kDiscardSize = 4096;

class IdleClient;

// One idle connection: connect, maybe one send, then a recv posted only to notice the peer
// closing (whatever arrives, such as an echo of the first bytes, is dropped).
class IdleConn final {
  public:
    enum class State { Idle, Connecting, Established, Failed, Closed };

    IdleConn(IdleClient& client) noexcept : client_(client) {}
    ~IdleConn() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    IdleConn(const IdleConn&) = delete;
    IdleConn& operator=(const IdleConn&) = delete;

    void connect() noexcept;
    [[nodiscard]] State state() const noexcept { return state_; }
    // WebSocket: the upgrade and one message got their answers (the connection is live).
    [[nodiscard]] bool ws_live() const noexcept { return ws_live_; }

  private:
    void start_ws() noexcept;
    void on_ws_bytes(size_t n) noexcept;
    void ws_send(std::span<const std::byte> bytes) noexcept;
    void ws_fail(std::string_view why) noexcept;
    void on_connect(int res, uint32_t flags) noexcept;
    void on_send(int res, uint32_t flags) noexcept;
    void on_recv(int res, uint32_t flags) noexcept;
    void post_recv() noexcept;
    void post_send() noexcept;

    IdleClient& client_;
    int fd_ = -1;
    State state_ = State::Idle;
    uint64_t sent_ = 0;
    // WebSocket mode only: its protocol state and a receive buffer of its own (what arrives is
    // parsed, unlike the TCP mode's shared discard buffer).
    std::unique_ptr<WsClient> ws_;
    std::unique_ptr<std::byte[]> ws_in_;
    size_t ws_have_ = 0;
    std::span<const std::byte> ws_out_;
    bool ws_open_ = false;
    bool ws_live_ = false;
    MemberOp<IdleConn, &IdleConn::on_connect> connect_op_{this};
    MemberOp<IdleConn, &IdleConn::on_send> send_op_{this};
    MemberOp<IdleConn, &IdleConn::on_recv> recv_op_{this};
};

class IdleClient final {
  public:
    explicit IdleClient(const IdleOptions& options) : options_(options) {
        for (uint32_t i = 0; i < options.connections; ++i) {
            conns_.push_back(std::make_unique<IdleConn>(*this));
        }
        if (options.send_first > 0) {
            first_bytes_ = std::make_unique_for_overwrite<std::byte[]>(options.send_first);
            ByteStream(1, 0).fill(0, std::span<std::byte>(first_bytes_.get(), options.send_first));
        }
    }

    absl::Status init() { return ring_.init(4096); }

    // Returns once every connect attempt has finished (or the connect deadline passed).
    void connect_all() noexcept {
        ConnectPacer pacer(options_.connect_rate, base::mono_ns());
        pacer_ = &pacer;
        size_t next = 0;
        uint64_t now = base::mono_ns();
        const uint64_t deadline = now + kConnectDeadlineNs;
        while ((next < conns_.size() || connecting_ > 0) && now < deadline) {
            while (next < conns_.size() && pacer.may_start(now)) {
                conns_[next++]->connect();
            }
            now = ring_.run_once(kTickNs);
        }
        pacer_ = nullptr;
    }

    // WebSocket mode: runs until every established connection is live or has failed/closed.
    void wait_ws_settled(uint64_t deadline_ns) noexcept {
        uint64_t now = base::mono_ns();
        auto waiting = [this] {
            size_t n = 0;
            for (const auto& c : conns_) {
                n += c->state() == IdleConn::State::Established && !c->ws_live() ? 1U : 0U;
            }
            return n;
        };
        while (now < deadline_ns && waiting() > 0) {
            now = ring_.run_once(kTickNs);
        }
    }

    void hold_until(uint64_t end_ns) noexcept {
        uint64_t now = base::mono_ns();
        while (now < end_ns) {
            now = ring_.run_once(std::min(kTickNs * 10, end_ns - now));
        }
    }

    Ring& ring() noexcept { return ring_; }
    const IdleOptions& options() const noexcept { return options_; }
    const std::byte* first_bytes() const noexcept { return first_bytes_.get(); }
    std::byte* discard() noexcept { return discard_.get(); }
    void on_connect_started() noexcept {
        ++connecting_;
        if (pacer_ != nullptr) {
            pacer_->started();
        }
    }
    void on_connect_finished() noexcept {
        --connecting_;
        if (pacer_ != nullptr) {
            pacer_->finished();
        }
    }
    void on_established() noexcept { ++established_; }
    void on_ws_live() noexcept { ++ws_live_; }
    [[nodiscard]] size_t ws_live() const noexcept { return ws_live_; }
    [[nodiscard]] size_t established() const noexcept { return established_; }

    void report_failure(const std::string& what) noexcept {
        if (failures_reported_++ < 10) {
            fprintf(stderr, "ferry-load idle: %s\n", what.c_str());
        }
    }

    [[nodiscard]] size_t count(IdleConn::State state) const noexcept {
        size_t n = 0;
        for (const auto& c : conns_) {
            n += c->state() == state ? size_t{1} : size_t{0};
        }
        return n;
    }

  private:
    const IdleOptions& options_;
    std::vector<std::unique_ptr<IdleConn>> conns_;
    std::unique_ptr<std::byte[]> first_bytes_;
    // Shared by every recv: nobody reads what lands here.
    std::unique_ptr<std::byte[]> discard_ =
        std::make_unique_for_overwrite<std::byte[]>(kDiscardSize);
    ConnectPacer* pacer_ = nullptr;
    size_t connecting_ = 0;
    size_t established_ = 0;  // connects that succeeded, whatever happened later
    size_t ws_live_ = 0;      // WebSocket connections whose message got its reply
    int failures_reported_ = 0;
    // Last, so it is destroyed first and cancels in-flight ops before the buffers go.
    Ring ring_;
};

void IdleConn::connect() noexcept {
    fd_ = client_socket();
    if (fd_ < 0) {
        state_ = State::Failed;
        client_.report_failure(absl::StrFormat("socket: %s", errno_text(fd_)));
        return;
    }
    state_ = State::Connecting;
    client_.on_connect_started();
    const sockaddr_in& target = client_.options().target;
    io_uring_prep_connect(client_.ring().prep(&connect_op_), fd_,
                          reinterpret_cast<const sockaddr*>(&target), sizeof(target));
}

void IdleConn::on_connect(int res, uint32_t /*flags*/) noexcept {
    client_.on_connect_finished();
    if (res < 0) {
        state_ = State::Failed;
        client_.report_failure(errno_text(res));
        return;
    }
    state_ = State::Established;
    client_.on_established();
    if (client_.options().ws) {
        start_ws();
        return;
    }
    post_recv();
    if (client_.options().send_first > 0) {
        post_send();
    }
}

constexpr size_t kWsBufferSize = 4096;
// The one message each WebSocket connection sends to show it is live.
constexpr std::string_view kWsHello = "ferry-load idle: are you there?";

void IdleConn::start_ws() noexcept {
    WsClientOptions o;
    o.host = format_endpoint(client_.options().target);
    o.path = client_.options().path;
    o.text = true;
    o.any_reply = true;
    ws_ = std::make_unique<WsClient>(o, kWsHello.size());
    ws_in_ = std::make_unique_for_overwrite<std::byte[]>(kWsBufferSize);
    std::array<std::byte, 16> nonce{};
    if (getrandom(nonce.data(), nonce.size(), 0) != static_cast<ssize_t>(nonce.size())) {
        ws_fail("getrandom failed");
        return;
    }
    ws_send(ws_->handshake_request(nonce));
    io_uring_prep_recv(client_.ring().prep(&recv_op_), fd_, ws_in_.get(), kWsBufferSize, 0);
}

void IdleConn::ws_send(std::span<const std::byte> bytes) noexcept {
    // Both messages are small; one send each is enough on a fresh connection, and a short one
    // is reported as a failure rather than retried.
    ws_out_ = bytes;
    io_uring_prep_send(client_.ring().prep(&send_op_), fd_, ws_out_.data(), ws_out_.size(),
                       MSG_NOSIGNAL);
}

void IdleConn::ws_fail(std::string_view why) noexcept {
    state_ = State::Failed;
    client_.report_failure(std::string(why));
}

void IdleConn::on_ws_bytes(size_t n) noexcept {
    ws_have_ += n;
    std::span<std::byte> in(ws_in_.get(), ws_have_);
    if (!ws_open_) {
        const WsClient::Result r = ws_->feed_handshake(in);
        if (r.status == WsClient::Status::Error) {
            ws_fail(absl::StrFormat("websocket handshake: %s", ws_->error()));
            return;
        }
        if (r.status == WsClient::Status::NeedMore) {
            ws_have_ = 0;  // the parser keeps what it needs of the head
            io_uring_prep_recv(client_.ring().prep(&recv_op_), fd_, ws_in_.get(), kWsBufferSize, 0);
            return;
        }
        ws_open_ = true;
        in = in.subspan(r.consumed);
        proto::ws::MaskKey key{};
        if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) {
            ws_fail("getrandom failed");
            return;
        }
        ws_send(ws_->frame_message(
            std::as_bytes(std::span<const char>(kWsHello.data(), kWsHello.size())), key));
    }
    if (!in.empty() && !ws_live_) {
        const WsClient::Result r = ws_->feed_echo(in);
        if (r.status == WsClient::Status::Error) {
            ws_fail(absl::StrFormat("websocket reply: %s", ws_->error()));
            return;
        }
        if (r.status == WsClient::Status::MessageDone) {
            ws_live_ = true;
            client_.on_ws_live();
        }
    }
    ws_have_ = 0;
    // Keep a receive posted: it notices the peer closing while the connection idles.
    io_uring_prep_recv(client_.ring().prep(&recv_op_), fd_, ws_in_.get(), kWsBufferSize, 0);
}

void IdleConn::post_send() noexcept {
    io_uring_prep_send(client_.ring().prep(&send_op_), fd_, client_.first_bytes() + sent_,
                       client_.options().send_first - sent_, MSG_NOSIGNAL);
}

void IdleConn::post_recv() noexcept {
    io_uring_prep_recv(client_.ring().prep(&recv_op_), fd_, client_.discard(), kDiscardSize, 0);
}

void IdleConn::on_send(int res, uint32_t /*flags*/) noexcept {
    if (ws_ != nullptr) {
        if (state_ == State::Established && res != static_cast<int>(ws_out_.size())) {
            ws_fail(absl::StrFormat("websocket send: %d of %u bytes", res, ws_out_.size()));
        }
        return;
    }
    if (res > 0 && state_ == State::Established) {
        sent_ += static_cast<uint64_t>(res);
        if (sent_ < client_.options().send_first) {
            post_send();
        }
    }
}

void IdleConn::on_recv(int res, uint32_t /*flags*/) noexcept {
    if (state_ != State::Established) {
        return;
    }
    if (res <= 0) {
        state_ = State::Closed;
        return;
    }
    if (ws_ != nullptr) {
        on_ws_bytes(static_cast<size_t>(res));
        return;
    }
    post_recv();
}

}  // namespace

int run_idle(const IdleOptions& options) {
    const uint64_t limit = raise_fd_limit(uint64_t{options.connections} + 256);
    if (limit < uint64_t{options.connections} + 16) {
        fprintf(stderr, "ferry-load idle: RLIMIT_NOFILE is %llu, too low for %u connections\n",
                static_cast<unsigned long long>(limit), options.connections);
        return 1;
    }
    IdleClient client(options);
    if (absl::Status st = client.init(); !st.ok()) {
        fprintf(stderr, "ferry-load idle: %s\n", st.ToString().c_str());
        return 1;
    }
    const ProcSample before = sample_proc(options.proxy_pids);
    const uint64_t start = base::mono_ns();
    client.connect_all();
    if (options.ws) {
        client.wait_ws_settled(base::mono_ns() + kConnectDeadlineNs);
    }
    const double connect_s = static_cast<double>(base::mono_ns() - start) / 1e9;
    const size_t established = client.established();
    if (!options.json) {
        printf("idle: %zu/%u connections established in %.2f s, holding for %s\n", established,
               options.connections, connect_s, absl::FormatDuration(options.hold).c_str());
        if (options.ws) {
            printf("idle: %zu/%u WebSocket connections live (upgrade and one message answered)\n",
                   client.ws_live(), options.connections);
        }
        fflush(stdout);
    }
    client.hold_until(base::mono_ns() +
                      static_cast<uint64_t>(absl::ToInt64Nanoseconds(options.hold)));
    const ProcSample after = sample_proc(options.proxy_pids);
    const size_t still = client.count(IdleConn::State::Established);
    const size_t closed = client.count(IdleConn::State::Closed);
    const size_t failed = options.connections - established;  // refused, or never tried
    const size_t ws_live = client.ws_live();
    const auto rss_delta =
        static_cast<double>(after.proxy_rss_kib) - static_cast<double>(before.proxy_rss_kib);
    const double kib_per_conn = still == 0 ? 0 : rss_delta / static_cast<double>(still);
    if (options.json) {
        printf(
            "{\"label\":\"%s\",\"mode\":\"idle\",\"connections\":%u,\"established\":%zu,"
            "\"still_established\":%zu,\"closed_by_peer\":%zu,\"failed\":%zu,"
            "\"connect_s\":%.3f,\"hold_s\":%.3f,\"send_first\":%llu,\"ws\":%s,\"ws_live\":%zu",
            json_escape(options.label).c_str(), options.connections, established, still, closed,
            failed, connect_s, absl::ToDoubleSeconds(options.hold),
            static_cast<unsigned long long>(options.send_first), options.ws ? "true" : "false",
            ws_live);
        if (!options.proxy_pids.empty()) {
            printf(
                ",\"proxy_rss_kib_before\":%llu,\"proxy_rss_kib_after\":%llu,"
                "\"kib_per_conn\":%.2f",
                static_cast<unsigned long long>(before.proxy_rss_kib),
                static_cast<unsigned long long>(after.proxy_rss_kib), kib_per_conn);
        }
        printf("}\n");
    } else {
        printf(
            "idle: %zu/%u still established after the hold (%zu closed by peer, %zu never "
            "connected)\n",
            still, options.connections, closed, failed);
        if (!options.proxy_pids.empty()) {
            printf("idle: proxy rss %llu KiB -> %llu KiB, %.2f KiB per connection\n",
                   static_cast<unsigned long long>(before.proxy_rss_kib),
                   static_cast<unsigned long long>(after.proxy_rss_kib), kib_per_conn);
        }
    }
    fflush(stdout);
    return still == options.connections && (!options.ws || ws_live == options.connections) ? 0 : 1;
}

}  // namespace ferry::bench
