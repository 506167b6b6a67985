// What every object of a shard's data path reaches for: its ring, buffers, counters, tuning.
// One Context per shard, owned by the Shard; everything holding a reference lives on that shard.
#pragma once

#include <cstdint>

#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/io/buf_ring.h"
#include "ferry/io/ring.h"
#include "ferry/tunnel/metrics.h"

namespace ferry::tunnel {

class Session;

// Knobs of the data path, from the CLI flags (see config::Options).
struct Tuning {
    uint32_t max_frame_size = 16384;
    uint32_t stream_window = 256 * 1024;
    uint32_t connection_window = 16 * 1024 * 1024;
    uint32_t max_streams = 1024;
    uint32_t zerocopy_threshold = 64 * 1024;  // batch bytes at or above which SEND_ZC is used
    uint32_t batch_bytes = 512 * 1024;        // most bytes one tunnel write carries
    uint64_t ping_interval_ns = 10'000'000'000;
    uint64_t ping_timeout_ns = 30'000'000'000;
    uint64_t connect_timeout_ns = 5'000'000'000;
};

// Something that stopped for lack of buffers (a multishot recv whose ring ran dry, a TLS link with
// records left to seal or to gather), re-armed at the end of the loop iteration once buffers may
// have come back; it parks itself again if they have not (intrusive, so parking costs nothing).
class Rearmable {
  public:
    virtual void rearm() noexcept = 0;
    Rearmable* next_starved = nullptr;
    bool starved = false;

  protected:
    ~Rearmable() = default;
};

// An object freed at the end of the loop iteration rather than inside a callback: a CQE handler
// may end an object's life while frames further up the stack still touch it.
class Retirable {
  public:
    virtual void retire() noexcept = 0;
    Retirable* next_retired = nullptr;

  protected:
    ~Retirable() = default;
};

// Two pools per shard, so the tunnel can always make progress: local sockets' data waiting for
// tunnel credit may pin every buffer of `pool`, but the credit itself (WINDOW frames) arrives in
// `tunnel_pool`, which only tunnel connections use (their receives, control frames and TLS
// records). With one shared pool that wait is a deadlock.
struct Context {
    io::Ring& ring;
    buf::Pool& pool;  // client/upstream socket data
    buf::NodePool& nodes;
    io::BufRing& bufs;  // provided buffers of `pool`
    buf::Pool& tunnel_pool;
    io::BufRing& tunnel_bufs;
    Metrics& metrics;
    const Tuning& tuning;
    Rearmable* starved_head = nullptr;
    // Monotonic time of the current loop iteration (one clock read per batch of CQEs).
    uint64_t now_ns = 0;
    Retirable* retired_head = nullptr;
    // Sessions with output queued during this iteration (Session::mark_dirty).
    Session* dirty_head = nullptr;

    void defer_retire(Retirable* r) noexcept {
        r->next_retired = retired_head;
        retired_head = r;
    }

    // A buffer for the tunnel's own output (control frames, TLS records and record reassembly).
    // The local pool is the fallback: when many streams pin tunnel buffers at once, borrowing
    // beats dropping the connection; the receive ring never borrows, so the credit path stays
    // independent of local backlog.
    [[nodiscard]] buf::Chunk alloc_tunnel_chunk() noexcept {
        buf::Chunk c = tunnel_pool.try_alloc();
        if (c.empty()) {
            c = pool.try_alloc();
        }
        return c;
    }

    void park_starved(Rearmable* r) noexcept {
        if (!r->starved) {
            r->starved = true;
            r->next_starved = starved_head;
            starved_head = r;
        }
    }
    void unpark_starved(Rearmable* r) noexcept {
        if (!r->starved) {
            return;
        }
        for (Rearmable** p = &starved_head; *p != nullptr; p = &(*p)->next_starved) {
            if (*p == r) {
                *p = r->next_starved;
                break;
            }
        }
        r->starved = false;
        r->next_starved = nullptr;
    }
};

// The end of every loop iteration, in this order: flush the sessions that queued frames (one
// gathered write each, however many CQEs produced them), lend freed buffers back to the kernel,
// re-arm reads that starved, then free what closed during the iteration.
void end_of_iteration(Context& ctx) noexcept;

}  // namespace ferry::tunnel
