// Runtime: starts N shards, relays SIGTERM/SIGINT to them as a drain, and exposes each shard's
// metrics to the admin endpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "ferry/io/ring.h"
#include "ferry/loop/context.h"
#include "ferry/shard/shard.h"

namespace ferry::shard {

struct RuntimeOptions {
    int shards = 1;
    // SIGHUP, on the main thread, before the shards are told to reload (re-reads the log level).
    std::function<void()> on_reload;
    std::vector<int> cpus;  // one per shard, or empty for no pinning
    ShardOptions shard;
    uint64_t drain_timeout_ns = 10'000'000'000;
};

class Runtime final {
  public:
    Runtime(RuntimeOptions options, ServiceFactory factory);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Starts every shard and waits until all run, or returns the first failure.
    [[nodiscard]] absl::Status start();
    enum class Outcome : uint8_t {
        Drained,        // every shard finished its streams in time
        DrainDeadline,  // the drain timed out: what was left was reset
        ShardFailed,    // a shard stopped on its own
    };
    // Blocks the calling (main) thread until SIGTERM/SIGINT, then drains: shards stop accepting,
    // finish their streams and exit; after --drain-timeout the rest is reset and they stop.
    // SIGHUP reloads (on_reload, then every shard's certificates); SIGUSR1 dumps state.
    [[nodiscard]] Outcome run_until_signal();
    // Drain without a signal (tests, auto-exit).
    void request_drain() noexcept;

    [[nodiscard]] size_t shard_count() const noexcept { return shards_.size(); }
    // The loop's own counters of shard `shard` (services keep theirs).
    [[nodiscard]] const loop::Metrics& metrics(size_t shard) const noexcept {
        return *metrics_[shard];
    }

  private:
    [[nodiscard]] bool wait_exited(uint64_t deadline_ns);
    // Posts `type` to every shard and reaps the control ring.
    void post_all(MessageType type) noexcept;

    RuntimeOptions options_;
    ServiceFactory factory_;
    std::vector<std::unique_ptr<loop::Metrics>> metrics_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::unique_ptr<io::Ring> control_ring_;  // the main thread's, for MSG_RING posts
};

}  // namespace ferry::shard
