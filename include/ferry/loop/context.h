// loop::Context: what every object of a shard's event loop reaches for — the ring, the two buffer
// pools with their provided-buffer rings, the per-iteration lists (output to flush, buffer waits,
// objects to free) and the loop's clock. One per shard, owned through loop::ContextOwner; every
// object holding a reference lives on that shard.
#pragma once

#include <cstdint>

#include "ferry/base/counter.h"
#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/io/buf_ring.h"
#include "ferry/io/io_context.h"

namespace ferry::loop {

struct Context;
void end_of_iteration(Context& ctx) noexcept;

// Counters of the loop itself (the admin endpoint renders them per shard).
struct Metrics {
    io::SocketMetrics socket;
    base::Gauge buffers_in_use;         // local pool buffers held (lent to the kernel or data)
    base::Gauge tunnel_buffers_in_use;  // tunnel pool buffers held
    // The shard thread's kernel id, so the admin endpoint can read its CPU time from /proc at
    // scrape time (nothing on the data path). Its rate is how loaded the shard is, io_uring
    // submissions included; unequal rates show an imbalance.
    base::Gauge thread_id;
};

// Output queued during an iteration and written once at its end (a tunnel session, an HTTP/2
// connection): however many CQEs produced frames, one gathered write carries them. Intrusive.
class Flushable {
  public:
    // Writes what is queued. May queue more work, including marking itself or others again.
    virtual void flush() noexcept = 0;

  protected:
    Flushable() = default;
    // Virtual only because the list that links it is a friend (-Wnon-virtual-dtor).
    virtual ~Flushable() = default;

  private:
    friend struct Context;
    friend void end_of_iteration(Context& ctx) noexcept;
    Flushable* next_flush_ = nullptr;
    bool flush_queued_ = false;
};

// An object freed at the end of the loop iteration rather than inside a callback: a CQE handler
// may end an object's life while frames further up the stack still touch it.
class Retirable {
  public:
    virtual void retire() noexcept = 0;

  protected:
    Retirable() = default;
    // Virtual only because the list that links it is a friend (-Wnon-virtual-dtor).
    virtual ~Retirable() = default;

  private:
    friend struct Context;
    friend void end_of_iteration(Context& ctx) noexcept;
    Retirable* next_retired_ = nullptr;
};

// Two pools per shard, so the tunnel can always make progress: local sockets' data waiting for
// tunnel credit may pin every buffer of `local_pool`, but the credit itself (tunnel WINDOW frames)
// arrives in `tunnel_pool`, which only tunnel connections use (their receives, control frames and
// TLS records). With one shared pool that wait is a deadlock.
struct Context final : io::IoContext {
    Context(io::Ring& r, buf::Pool& local, io::BufRing& local_ring, buf::Pool& tunnel,
            io::BufRing& tunnel_ring, buf::NodePool& node_pool, Metrics& m,
            const io::SocketTuning& tuning) noexcept
        : io::IoContext(r, waits_, m.socket, tuning),
          local_pool(local),
          local_bufs(local_ring),
          tunnel_pool(tunnel),
          tunnel_bufs(tunnel_ring),
          nodes(node_pool),
          metrics(m) {}
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    buf::Pool& local_pool;     // client and upstream socket data
    io::BufRing& local_bufs;   // provided buffers of `local_pool`
    buf::Pool& tunnel_pool;    // tunnel receives, control frames, TLS records
    io::BufRing& tunnel_bufs;  // provided buffers of `tunnel_pool`
    buf::NodePool& nodes;      // ChunkQueue nodes of every queue on this shard
    Metrics& metrics;
    // Monotonic time of the current loop iteration (one clock read per batch of CQEs).
    uint64_t now_ns = 0;

    // Queues `f` for the flush at the end of this iteration (idempotent).
    void queue_flush(Flushable* f) noexcept {
        if (!f->flush_queued_) {
            f->flush_queued_ = true;
            f->next_flush_ = flush_head_;
            flush_head_ = f;
        }
    }
    // Frees `r` at the end of this iteration.
    void defer_retire(Retirable* r) noexcept {
        r->next_retired_ = retired_head_;
        retired_head_ = r;
    }

    // A buffer for the tunnel's own output (control frames, TLS records and record reassembly).
    // The local pool is the fallback: when many streams pin tunnel buffers at once, borrowing
    // beats dropping the connection; the receive ring never borrows, so the credit path stays
    // independent of local backlog.
    [[nodiscard]] buf::Chunk alloc_tunnel_chunk() noexcept {
        buf::Chunk c = tunnel_pool.try_alloc();
        if (c.empty()) {
            c = local_pool.try_alloc();
        }
        return c;
    }

    // True while some output waits for the end-of-iteration flush.
    [[nodiscard]] bool flush_pending() const noexcept { return flush_head_ != nullptr; }
    // Forgets queued flushes, waits and retirements whose owners are gone (shard teardown).
    void forget_pending() noexcept;

  private:
    friend void end_of_iteration(Context& ctx) noexcept;
    io::BufferWaitList waits_;
    Flushable* flush_head_ = nullptr;
    Retirable* retired_head_ = nullptr;
};

// The end of every loop iteration, in this order: flush what queued output (one gathered write
// each, however many CQEs produced it), lend freed buffers back to the kernel, retry what waited
// for buffers, then free what closed during the iteration.
void end_of_iteration(Context& ctx) noexcept;

}  // namespace ferry::loop
