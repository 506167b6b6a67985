#include "load.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "byte_stream.h"
#include "connect_pacer.h"
#include "ferry/base/clock.h"
#include "histogram.h"
#include "net.h"
#include "proc_stats.h"
#include "report.h"
#include "ring.h"
#include "ws_client.h"

namespace ferry::bench {
namespace {

constexpr uint64_t kRetryDelayNs = 100'000'000;  // a refused connect is retried once, 100 ms on
constexpr uint64_t kConnectPhaseTickNs = 5'000'000;
constexpr uint64_t kRunTickNs = 10'000'000;
constexpr uint64_t kConnectDeadlineNs = 60'000'000'000;
constexpr int kMaxErrorLines = 10;

// The main thread's schedule for the workers. measure_start_ns and end_ns are written before
// go is released and only read after it is acquired.
struct Phase {
    std::atomic<uint32_t> ready{0};
    std::atomic<bool> go{false};
    std::atomic<bool> abort{false};
    uint64_t measure_start_ns = 0;
    uint64_t end_ns = UINT64_MAX;
};

class LoadWorker;

// One client connection. rr: send a `size` request, wait until exactly `size` bytes came back
// and the send completed, record the latency, repeat. bulk: keep one recv of `size` posted.
// ws-rr / ws-verify: after connecting, the WebSocket upgrade (Handshaking; the connection
// counts as connected once the 101 checked out), then rr with one masked `size`-byte message per
// request and the whole echoed message as its answer (WsClient checks it).
// A recv is always posted while running, so the echo is read while the request is still being
// sent. A failed connection is shut down and left alone; its fd is closed when the worker (and
// its ring, which cancels what is left) is destroyed.
class LoadConn final {
  public:
    enum class State { Idle, Connecting, RetryWait, Handshaking, Connected, Dead };

    LoadConn(LoadWorker& worker, uint32_t id, size_t recv_size);
    ~LoadConn() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    LoadConn(const LoadConn&) = delete;
    LoadConn& operator=(const LoadConn&) = delete;

    void connect() noexcept;
    void begin() noexcept;
    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] uint64_t retry_at() const noexcept { return retry_at_; }

  private:
    void on_connect(int res, uint32_t flags) noexcept;
    void on_send(int res, uint32_t flags) noexcept;
    void on_recv(int res, uint32_t flags) noexcept;

    void issue_request() noexcept;
    void post_send() noexcept;
    void post_recv() noexcept;
    void fail(const char* what, int res) noexcept;
    void start_handshake() noexcept;
    void on_handshake_recv(int res) noexcept;
    void on_ws_recv(uint64_t now, int res) noexcept;
    void fail_handshake(const std::string& why) noexcept;
    void complete_if_done(uint64_t now) noexcept;

    LoadWorker& worker_;
    uint32_t id_;
    int fd_ = -1;
    State state_ = State::Idle;
    int retries_left_ = 1;
    uint64_t retry_at_ = 0;
    size_t recv_size_;
    std::unique_ptr<std::byte[]> recv_buf_;
    const std::byte* send_buf_ = nullptr;  // the request (rr) or the framed message (ws)
    uint64_t send_len_ = 0;
    uint64_t sent_ = 0;
    uint64_t received_ = 0;
    bool send_done_ = false;
    bool echo_done_ = false;
    uint64_t request_start_ns_ = 0;
    uint64_t messages_sent_ = 0;
    std::unique_ptr<WsClient> ws_;          // ws modes only
    std::unique_ptr<std::byte[]> payload_;  // ws-verify: this connection's current message
    MemberOp<LoadConn, &LoadConn::on_connect> connect_op_{this};
    MemberOp<LoadConn, &LoadConn::on_send> send_op_{this};
    MemberOp<LoadConn, &LoadConn::on_recv> recv_op_{this};
};

class LoadWorker final {
  public:
    LoadWorker(const RunOptions& options, Phase& phase, std::vector<uint32_t> ids,
               uint64_t count_share)
        : options_(options), phase_(phase), count_share_(count_share) {
        request_ = std::make_unique_for_overwrite<std::byte[]>(options.size);
        ByteStream(options.seed, 0).fill(0, std::span<std::byte>(request_.get(), options.size));
        if (options.text) {
            make_ascii({request_.get(), options.size});
        }
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
            seed = base::mono_ns();
        }
        rng_ = SplitMix(seed);
        const size_t recv_size =
            options.mode == RunMode::Bulk
                ? options.size
                : std::clamp<size_t>(options.size, size_t{4096}, size_t{256} << 10);
        for (uint32_t id : ids) {
            conns_.push_back(std::make_unique<LoadConn>(*this, id, recv_size));
        }
        unsettled_ = conns_.size();
    }

    // Runs on the worker's own thread: the ring is single-issuer, owned by its creator.
    absl::Status init() {
        const auto entries = static_cast<unsigned>(
            std::clamp<size_t>(std::bit_ceil(conns_.size() * 2), size_t{256}, size_t{4096}));
        return ring_.init(entries);
    }

    void run() noexcept {
        if (absl::Status st = init(); !st.ok()) {
            fprintf(stderr, "ferry-load: %s\n", st.ToString().c_str());
            phase_.ready.fetch_add(1);
            return;
        }
        connect_all();
        phase_.ready.fetch_add(1);
        while (!phase_.go.load(std::memory_order_acquire)) {
            if (phase_.abort.load()) {
                return;
            }
            ring_.run_once(1'000'000);
        }
        measure_start_ = phase_.measure_start_ns;
        end_ = phase_.end_ns;
        running_ = true;
        for (auto& c : conns_) {
            if (c->state() == LoadConn::State::Connected) {
                c->begin();
            }
        }
        uint64_t now = base::mono_ns();
        while (now < end_ && live_ > 0 && !phase_.abort.load(std::memory_order_relaxed) &&
               (count_share_ == 0 || measured_units() < count_share_)) {
            now = ring_.run_once(kRunTickNs);
        }
        running_ = false;
        finish_ns_ = std::min(now, end_);
    }

    // Accessors for LoadConn.
    Ring& ring() noexcept { return ring_; }
    const RunOptions& options() const noexcept { return options_; }
    const std::byte* request() const noexcept { return request_.get(); }
    bool running() const noexcept { return running_; }
    // Mask keys: RFC 6455 §5.3 asks for unpredictable keys to protect intermediaries from
    // cache poisoning by hostile scripts; a benchmark client only needs them to vary, so a
    // getrandom()-seeded SplitMix64 stands in for a CSPRNG.
    uint64_t random() noexcept { return rng_.next(); }

    // Maps pseudo-random bytes to printable ASCII (valid UTF-8 for Text messages).
    static void make_ascii(std::span<std::byte> bytes) noexcept {
        for (std::byte& b : bytes) {
            b = static_cast<std::byte>(0x21 + std::to_integer<unsigned>(b) % 94);
        }
    }

    void on_connected(bool ok) noexcept {
        pacer_.finished();
        --unsettled_;
        if (ok) {
            ++live_;
        }
    }
    void on_retry_scheduled() noexcept { pacer_.finished(); }
    void on_gave_up() noexcept { --unsettled_; }
    void on_lost() noexcept { --live_; }
    void on_connect_started() noexcept { pacer_.started(); }

    void on_message(uint64_t now, uint64_t latency_ns) noexcept {
        if (now >= measure_start_ && now < end_) {
            latency_.record(latency_ns);
            ++messages_;
            bytes_ += options_.size;
        }
    }
    void on_bytes(uint64_t now, uint64_t n) noexcept {
        if (now >= measure_start_ && now < end_) {
            bytes_ += n;
        }
    }
    void count_error(uint32_t id, const std::string& what) noexcept {
        if (errors_++ < kMaxErrorLines) {
            fprintf(stderr, "conn %u: %s\n", id, what.c_str());
        }
    }

    // Results, read by the main thread after join.
    const Histogram& latency() const noexcept { return latency_; }
    uint64_t messages() const noexcept { return messages_; }
    uint64_t bytes() const noexcept { return bytes_; }
    uint64_t errors() const noexcept { return errors_; }
    uint64_t finish_ns() const noexcept { return finish_ns_; }
    size_t live() const noexcept { return live_; }

  private:
    // Messages measured so far; bulk counts `size`-byte units of received data.
    uint64_t measured_units() const noexcept {
        return options_.mode == RunMode::Bulk ? bytes_ / options_.size : messages_;
    }

    // Starts connects as the pacer allows (retries first, once due) until every connection
    // has connected or given up.
    void connect_all() noexcept {
        pacer_ = ConnectPacer(options_.connect_rate / options_.threads, base::mono_ns());
        size_t next = 0;
        const uint64_t deadline = base::mono_ns() + kConnectDeadlineNs;
        uint64_t now = base::mono_ns();
        while (unsettled_ > 0 && now < deadline && !phase_.abort.load()) {
            for (auto& c : conns_) {
                if (c->state() == LoadConn::State::RetryWait && c->retry_at() <= now &&
                    pacer_.may_start(now)) {
                    c->connect();
                }
            }
            while (next < conns_.size() && pacer_.may_start(now)) {
                conns_[next++]->connect();
            }
            now = ring_.run_once(kConnectPhaseTickNs);
        }
    }

    const RunOptions& options_;
    Phase& phase_;
    uint64_t count_share_;
    std::unique_ptr<std::byte[]> request_;
    SplitMix rng_{0};
    std::vector<std::unique_ptr<LoadConn>> conns_;
    ConnectPacer pacer_{0, 0};
    size_t unsettled_ = 0;
    size_t live_ = 0;
    bool running_ = false;
    uint64_t measure_start_ = 0;
    uint64_t end_ = UINT64_MAX;
    uint64_t finish_ns_ = 0;
    Histogram latency_;
    uint64_t messages_ = 0;
    uint64_t bytes_ = 0;
    uint64_t errors_ = 0;
    // Last, so it is destroyed first and cancels in-flight ops before the buffers go.
    Ring ring_;
};

LoadConn::LoadConn(LoadWorker& worker, uint32_t id, size_t recv_size)
    : worker_(worker),
      id_(id),
      recv_size_(recv_size),
      recv_buf_(std::make_unique_for_overwrite<std::byte[]>(recv_size)) {
    const RunOptions& options = worker_.options();
    if (options.websocket()) {
        WsClientOptions ws;
        ws.host = format_endpoint(options.target);
        ws.path = options.path;
        ws.subprotocol = options.subprotocol;
        ws.text = options.text;
        ws.verify = options.mode == RunMode::WsVerify;
        ws_ = std::make_unique<WsClient>(ws, options.size);
        if (ws.verify) {
            payload_ = std::make_unique_for_overwrite<std::byte[]>(options.size);
        }
    }
}

void LoadConn::connect() noexcept {
    fd_ = client_socket();
    if (fd_ < 0) {
        worker_.count_error(id_, absl::StrFormat("socket: %s", errno_text(fd_)));
        state_ = State::Dead;
        worker_.on_gave_up();
        return;
    }
    state_ = State::Connecting;
    worker_.on_connect_started();
    const sockaddr_in& target = worker_.options().target;
    io_uring_prep_connect(worker_.ring().prep(&connect_op_), fd_,
                          reinterpret_cast<const sockaddr*>(&target), sizeof(target));
}

void LoadConn::on_connect(int res, uint32_t /*flags*/) noexcept {
    if (res == 0) {
        if (ws_ != nullptr) {
            start_handshake();
            return;
        }
        state_ = State::Connected;
        worker_.on_connected(true);
        return;
    }
    ::close(fd_);
    fd_ = -1;
    if (retries_left_-- > 0) {
        worker_.count_error(id_, errno_text(res) + " (retrying in 100 ms)");
        state_ = State::RetryWait;
        retry_at_ = worker_.ring().now() + kRetryDelayNs;
        worker_.on_retry_scheduled();
    } else {
        worker_.count_error(id_, errno_text(res));
        state_ = State::Dead;
        worker_.on_connected(false);
    }
}

void LoadConn::begin() noexcept {
    post_recv();
    if (worker_.options().mode != RunMode::Bulk) {
        issue_request();
    }
}

void LoadConn::start_handshake() noexcept {
    state_ = State::Handshaking;
    std::array<std::byte, 16> nonce{};
    if (getrandom(nonce.data(), nonce.size(), 0) != static_cast<ssize_t>(nonce.size())) {
        for (size_t i = 0; i < nonce.size(); i += 8) {
            const uint64_t r = worker_.random();
            std::memcpy(nonce.data() + i, &r, 8);
        }
    }
    const std::span<const std::byte> request = ws_->handshake_request(nonce);
    if (request.empty()) {
        fail_handshake("the upgrade request could not be written (--path, --subprotocol?)");
        return;
    }
    send_buf_ = request.data();
    send_len_ = request.size();
    sent_ = 0;
    post_send();
    post_recv();
}

void LoadConn::fail_handshake(const std::string& why) noexcept {
    worker_.count_error(id_, why);
    state_ = State::Dead;
    worker_.on_connected(false);
    ::shutdown(fd_, SHUT_RDWR);
}

void LoadConn::issue_request() noexcept {
    request_start_ns_ = base::mono_ns();
    sent_ = 0;
    received_ = 0;
    send_done_ = false;
    echo_done_ = false;
    const RunOptions& options = worker_.options();
    if (ws_ == nullptr) {
        send_buf_ = worker_.request();
        send_len_ = options.size;
    } else {
        std::span<const std::byte> payload(worker_.request(), options.size);
        if (payload_ != nullptr) {
            // ws-verify: every message of every connection carries different bytes.
            const std::span<std::byte> fresh(payload_.get(), options.size);
            ByteStream(options.seed, id_).fill(messages_sent_ * options.size, fresh);
            if (options.text) {
                LoadWorker::make_ascii(fresh);
            }
            payload = fresh;
        }
        // ws-verify also sends every second and third message in 2 and 3 fragments with a
        // Ping in between; ws-rr sends one frame per message.
        const size_t fragments = payload_ != nullptr ? 1 + messages_sent_ % 3 : 1;
        std::array<proto::ws::MaskKey, kMaxFrameKeys> keys{};
        const size_t nkeys = fragments == 1 ? 1 : fragments + 1;
        for (size_t i = 0; i < nkeys; ++i) {
            const auto r = static_cast<uint32_t>(worker_.random());
            std::memcpy(keys[i].data(), &r, sizeof(r));
        }
        const std::span<const std::byte> frame =
            ws_->frame_message(payload, std::span<const proto::ws::MaskKey>(keys.data(), nkeys));
        send_buf_ = frame.data();
        send_len_ = frame.size();
    }
    ++messages_sent_;
    post_send();
}

void LoadConn::post_send() noexcept {
    io_uring_prep_send(worker_.ring().prep(&send_op_), fd_, send_buf_ + sent_, send_len_ - sent_,
                       MSG_NOSIGNAL);
}

void LoadConn::complete_if_done(uint64_t now) noexcept {
    if (send_done_ && echo_done_) {
        worker_.on_message(now, now > request_start_ns_ ? now - request_start_ns_ : 0);
        if (worker_.running()) {
            issue_request();
        }
    }
}

void LoadConn::post_recv() noexcept {
    io_uring_prep_recv(worker_.ring().prep(&recv_op_), fd_, recv_buf_.get(), recv_size_, 0);
}

void LoadConn::on_send(int res, uint32_t /*flags*/) noexcept {
    if (state_ == State::Handshaking) {
        if (res <= 0) {
            fail_handshake(res == 0 ? std::string("upgrade request: send returned 0")
                                    : absl::StrFormat("upgrade request: %s", errno_text(res)));
        } else if ((sent_ += static_cast<uint64_t>(res)) < send_len_) {
            post_send();
        }
        return;
    }
    if (state_ != State::Connected) {
        return;
    }
    if (res <= 0) {
        fail("send", res);
        return;
    }
    sent_ += static_cast<uint64_t>(res);
    if (sent_ < send_len_) {
        post_send();
        return;
    }
    send_done_ = true;
    complete_if_done(worker_.ring().now());
}

void LoadConn::on_handshake_recv(int res) noexcept {
    if (res <= 0) {
        fail_handshake(res == 0 ? std::string("peer closed during the upgrade")
                                : absl::StrFormat("upgrade: %s", errno_text(res)));
        return;
    }
    const std::span<std::byte> input(recv_buf_.get(), static_cast<size_t>(res));
    const WsClient::Result head = ws_->feed_handshake(input);
    if (head.status == WsClient::Status::NeedMore) {
        post_recv();
        return;
    }
    if (head.status != WsClient::Status::Open) {
        fail_handshake(std::string(ws_->error()));
        return;
    }
    if (head.consumed < input.size()) {
        // Frames right behind the 101 (a Ping, say): nothing is outstanding yet.
        const WsClient::Result r = ws_->feed_echo(input.subspan(head.consumed));
        if (r.status == WsClient::Status::Error) {
            fail_handshake(std::string(ws_->error()));
            return;
        }
    }
    state_ = State::Connected;
    worker_.on_connected(true);
}

void LoadConn::on_ws_recv(uint64_t now, int res) noexcept {
    const WsClient::Result r =
        ws_->feed_echo(std::span<std::byte>(recv_buf_.get(), static_cast<size_t>(res)));
    if (r.status == WsClient::Status::Error) {
        if (!worker_.running()) {
            return;
        }
        state_ = State::Dead;
        worker_.on_lost();
        worker_.count_error(id_, std::string(ws_->error()));
        ::shutdown(fd_, SHUT_RDWR);
        return;
    }
    if (!worker_.running()) {
        return;
    }
    post_recv();
    if (r.status == WsClient::Status::MessageDone) {
        echo_done_ = true;
        complete_if_done(now);
    }
}

void LoadConn::on_recv(int res, uint32_t /*flags*/) noexcept {
    if (state_ == State::Handshaking) {
        on_handshake_recv(res);
        return;
    }
    if (state_ != State::Connected) {
        return;
    }
    if (res <= 0) {
        fail(res == 0 ? "peer closed" : "recv", res);
        return;
    }
    const uint64_t now = worker_.ring().now();
    if (worker_.options().mode == RunMode::Bulk) {
        worker_.on_bytes(now, static_cast<uint64_t>(res));
        if (worker_.running()) {
            post_recv();
        }
        return;
    }
    if (ws_ != nullptr) {
        on_ws_recv(now, res);
        return;
    }
    received_ += static_cast<uint64_t>(res);
    const uint64_t size = worker_.options().size;
    if (received_ > size) {
        fail("echo longer than the request", 0);
        return;
    }
    if (!worker_.running()) {
        return;
    }
    post_recv();
    if (received_ == size) {
        echo_done_ = true;
        complete_if_done(now);
    }
}

void LoadConn::fail(const char* what, int res) noexcept {
    if (!worker_.running()) {
        return;  // teardown after the measured interval is not an error
    }
    state_ = State::Dead;
    worker_.on_lost();
    worker_.count_error(
        id_, res < 0 ? absl::StrFormat("%s: %s", what, errno_text(res)) : std::string(what));
    ::shutdown(fd_, SHUT_RDWR);
}

void sleep_until(uint64_t mono_ns) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(mono_ns / 1'000'000'000ULL);
    ts.tv_nsec = static_cast<long>(mono_ns % 1'000'000'000ULL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

uint64_t to_ns(absl::Duration d) { return static_cast<uint64_t>(absl::ToInt64Nanoseconds(d)); }

}  // namespace

int run_load(const RunOptions& options_in) {
    RunOptions options = options_in;
    options.threads = std::clamp<int>(options.threads, 1, static_cast<int>(options.connections));
    raise_fd_limit(uint64_t{options.connections} + 256);

    Phase phase;
    std::vector<std::unique_ptr<LoadWorker>> workers;
    const auto nthreads = static_cast<uint32_t>(options.threads);
    for (uint32_t t = 0; t < nthreads; ++t) {
        std::vector<uint32_t> ids;
        for (uint32_t i = t; i < options.connections; i += nthreads) {
            ids.push_back(i);
        }
        const uint64_t share = options.count / nthreads + (t < options.count % nthreads ? 1 : 0);
        workers.push_back(std::make_unique<LoadWorker>(options, phase, std::move(ids),
                                                       options.count == 0 ? 0 : share));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) {
        threads.emplace_back([worker = w.get()] { worker->run(); });
    }
    while (phase.ready.load() < nthreads) {
        sleep_until(base::mono_ns() + 1'000'000);
    }
    size_t live = 0;
    for (auto& w : workers) {
        live += w->live();
    }
    if (live == 0) {
        phase.abort.store(true);
        for (auto& t : threads) {
            t.join();
        }
        fprintf(stderr, "ferry-load: no connection to %s could be established\n",
                format_endpoint(options.target).c_str());
        return 1;
    }

    const uint64_t start = base::mono_ns();
    phase.measure_start_ns = start + to_ns(options.warmup);
    // With --count the interval ends when the count is reached; --timeout bounds it.
    phase.end_ns = phase.measure_start_ns +
                   (options.count == 0 ? to_ns(options.duration) : to_ns(options.timeout));
    phase.go.store(true, std::memory_order_release);

    RunReport report;
    report.watched_proxies = !options.proxy_pids.empty();
    sleep_until(phase.measure_start_ns);
    report.before = sample_proc(options.proxy_pids);
    if (options.count == 0) {
        sleep_until(phase.end_ns);
        report.after = sample_proc(options.proxy_pids);
    }
    for (auto& t : threads) {
        t.join();
    }
    uint64_t end = phase.end_ns;
    if (options.count != 0) {
        report.after = sample_proc(options.proxy_pids);
        end = 0;
        for (auto& w : workers) {
            end = std::max(end, w->finish_ns());
        }
    }

    report.label = options.label;
    report.mode = std::string(run_mode_name(options.mode));
    report.connections = options.connections;
    report.size = options.size;
    report.duration_s =
        static_cast<double>(end > phase.measure_start_ns ? end - phase.measure_start_ns : 0) / 1e9;
    for (auto& w : workers) {
        report.latency_ns.merge(w->latency());
        report.messages += w->messages();
        report.bytes += w->bytes();
        report.errors += w->errors();
    }
    if (options.mode == RunMode::Bulk) {
        report.messages = report.bytes / options.size;
    }
    if (report.after.missing_pids > 0) {
        fprintf(stderr, "ferry-load: %d watched process(es) exited during the run\n",
                report.after.missing_pids);
    }
    if (options.count != 0 && report.messages < options.count) {
        fprintf(stderr, "ferry-load: stopped after %llu of %llu messages\n",
                static_cast<unsigned long long>(report.messages),
                static_cast<unsigned long long>(options.count));
    }
    print_run_report(report, options.json);
    if (options.mode == RunMode::WsVerify) {
        // Every message was compared as it arrived; any error (a mismatch among them) fails.
        const bool all = options.count == 0 || report.messages >= options.count;
        return report.messages > 0 && report.errors == 0 && all ? 0 : 1;
    }
    return report.messages > 0 ? 0 : 1;
}

}  // namespace ferry::bench
