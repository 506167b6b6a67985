// Mailbox: how anything outside a shard talks to it — control messages and connections handed
// over from another shard, never stream data.
//
// Multi-producer, single-consumer. The producer appends under a mutex (off the data path: one
// lock per message, and messages are rare) and wakes the shard with an io_uring MSG_RING CQE
// posted into the shard's ring from the producer's ring; where the kernel lacks MSG_RING, an
// eventfd read on the shard's ring is the doorbell instead.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>
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

// The wake-up half of a mailbox: where the owner listens and how a producer rings it. Not
// thread-safe by itself; MailboxOf serialises attach, detach and target under its mutex.
class Doorbell final {
  public:
    Doorbell();
    ~Doorbell();
    Doorbell(const Doorbell&) = delete;
    Doorbell& operator=(const Doorbell&) = delete;

    // Where a ring goes: the owner's ring fd and the Op its CQE completes (fd -1 when none).
    struct Target {
        int ring_fd = -1;
        io::Op* op = nullptr;
    };

    // Owner side: binds to the owner's ring and arms the eventfd read.
    void attach(io::Ring* ring, io::Op* on_mail) noexcept;
    // Owner side: re-arms the eventfd read after a doorbell CQE (res == 8).
    void rearm() noexcept;
    void detach() noexcept;
    [[nodiscard]] Target target() const noexcept { return {owner_ring_fd_, on_mail_}; }
    // Any thread: MSG_RING from `from` when it can, else the eventfd (which also covers an owner
    // that has not attached yet: attach() arms the read that sees the count).
    void ring(Target t, io::Ring* from) noexcept;

  private:
    io::Ring* owner_ring_ = nullptr;
    io::Op* on_mail_ = nullptr;
    int owner_ring_fd_ = -1;
    int eventfd_ = -1;
    uint64_t eventfd_value_ = 0;
};

template <class T>
class MailboxOf final {
  public:
    MailboxOf() = default;
    MailboxOf(const MailboxOf&) = delete;
    MailboxOf& operator=(const MailboxOf&) = delete;

    // Owner side: binds to the shard's ring and arms the doorbell; `on_mail` runs on the shard
    // thread whenever messages may be waiting. On its CQE, res 8 means the eventfd rang: call
    // rearm(); res 0 is a MSG_RING wake-up.
    void attach(io::Ring* ring, io::Op* on_mail) noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        bell_.attach(ring, on_mail);
    }
    // Any thread: queues `m` and wakes the owner; false (nothing queued) once the owner detached.
    // `from` is the sender's own ring (used for MSG_RING) or nullptr to ring the eventfd.
    bool post(T m, io::Ring* from) noexcept {
        Doorbell::Target t;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (exited_) {
                return false;  // nobody will read it; never ring a ring fd that may be reused
            }
            queue_.push_back(std::move(m));
            t = bell_.target();
        }
        bell_.ring(t, from);
        return true;
    }
    // Owner side: takes every queued message.
    void take(std::vector<T>* out) noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        out->insert(out->end(), queue_.begin(), queue_.end());
        queue_.clear();
    }
    void rearm() noexcept { bell_.rearm(); }
    // Owner side, when its ring is gone: later posts fail instead of ringing a stale fd (which
    // the kernel may have reused for another shard's ring). Returns what was never taken.
    std::vector<T> detach() noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        bell_.detach();
        exited_ = true;
        return std::exchange(queue_, {});
    }

  private:
    std::mutex mu_;
    std::vector<T> queue_;
    Doorbell bell_;
    bool exited_ = false;  // detach() ran: the owner will never read again
};

using Mailbox = MailboxOf<Message>;

}  // namespace ferry::shard
