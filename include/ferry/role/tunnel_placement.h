// TunnelPlacement: which terminator shard serves an accepted tunnel connection.
//
// SO_REUSEPORT hashes each connection's 4-tuple to a listening shard, so a handful of tunnel
// connections (one per initiator shard: the common DaemonSet case) often land on the same shard
// while the others idle. Each shard still accepts on its own reuseport socket, but before any
// byte is read the connection goes to the shard with the fewest tunnel connections: a plain
// socket carries no state yet, so the receiving shard adopts the fd as if it had accepted it.
// The fd travels in that shard's mailbox (MSG_RING wake-up).
//
// One per process, shared by every terminator shard (made before they start). Counts are
// atomics; everything else of a shard stays on its thread. docs/shard-balance.md has the
// reasoning and the failure modes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "ferry/io/op.h"
#include "ferry/io/ring.h"
#include "ferry/shard/mailbox.h"

namespace ferry::role {

enum class TunnelPlacementPolicy : uint8_t {
    Balanced,  // the shard with the fewest tunnel connections; the accepting one on a tie
    Kernel,    // wherever SO_REUSEPORT put it (no hand-off)
    Rotate,    // always the next shard: exercises the hand-off path (tests, diagnosis)
};

[[nodiscard]] bool parse_tunnel_placement(std::string_view text, TunnelPlacementPolicy* out);
[[nodiscard]] const char* tunnel_placement_name(TunnelPlacementPolicy p) noexcept;

// The shard side of hand-offs: gets each connection handed to its shard, on its thread.
class HandoffReceiver {
  public:
    virtual void on_handed_off(int fd) noexcept = 0;

  protected:
    ~HandoffReceiver() = default;
};

class TunnelPlacement final {
  public:
    TunnelPlacement(size_t shards, TunnelPlacementPolicy policy);
    TunnelPlacement(const TunnelPlacement&) = delete;
    TunnelPlacement& operator=(const TunnelPlacement&) = delete;

    [[nodiscard]] size_t shard_count() const noexcept { return slots_.size(); }
    [[nodiscard]] TunnelPlacementPolicy policy() const noexcept { return policy_; }

    // Owner shard `shard`, on its thread: connections handed to it go to `receiver` (each
    // already counted there), on this thread, from completions on `ring`.
    void attach(size_t shard, io::Ring* ring, HandoffReceiver* receiver) noexcept;
    // Owner shard, at teardown: later hand-offs to it fail, and the fds handed to it but never
    // taken are closed and uncounted. The wake-up Op lives here, not in the receiver, so a
    // completion that arrives after the receiver is gone finds no one and does nothing.
    void detach(size_t shard) noexcept;

    // A connection was accepted on `accepted_on`: returns the shard that serves it, counted
    // there already.
    [[nodiscard]] size_t place(size_t accepted_on) noexcept;
    // Sends `fd` to shard `to` (counted there by place()). False when that shard no longer takes
    // connections: the count moved back to `from`, which keeps the fd.
    [[nodiscard]] bool hand_off(size_t from, size_t to, int fd, io::Ring* ring) noexcept;
    // Counts a connection adopted on `shard` without place() (tests hand in socket pairs).
    void count(size_t shard) noexcept { slots_[shard]->connections.fetch_add(1); }
    // A connection counted on `shard` closed.
    void release(size_t shard) noexcept { slots_[shard]->connections.fetch_sub(1); }
    // Tunnel connections served by `shard`, handed-over ones in flight included.
    [[nodiscard]] int64_t connections(size_t shard) const noexcept {
        return slots_[shard]->connections.load(std::memory_order_relaxed);
    }

  private:
    struct Slot final : io::Op {
        void complete(int32_t res, uint32_t flags) noexcept override;

        std::atomic<int64_t> connections{0};
        shard::MailboxOf<int> inbox;
        HandoffReceiver* receiver = nullptr;  // owner thread only
        std::vector<int> taken;               // owner thread only
    };

    TunnelPlacementPolicy policy_;
    std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace ferry::role
