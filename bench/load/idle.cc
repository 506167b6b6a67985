#include "idle.h"

#include <sys/socket.h>
#include <unistd.h>

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

  private:
    void on_connect(int res, uint32_t flags) noexcept;
    void on_send(int res, uint32_t flags) noexcept;
    void on_recv(int res, uint32_t flags) noexcept;
    void post_recv() noexcept;
    void post_send() noexcept;

    IdleClient& client_;
    int fd_ = -1;
    State state_ = State::Idle;
    uint64_t sent_ = 0;
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
    post_recv();
    if (client_.options().send_first > 0) {
        post_send();
    }
}

void IdleConn::post_send() noexcept {
    io_uring_prep_send(client_.ring().prep(&send_op_), fd_, client_.first_bytes() + sent_,
                       client_.options().send_first - sent_, MSG_NOSIGNAL);
}

void IdleConn::post_recv() noexcept {
    io_uring_prep_recv(client_.ring().prep(&recv_op_), fd_, client_.discard(), kDiscardSize, 0);
}

void IdleConn::on_send(int res, uint32_t /*flags*/) noexcept {
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
    const double connect_s = static_cast<double>(base::mono_ns() - start) / 1e9;
    const size_t established = client.established();
    if (!options.json) {
        printf("idle: %zu/%u connections established in %.2f s, holding for %s\n", established,
               options.connections, connect_s, absl::FormatDuration(options.hold).c_str());
        fflush(stdout);
    }
    client.hold_until(base::mono_ns() +
                      static_cast<uint64_t>(absl::ToInt64Nanoseconds(options.hold)));
    const ProcSample after = sample_proc(options.proxy_pids);
    const size_t still = client.count(IdleConn::State::Established);
    const size_t closed = client.count(IdleConn::State::Closed);
    const size_t failed = options.connections - established;  // refused, or never tried
    const auto rss_delta =
        static_cast<double>(after.proxy_rss_kib) - static_cast<double>(before.proxy_rss_kib);
    const double kib_per_conn = still == 0 ? 0 : rss_delta / static_cast<double>(still);
    if (options.json) {
        printf(
            "{\"label\":\"%s\",\"mode\":\"idle\",\"connections\":%u,\"established\":%zu,"
            "\"still_established\":%zu,\"closed_by_peer\":%zu,\"failed\":%zu,"
            "\"connect_s\":%.3f,\"hold_s\":%.3f,\"send_first\":%llu",
            json_escape(options.label).c_str(), options.connections, established, still, closed,
            failed, connect_s, absl::ToDoubleSeconds(options.hold),
            static_cast<unsigned long long>(options.send_first));
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
    return still == options.connections ? 0 : 1;
}

}  // namespace ferry::bench
