#include "verify.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#define XXH_STATIC_LINKING_ONLY  // complete XXH64_state_t, so it can live inside a connection
#include <xxhash.h>

#include "absl/strings/str_format.h"
#include "byte_stream.h"
#include "connect_pacer.h"
#include "ferry/base/clock.h"
#include "net.h"
#include "report.h"
#include "ring.h"

namespace ferry::bench {
namespace {

constexpr size_t kMaxWrite = 64 << 10;
constexpr size_t kRecvSize = 64 << 10;
constexpr uint64_t kTickNs = 10'000'000;

class VerifyWorker;

// One verified connection: a send side that writes the stream in random-sized chunks and a
// recv side (always posted while running) that regenerates the range it just read and compares
// it byte by byte. Both sides feed their own xxHash64 state; they must agree at the end, as
// must the byte counts. After the last write it shuts down its write side (--half-close) and
// expects the echo to end with EOF, or closes once the whole echo is back.
// The fd is closed when the connection has finished and its last op has completed.
class VerifyConn final {
  public:
    enum class State { Idle, Connecting, Running, Verified, Failed };

    VerifyConn(VerifyWorker& worker, uint32_t id);
    ~VerifyConn() { close_fd(); }
    VerifyConn(const VerifyConn&) = delete;
    VerifyConn& operator=(const VerifyConn&) = delete;

    void connect() noexcept;
    // Marks a connection that never started as failed.
    void abandon(std::string reason) noexcept { fail(std::move(reason)); }

    [[nodiscard]] uint32_t id() const noexcept { return id_; }
    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
    [[nodiscard]] std::string progress() const;

  private:
    void on_connect(int res, uint32_t flags) noexcept;
    void on_send(int res, uint32_t flags) noexcept;
    void on_recv(int res, uint32_t flags) noexcept;
    void on_shutdown(int res, uint32_t flags) noexcept;

    void next_write() noexcept;
    void post_send() noexcept;
    void post_recv() noexcept;
    void check_received(size_t n) noexcept;
    void finish() noexcept;
    void fail(std::string reason) noexcept;
    [[nodiscard]] bool settled() const noexcept {
        return state_ == State::Verified || state_ == State::Failed;
    }
    // Called after every completion once settled: closes when nothing is in flight any more.
    void close_when_idle() noexcept {
        if (inflight_ == 0) {
            close_fd();
        }
    }
    void close_fd() noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    VerifyWorker& worker_;
    uint32_t id_;
    int fd_ = -1;
    State state_ = State::Idle;
    int inflight_ = 0;
    ByteStream stream_;
    SplitMix sizes_;
    uint64_t total_;
    uint64_t filled_ = 0;  // bytes generated and hashed for sending
    uint64_t sent_ = 0;    // bytes the kernel accepted
    size_t chunk_len_ = 0;
    size_t chunk_off_ = 0;
    uint64_t received_ = 0;
    bool write_shut_ = false;
    XXH64_state_t send_hash_{};
    XXH64_state_t recv_hash_{};
    std::unique_ptr<std::byte[]> send_buf_;
    std::unique_ptr<std::byte[]> recv_buf_;
    std::string failure_;
    MemberOp<VerifyConn, &VerifyConn::on_connect> connect_op_{this};
    MemberOp<VerifyConn, &VerifyConn::on_send> send_op_{this};
    MemberOp<VerifyConn, &VerifyConn::on_recv> recv_op_{this};
    MemberOp<VerifyConn, &VerifyConn::on_shutdown> shutdown_op_{this};
};

class VerifyWorker final {
  public:
    VerifyWorker(const RunOptions& options, const std::vector<uint32_t>& ids, uint64_t deadline)
        : options_(options), deadline_(deadline) {
        for (uint32_t id : ids) {
            conns_.push_back(std::make_unique<VerifyConn>(*this, id));
        }
        active_ = conns_.size();
    }

    // Runs on the worker's own thread: the ring is single-issuer, owned by its creator.
    absl::Status init() {
        const auto entries = static_cast<unsigned>(
            std::clamp<size_t>(std::bit_ceil(conns_.size() * 4), size_t{256}, size_t{4096}));
        return ring_.init(entries);
    }

    void run() noexcept {
        if (absl::Status st = init(); !st.ok()) {
            fprintf(stderr, "ferry-load: %s\n", st.ToString().c_str());
            for (auto& c : conns_) {
                c->abandon("io_uring setup failed");
            }
            return;
        }
        ConnectPacer pacer(options_.connect_rate / options_.threads, base::mono_ns());
        pacer_ = &pacer;
        size_t next = 0;
        uint64_t now = base::mono_ns();
        while (active_ > 0 && now < deadline_) {
            while (next < conns_.size() && pacer.may_start(now)) {
                conns_[next++]->connect();
            }
            now = ring_.run_once(kTickNs);
        }
        pacer_ = nullptr;
    }

    Ring& ring() noexcept { return ring_; }
    const RunOptions& options() const noexcept { return options_; }
    // Where a connection regenerates the bytes it expects; used synchronously, so shared.
    std::byte* scratch() noexcept { return scratch_.get(); }
    void on_connect_started() noexcept { pacer_->started(); }
    void on_connect_finished() noexcept { pacer_->finished(); }
    void on_settled() noexcept { --active_; }
    const std::vector<std::unique_ptr<VerifyConn>>& conns() const noexcept { return conns_; }

  private:
    const RunOptions& options_;
    uint64_t deadline_;
    std::vector<std::unique_ptr<VerifyConn>> conns_;
    size_t active_ = 0;
    ConnectPacer* pacer_ = nullptr;
    std::unique_ptr<std::byte[]> scratch_ = std::make_unique_for_overwrite<std::byte[]>(kRecvSize);
    // Last, so it is destroyed first and cancels in-flight ops before the buffers go.
    Ring ring_;
};

VerifyConn::VerifyConn(VerifyWorker& worker, uint32_t id)
    : worker_(worker),
      id_(id),
      stream_(worker.options().seed, id),
      sizes_(mix64(worker.options().seed) ^ mix64(~uint64_t{id})),
      total_(worker.options().bytes_per_connection) {
    XXH64_reset(&send_hash_, 0);
    XXH64_reset(&recv_hash_, 0);
}

std::string VerifyConn::progress() const {
    if (state_ == State::Idle || state_ == State::Connecting) {
        return "still connecting";
    }
    return absl::StrFormat("sent %d/%d bytes%s, received %d/%d bytes", sent_, total_,
                           write_shut_ ? " (write side shut)" : "", received_, total_);
}

void VerifyConn::connect() noexcept {
    fd_ = client_socket();
    if (fd_ < 0) {
        fail(absl::StrFormat("socket: %s", errno_text(fd_)));
        return;
    }
    state_ = State::Connecting;
    worker_.on_connect_started();
    ++inflight_;
    const sockaddr_in& target = worker_.options().target;
    io_uring_prep_connect(worker_.ring().prep(&connect_op_), fd_,
                          reinterpret_cast<const sockaddr*>(&target), sizeof(target));
}

void VerifyConn::on_connect(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    worker_.on_connect_finished();
    if (res < 0) {
        fail(errno_text(res));
        return;
    }
    state_ = State::Running;
    send_buf_ = std::make_unique_for_overwrite<std::byte[]>(kMaxWrite);
    recv_buf_ = std::make_unique_for_overwrite<std::byte[]>(kRecvSize);
    post_recv();
    next_write();
}

void VerifyConn::next_write() noexcept {
    if (filled_ == total_) {
        if (worker_.options().half_close) {
            write_shut_ = true;
            ++inflight_;
            io_uring_prep_shutdown(worker_.ring().prep(&shutdown_op_), fd_, SHUT_WR);
        }
        return;
    }
    // Log-uniform sizes in [1, 64 KiB]: small writes (which split frames and headers) are as
    // common as large ones.
    const uint64_t bits = sizes_.next() % 17;
    const uint64_t size = 1 + sizes_.next() % (uint64_t{1} << bits);
    chunk_len_ = static_cast<size_t>(std::min<uint64_t>(size, total_ - filled_));
    chunk_off_ = 0;
    stream_.fill(filled_, std::span<std::byte>(send_buf_.get(), chunk_len_));
    XXH64_update(&send_hash_, send_buf_.get(), chunk_len_);
    filled_ += chunk_len_;
    post_send();
}

void VerifyConn::post_send() noexcept {
    ++inflight_;
    io_uring_prep_send(worker_.ring().prep(&send_op_), fd_, send_buf_.get() + chunk_off_,
                       chunk_len_ - chunk_off_, MSG_NOSIGNAL);
}

void VerifyConn::post_recv() noexcept {
    ++inflight_;
    io_uring_prep_recv(worker_.ring().prep(&recv_op_), fd_, recv_buf_.get(), kRecvSize, 0);
}

void VerifyConn::on_send(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    if (settled()) {
        close_when_idle();
        return;
    }
    if (res <= 0) {
        fail(absl::StrFormat("send error after %d bytes: %s", sent_,
                             res < 0 ? errno_text(res) : "0 bytes written"));
        return;
    }
    chunk_off_ += static_cast<size_t>(res);
    sent_ += static_cast<uint64_t>(res);
    if (chunk_off_ < chunk_len_) {
        post_send();
    } else {
        next_write();
    }
}

void VerifyConn::on_shutdown(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    if (settled()) {
        close_when_idle();
        return;
    }
    if (res < 0) {
        fail(absl::StrFormat("shutdown(SHUT_WR): %s", errno_text(res)));
    }
}

void VerifyConn::on_recv(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    if (settled()) {
        close_when_idle();
        return;
    }
    if (res < 0) {
        fail(absl::StrFormat("recv error after %d bytes: %s", received_, errno_text(res)));
        return;
    }
    if (res == 0) {
        if (received_ < total_) {
            fail(absl::StrFormat("early EOF after %d bytes", received_));
        } else {
            finish();
        }
        return;
    }
    check_received(static_cast<size_t>(res));
    if (settled()) {
        return;
    }
    if (received_ == total_ && !worker_.options().half_close) {
        finish();
        return;
    }
    post_recv();
}

void VerifyConn::check_received(size_t n) noexcept {
    const size_t expected_n = static_cast<size_t>(std::min<uint64_t>(n, total_ - received_));
    std::byte* expected = worker_.scratch();
    stream_.fill(received_, std::span<std::byte>(expected, expected_n));
    if (std::memcmp(expected, recv_buf_.get(), expected_n) != 0) {
        size_t at = 0;
        while (expected[at] == recv_buf_[at]) {
            ++at;
        }
        fail(absl::StrFormat("mismatch at byte %d", received_ + at));
        return;
    }
    XXH64_update(&recv_hash_, recv_buf_.get(), n);
    received_ += n;
    if (expected_n < n) {
        fail(absl::StrFormat("%d bytes more than were sent came back", n - expected_n));
    }
}

void VerifyConn::finish() noexcept {
    const XXH64_hash_t sent = XXH64_digest(&send_hash_);
    const XXH64_hash_t got = XXH64_digest(&recv_hash_);
    if (filled_ != total_ || received_ != total_) {
        fail(absl::StrFormat("byte count: sent %d, received %d, expected %d", filled_, received_,
                             total_));
        return;
    }
    if (sent != got) {
        fail(absl::StrFormat("xxh64 mismatch: sent %016x, received %016x", sent, got));
        return;
    }
    state_ = State::Verified;
    worker_.on_settled();
    close_when_idle();
}

void VerifyConn::fail(std::string reason) noexcept {
    const bool connected = state_ == State::Running;
    state_ = State::Failed;
    failure_ = std::move(reason);
    worker_.on_settled();
    if (connected) {
        ::shutdown(fd_, SHUT_RDWR);  // wakes the ops still in flight
    }
    close_when_idle();
}

}  // namespace

int run_verify(const RunOptions& options_in) {
    RunOptions options = options_in;
    options.threads = std::clamp<int>(options.threads, 1, static_cast<int>(options.connections));
    raise_fd_limit(uint64_t{options.connections} + 256);
    const auto nthreads = static_cast<uint32_t>(options.threads);
    const uint64_t start = base::mono_ns();
    const uint64_t deadline =
        start + static_cast<uint64_t>(absl::ToInt64Nanoseconds(options.timeout));

    std::vector<std::unique_ptr<VerifyWorker>> workers;
    for (uint32_t t = 0; t < nthreads; ++t) {
        std::vector<uint32_t> ids;
        for (uint32_t i = t; i < options.connections; i += nthreads) {
            ids.push_back(i);
        }
        workers.push_back(std::make_unique<VerifyWorker>(options, ids, deadline));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) {
        threads.emplace_back([worker = w.get()] { worker->run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    const double secs = static_cast<double>(base::mono_ns() - start) / 1e9;

    std::vector<std::pair<uint32_t, std::string>> problems;
    uint32_t verified = 0;
    bool timed_out = false;
    for (auto& w : workers) {
        for (const auto& c : w->conns()) {
            switch (c->state()) {
                case VerifyConn::State::Verified:
                    ++verified;
                    break;
                case VerifyConn::State::Failed:
                    problems.emplace_back(c->id(), c->failure());
                    break;
                default:
                    timed_out = true;
                    problems.emplace_back(c->id(),
                                          absl::StrFormat("stuck at timeout: %s", c->progress()));
                    break;
            }
        }
    }
    std::sort(problems.begin(), problems.end());
    const uint64_t total_bytes = uint64_t{verified} * options.bytes_per_connection;
    if (options.json) {
        std::string failures;
        for (const auto& [id, why] : problems) {
            absl::StrAppendFormat(&failures, "%s\"conn %d: %s\"", failures.empty() ? "" : ",", id,
                                  json_escape(why));
        }
        printf(
            "{\"label\":\"%s\",\"mode\":\"verify\",\"connections\":%u,\"verified\":%u,"
            "\"failed\":%zu,\"bytes_per_connection\":%llu,\"duration_s\":%.3f,"
            "\"mb_per_s\":%.2f,\"timed_out\":%s,\"errors\":%zu,\"failures\":[%s]}\n",
            json_escape(options.label).c_str(), options.connections, verified, problems.size(),
            static_cast<unsigned long long>(options.bytes_per_connection), secs,
            static_cast<double>(total_bytes) / secs / 1e6, timed_out ? "true" : "false",
            problems.size(), failures.c_str());
    } else {
        for (const auto& [id, why] : problems) {
            printf("conn %u: %s\n", id, why.c_str());
        }
        printf(
            "verify%s%s: %u/%u connections verified, %llu bytes each way per connection, "
            "%.2f s (%.1f MB/s echoed)%s\n",
            options.label.empty() ? "" : " ", options.label.c_str(), verified, options.connections,
            static_cast<unsigned long long>(options.bytes_per_connection), secs,
            static_cast<double>(total_bytes) / secs / 1e6, timed_out ? ", TIMED OUT" : "");
    }
    fflush(stdout);
    return problems.empty() ? 0 : 1;
}

}  // namespace ferry::bench
