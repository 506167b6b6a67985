#include "ferry/shard/runtime.h"

#include <signal.h>

#include <ctime>

#include "ferry/base/clock.h"
#include "ferry/base/log.h"

namespace ferry::shard {

Runtime::Runtime(RuntimeOptions options, ServiceFactory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {}

Runtime::~Runtime() {
    for (auto& s : shards_) {
        s->post(Message{MessageType::Stop}, control_ring_.get());
    }
    shards_.clear();
}

absl::Status Runtime::start() {
    // Signals are taken by the main thread only (sigtimedwait); shards inherit the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);

    io::RingOptions control;
    control.entries = 16;
    absl::StatusOr<std::unique_ptr<io::Ring>> ring = io::Ring::create(control);
    if (!ring.ok()) {
        return ring.status();
    }
    control_ring_ = std::move(*ring);
    for (int i = 0; i < options_.shards; ++i) {
        metrics_.push_back(std::make_unique<loop::Metrics>());
        ShardOptions so = options_.shard;
        so.cpu = options_.cpus.empty()
                     ? -1
                     : options_.cpus[static_cast<size_t>(i) % options_.cpus.size()];
        shards_.push_back(std::make_unique<Shard>(i, so, factory_, metrics_.back().get()));
    }
    for (auto& s : shards_) {
        s->start();
    }
    for (auto& s : shards_) {
        while (s->status() == Shard::Status::Starting) {
            timespec ts{0, 1'000'000};
            nanosleep(&ts, nullptr);
        }
        if (s->status() != Shard::Status::Running) {
            return absl::UnavailableError("a shard failed to start (see the log above)");
        }
    }
    return absl::OkStatus();
}

void Runtime::request_drain() noexcept { post_all(MessageType::Drain); }

bool Runtime::wait_exited(uint64_t deadline_ns) {
    for (;;) {
        bool all = true;
        for (auto& s : shards_) {
            all = all && s->status() == Shard::Status::Exited;
        }
        if (all) {
            return true;
        }
        if (base::mono_ns() >= deadline_ns) {
            return false;
        }
        timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
    }
}

void Runtime::post_all(MessageType type) noexcept {
    for (auto& s : shards_) {
        s->post(Message{type}, control_ring_.get());
    }
    // Reap the MSG_RING completions of our own ring so it never fills.
    io_uring_submit_and_wait(control_ring_->raw(), 0);
    control_ring_->dispatch();
}

Runtime::Outcome Runtime::run_until_signal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    for (;;) {
        timespec ts{1, 0};
        int sig = sigtimedwait(&set, nullptr, &ts);
        if (sig == SIGUSR1) {
            post_all(MessageType::Dump);
            continue;
        }
        if (sig == SIGHUP) {
            // Reload, never exit: tunnels and streams stay up.
            FERRY_LOG(Info, "SIGHUP: reloading certificates and the log level");
            if (options_.on_reload) {
                options_.on_reload();
            }
            post_all(MessageType::Reload);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            FERRY_LOG(Info, "%s: draining (timeout %llu ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                      static_cast<unsigned long long>(options_.drain_timeout_ns / 1'000'000));
            break;
        }
        bool any_exited = false;
        for (auto& s : shards_) {
            any_exited = any_exited || s->status() != Shard::Status::Running;
        }
        if (any_exited) {
            FERRY_LOG(Error, "a shard stopped unexpectedly");
            return Outcome::ShardFailed;
        }
    }
    request_drain();
    bool drained = wait_exited(base::mono_ns() + options_.drain_timeout_ns);
    if (!drained) {
        FERRY_LOG(Warn, "drain deadline passed: resetting what is still open");
        post_all(MessageType::Stop);
    }
    for (auto& s : shards_) {
        s->join();
    }
    return drained ? Outcome::Drained : Outcome::DrainDeadline;
}

}  // namespace ferry::shard
