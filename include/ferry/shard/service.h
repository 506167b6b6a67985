// Service: something a shard runs on its ring (a role's listeners and tunnels, the admin port).
// The shard calls these on its own thread, between CQE batches.
#pragma once

#include <cstdint>

namespace ferry::shard {

class Service {
  public:
    virtual ~Service() = default;
    // Opens listeners and starts connecting. A failure here is logged and stops the process.
    [[nodiscard]] virtual bool start() noexcept = 0;
    // SIGTERM: stop accepting, let streams finish, close tunnels when empty.
    virtual void drain() noexcept = 0;
    // True once nothing is left in flight, so the shard can exit after a drain.
    [[nodiscard]] virtual bool idle() const noexcept = 0;
    // Periodic work (~every 100 ms): pings, reconnect timers, idle timeouts.
    virtual void tick(uint64_t now_ns) noexcept = 0;
    // The drain deadline passed: reset every stream still open (peers see an abort, not a clean
    // end) and log how many. The shard exits right after.
    virtual void stop() noexcept {}
    // End of each loop iteration: free what closed during it.
    virtual void housekeeping() noexcept {}
    // SIGHUP: re-read what can change without a restart (certificates), and log the outcome.
    virtual void reload() noexcept {}
    // Logs its connections and streams (SIGUSR1), for diagnosing a stuck transfer.
    virtual void dump() const noexcept {}
};

}  // namespace ferry::shard
