#include "ferry/role/tunnel_placement.h"

#include <unistd.h>

namespace ferry::role {

bool parse_tunnel_placement(std::string_view text, TunnelPlacementPolicy* out) {
    if (text == "balanced") {
        *out = TunnelPlacementPolicy::Balanced;
    } else if (text == "kernel") {
        *out = TunnelPlacementPolicy::Kernel;
    } else if (text == "rotate") {
        *out = TunnelPlacementPolicy::Rotate;
    } else {
        return false;
    }
    return true;
}

const char* tunnel_placement_name(TunnelPlacementPolicy p) noexcept {
    switch (p) {
        case TunnelPlacementPolicy::Balanced:
            return "balanced";
        case TunnelPlacementPolicy::Kernel:
            return "kernel";
        case TunnelPlacementPolicy::Rotate:
            return "rotate";
    }
    return "?";
}

TunnelPlacement::TunnelPlacement(size_t shards, TunnelPlacementPolicy policy) : policy_(policy) {
    for (size_t i = 0; i < shards; ++i) {
        slots_.push_back(std::make_unique<Slot>());
    }
}

void TunnelPlacement::attach(size_t shard, io::Ring* ring, HandoffReceiver* receiver) noexcept {
    Slot& s = *slots_[shard];
    s.receiver = receiver;
    s.inbox.attach(ring, &s);
}

void TunnelPlacement::detach(size_t shard) noexcept {
    Slot& s = *slots_[shard];
    s.receiver = nullptr;
    for (int fd : s.inbox.detach()) {
        ::close(fd);
        s.connections.fetch_sub(1);
    }
}

void TunnelPlacement::Slot::complete(int32_t res, uint32_t) noexcept {
    if (receiver == nullptr) {
        return;  // detached: its ring is going away, and detach() closed what was queued
    }
    if (res == sizeof(uint64_t)) {
        inbox.rearm();  // the eventfd doorbell rang (no MSG_RING): listen again
    }
    taken.clear();
    inbox.take(&taken);
    for (int fd : taken) {
        receiver->on_handed_off(fd);
    }
}

size_t TunnelPlacement::place(size_t accepted_on) noexcept {
    size_t to = accepted_on;
    const size_t n = slots_.size();
    if (n > 1) {
        switch (policy_) {
            case TunnelPlacementPolicy::Kernel:
                break;
            case TunnelPlacementPolicy::Rotate:
                to = (accepted_on + 1) % n;
                break;
            case TunnelPlacementPolicy::Balanced: {
                // Two shards accepting at once may both pick the same emptiest one: the split is
                // then off by one until the next connection, never worse.
                int64_t best = connections(accepted_on);
                for (size_t i = 0; i < n; ++i) {
                    if (const int64_t c = connections(i); c < best) {
                        best = c;
                        to = i;
                    }
                }
                break;
            }
        }
    }
    slots_[to]->connections.fetch_add(1);
    return to;
}

bool TunnelPlacement::hand_off(size_t from, size_t to, int fd, io::Ring* ring) noexcept {
    if (slots_[to]->inbox.post(fd, ring)) {
        return true;
    }
    release(to);
    count(from);
    return false;
}

}  // namespace ferry::role
