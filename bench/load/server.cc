#include "server.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "byte_stream.h"
#include "ferry/base/check.h"
#include "grpc_echo.h"
#include "net.h"
#include "ring.h"
#include "ws_echo.h"

namespace ferry::bench {
namespace {

constexpr size_t kEchoBufferSize = 64 << 10;
// Source connections send windows of this size from a shared read-only pattern that is twice
// as long, so any window starting at (offset % kSourceWindow) is contiguous.
constexpr size_t kSourceWindow = 256 << 10;
constexpr uint64_t kLoopTimeoutNs = 100'000'000;  // how quickly a stop request is noticed

class ServerWorker;

// One accepted connection. Echo: recv -> send all -> recv (one buffer, so the echo preserves
// order and never holds more than one read). Sink: recv forever. Source: send windows of the
// pattern forever, with a recv posted only to notice the client leaving. WsEcho: recv -> the
// WsEchoSession answers (101, echoed messages, Pong, Close) -> send all -> recv, the same
// one-read-at-a-time cycle; after a Close (or a refused upgrade) the answer is sent, then the
// connection closed.
// Teardown: shutdown(2) wakes the pending ops; the fd is closed and the object freed when the
// last one has completed (inflight_ == 0), so no CQE can reach a freed connection.
class ServerConn final {
  public:
    ServerConn(ServerWorker& worker, int fd, size_t slot) noexcept;
    ~ServerConn();
    ServerConn(const ServerConn&) = delete;
    ServerConn& operator=(const ServerConn&) = delete;

    void start() noexcept;

  private:
    void on_recv(int res, uint32_t flags) noexcept;
    void on_send(int res, uint32_t flags) noexcept;
    void on_shutdown(int res, uint32_t flags) noexcept;

    void post_recv() noexcept;
    void post_send() noexcept;
    void close() noexcept;
    void release_if_idle() noexcept;

    ServerWorker& worker_;
    int fd_;
    size_t slot_;
    int inflight_ = 0;
    bool closing_ = false;
    std::unique_ptr<std::byte[]> buf_;
    std::unique_ptr<EchoSession> ws_;  // ws-echo and grpc-echo only
    bool close_after_send_ = false;    // ws-echo, grpc-echo: the session ended
    size_t len_ = 0;                   // echo: bytes held in buf_
    size_t sent_ = 0;                  // echo: bytes of buf_ already sent back
    uint64_t source_pos_ = 0;
    MemberOp<ServerConn, &ServerConn::on_recv> recv_op_{this};
    MemberOp<ServerConn, &ServerConn::on_send> send_op_{this};
    MemberOp<ServerConn, &ServerConn::on_shutdown> shutdown_op_{this};
};

class ServerWorker final {
  public:
    ServerWorker(ServeMode mode, int listen_fd, const std::byte* pattern,
                 const std::atomic<bool>& stop) noexcept
        : mode_(mode), listen_fd_(listen_fd), pattern_(pattern), stop_(stop) {}

    // Runs on the worker's own thread (the ring is single-issuer), then serves until stopped.
    void run(std::latch& started, absl::Status* status) noexcept {
        *status = ring_.init(1024);
        started.count_down();
        if (!status->ok()) {
            return;
        }
        arm_accept();
        while (!stop_.load(std::memory_order_relaxed)) {
            ring_.run_once(kLoopTimeoutNs);
        }
    }

    Ring& ring() noexcept { return ring_; }
    ServeMode mode() const noexcept { return mode_; }
    const std::byte* pattern() const noexcept { return pattern_; }
    std::byte* scratch() noexcept { return scratch_.get(); }

    void release(size_t slot) noexcept {
        conns_[slot].reset();
        free_.push_back(slot);
    }

  private:
    void arm_accept() noexcept {
        io_uring_prep_multishot_accept(ring_.prep(&accept_op_), listen_fd_, nullptr, nullptr,
                                       SOCK_CLOEXEC);
    }

    void on_accept(int res, uint32_t flags) noexcept {
        if (res >= 0) {
            set_nodelay(res);
            size_t slot = conns_.size();
            if (free_.empty()) {
                conns_.emplace_back();
            } else {
                slot = free_.back();
                free_.pop_back();
            }
            conns_[slot] = std::make_unique<ServerConn>(*this, res, slot);
            conns_[slot]->start();
        } else if (res != -ECANCELED) {
            fprintf(stderr, "accept: %s\n", errno_text(res).c_str());
        }
        if ((flags & IORING_CQE_F_MORE) == 0) {
            arm_accept();
        }
    }

    ServeMode mode_;
    int listen_fd_;
    const std::byte* pattern_;
    const std::atomic<bool>& stop_;
    std::vector<std::unique_ptr<ServerConn>> conns_;
    std::vector<size_t> free_;
    // Where source connections read (and drop) whatever the client sends; shared because
    // nobody looks at it.
    std::unique_ptr<std::byte[]> scratch_ = std::make_unique_for_overwrite<std::byte[]>(4096);
    MemberOp<ServerWorker, &ServerWorker::on_accept> accept_op_{this};
    // Last, so it is destroyed first: tearing the ring down cancels the ops still in flight
    // before the connections and their buffers go.
    Ring ring_;
};

ServerConn::ServerConn(ServerWorker& worker, int fd, size_t slot) noexcept
    : worker_(worker), fd_(fd), slot_(slot) {
    if (worker_.mode() != ServeMode::Source) {
        // Not zeroed: idle connections then cost only the pages they touch.
        buf_ = std::make_unique_for_overwrite<std::byte[]>(kEchoBufferSize);
    }
    if (worker_.mode() == ServeMode::WsEcho) {
        ws_ = std::make_unique<WsEchoSession>();
    } else if (worker_.mode() == ServeMode::GrpcEcho) {
        ws_ = std::make_unique<GrpcEchoSession>();
    }
}

ServerConn::~ServerConn() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void ServerConn::start() noexcept {
    post_recv();
    if (worker_.mode() == ServeMode::Source) {
        post_send();
    }
}

void ServerConn::post_recv() noexcept {
    ++inflight_;
    if (worker_.mode() == ServeMode::Source) {
        io_uring_prep_recv(worker_.ring().prep(&recv_op_), fd_, worker_.scratch(), 4096, 0);
    } else {
        io_uring_prep_recv(worker_.ring().prep(&recv_op_), fd_, buf_.get(), kEchoBufferSize, 0);
    }
}

void ServerConn::post_send() noexcept {
    ++inflight_;
    if (worker_.mode() == ServeMode::Source) {
        const std::byte* from = worker_.pattern() + source_pos_ % kSourceWindow;
        io_uring_prep_send(worker_.ring().prep(&send_op_), fd_, from, kSourceWindow, MSG_NOSIGNAL);
    } else if (ws_ != nullptr) {
        const std::span<const std::byte> out = ws_->output();
        io_uring_prep_send(worker_.ring().prep(&send_op_), fd_, out.data() + sent_,
                           out.size() - sent_, MSG_NOSIGNAL);
    } else {
        io_uring_prep_send(worker_.ring().prep(&send_op_), fd_, buf_.get() + sent_, len_ - sent_,
                           MSG_NOSIGNAL);
    }
}

void ServerConn::on_recv(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    if (closing_) {
        release_if_idle();
        return;
    }
    if (res < 0) {
        close();
        return;
    }
    if (res == 0) {
        if (worker_.mode() == ServeMode::Echo) {
            // The client half-closed: everything it sent has been echoed (one buffer, recv only
            // after the send finished), so pass the EOF on and close once it is sent.
            ++inflight_;
            io_uring_prep_shutdown(worker_.ring().prep(&shutdown_op_), fd_, SHUT_WR);
        } else {
            close();
        }
        return;
    }
    switch (worker_.mode()) {
        case ServeMode::Echo:
            len_ = static_cast<size_t>(res);
            sent_ = 0;
            post_send();
            break;
        case ServeMode::WsEcho:
        case ServeMode::GrpcEcho:
            close_after_send_ =
                ws_->feed({buf_.get(), static_cast<size_t>(res)}) == EchoSession::Next::Close;
            sent_ = 0;
            if (!ws_->output().empty()) {
                post_send();
            } else if (close_after_send_) {
                close();
            } else {
                post_recv();
            }
            break;
        case ServeMode::Sink:
        case ServeMode::Source:
            post_recv();
            break;
    }
}

void ServerConn::on_send(int res, uint32_t /*flags*/) noexcept {
    --inflight_;
    if (closing_) {
        release_if_idle();
        return;
    }
    if (res <= 0) {
        close();
        return;
    }
    if (worker_.mode() == ServeMode::Source) {
        source_pos_ += static_cast<uint64_t>(res);
        post_send();
        return;
    }
    sent_ += static_cast<size_t>(res);
    if (ws_ != nullptr) {
        if (sent_ < ws_->output().size()) {
            post_send();
        } else if (close_after_send_) {
            close();
        } else {
            ws_->clear_output();
            post_recv();
        }
        return;
    }
    if (sent_ < len_) {
        post_send();
    } else {
        post_recv();
    }
}

void ServerConn::on_shutdown(int /*res*/, uint32_t /*flags*/) noexcept {
    --inflight_;
    close();
}

void ServerConn::close() noexcept {
    if (!closing_) {
        closing_ = true;
        ::shutdown(fd_, SHUT_RDWR);
    }
    release_if_idle();
}

void ServerConn::release_if_idle() noexcept {
    if (inflight_ == 0) {
        worker_.release(slot_);  // destroys *this
    }
}

std::atomic<bool> g_stop{false};

}  // namespace

int run_serve(const ServeOptions& options) {
    raise_fd_limit(1 << 20);

    std::vector<int> listeners;
    sockaddr_in addr = options.listen;
    for (int i = 0; i < options.threads; ++i) {
        absl::StatusOr<int> fd = listen_tcp(addr);
        if (!fd.ok()) {
            fprintf(stderr, "ferry-load serve: %s\n", fd.status().ToString().c_str());
            return 1;
        }
        if (i == 0) {
            // With port 0 the kernel picked one; the other threads join that port.
            absl::StatusOr<sockaddr_in> bound = local_endpoint(*fd);
            FERRY_CHECK(bound.ok());
            addr = *bound;
        }
        listeners.push_back(*fd);
    }

    auto pattern = std::make_unique_for_overwrite<std::byte[]>(2 * kSourceWindow);
    ByteStream(0, 0).fill(0, std::span<std::byte>(pattern.get(), kSourceWindow));
    std::memcpy(pattern.get() + kSourceWindow, pattern.get(), kSourceWindow);

    std::vector<std::unique_ptr<ServerWorker>> workers;
    std::vector<absl::Status> statuses(listeners.size());
    std::latch started(static_cast<std::ptrdiff_t>(listeners.size()));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < listeners.size(); ++i) {
        workers.push_back(
            std::make_unique<ServerWorker>(options.mode, listeners[i], pattern.get(), g_stop));
        threads.emplace_back([worker = workers.back().get(), &started, status = &statuses[i]] {
            worker->run(started, status);
        });
    }
    started.wait();
    bool ok = true;
    for (const absl::Status& st : statuses) {
        if (!st.ok()) {
            fprintf(stderr, "ferry-load serve: %s\n", st.ToString().c_str());
            ok = false;
        }
    }
    if (ok) {
        printf("listening on %s\n", format_endpoint(addr).c_str());
        fflush(stdout);
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGTERM);
        int sig = 0;
        sigwait(&stop_signals, &sig);
    }
    g_stop.store(true);
    for (auto& t : threads) {
        t.join();
    }
    for (int fd : listeners) {
        ::close(fd);
    }
    return ok ? 0 : 1;
}

}  // namespace ferry::bench
