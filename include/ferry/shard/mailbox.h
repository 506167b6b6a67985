// Mailbox: how anything outside a shard talks to it — control messages, never data.
//
// Multi-producer, single-consumer. The producer appends under a mutex (the only lock in ferry,
// off the data path) and wakes the shard with an io_uring MSG_RING CQE posted into the shard's
// ring from the producer's ring; where the kernel lacks MSG_RING, an eventfd read on the shard's
// ring is the doorbell instead.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "ferry/io/op.h"
#include "ferry/io/ring.h"

namespace ferry::shard {

enum class MessageType : uint8_t {
    Drain,   // stop accepting, finish streams, exit when idle
    Stop,    // exit now (drain deadline passed)
    Dump,    // log the state of every tunnel connection and stream (SIGUSR1)
    Reload,  // re-read certificates now (SIGHUP)
};

struct Message {
    MessageType type;
};

class Mailbox final {
  public:
    Mailbox();
    ~Mailbox();
    Mailbox(const Mailbox&) = delete;
    Mailbox& operator=(const Mailbox&) = delete;

    // Owner side: binds to the shard's ring and arms the doorbell; `on_mail` runs on the shard
    // thread whenever messages may be waiting.
    void attach(io::Ring* ring, io::Op* on_mail) noexcept;
    // Any thread: queues `m` and wakes the owner. `from` is the sender's own ring (used for
    // MSG_RING) or nullptr to ring the eventfd doorbell.
    void post(Message m, io::Ring* from) noexcept;
    // Owner side: takes every queued message.
    void take(std::vector<Message>* out) noexcept;
    // Owner side: re-arms the eventfd read after a doorbell CQE.
    void rearm() noexcept;
    // Owner side, when its ring is gone: later posts only queue, they no longer ring a stale fd
    // (which the kernel may have reused for another shard's ring).
    void detach() noexcept;

  private:
    std::mutex mu_;
    std::vector<Message> queue_;
    io::Ring* owner_ring_ = nullptr;
    io::Op* on_mail_ = nullptr;
    int owner_ring_fd_ = -1;
    int eventfd_ = -1;
    bool exited_ = false;  // detach() ran: the owner will never read again
    uint64_t eventfd_value_ = 0;
};

}  // namespace ferry::shard
