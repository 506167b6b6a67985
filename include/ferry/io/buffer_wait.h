// Waiting for pool buffers: something that stopped because both of its buffer sources ran dry (a
// multishot recv whose provided-buffer ring emptied, a TLS transport with records left to seal
// or to gather, a tunnel session owing control frames) parks itself on the shard's wait list and
// is retried once per loop iteration, after the buffer rings were refilled.
#pragma once

#include <initializer_list>

namespace ferry::io {

// Intrusive, so parking costs no allocation. A waiter that finds buffers still short parks again
// (without a syscall); one that dies while parked must call BufferWaitList::cancel first.
class BufferWaiter {
  public:
    // Buffers may be back: try again. Runs from the end of the loop iteration, never re-entrantly.
    virtual void retry_after_buffer_wait() noexcept = 0;

    [[nodiscard]] bool waiting_for_buffers() const noexcept { return parked_; }

  protected:
    BufferWaiter() = default;
    // Virtual only because the list that links it is a friend (-Wnon-virtual-dtor).
    virtual ~BufferWaiter() = default;

  private:
    friend class BufferWaitList;
    BufferWaiter* next_ = nullptr;
    bool parked_ = false;
};

// One per shard. Not thread-safe: shard-affine like everything it holds.
class BufferWaitList final {
  public:
    // Parks `w` (idempotent).
    void park(BufferWaiter* w) noexcept {
        if (!w->parked_) {
            w->parked_ = true;
            w->next_ = head_;
            head_ = w;
        }
    }
    // Unparks `w` if parked (it gave up waiting, or is about to die). Safe from inside a retry.
    void cancel(BufferWaiter* w) noexcept {
        if (!w->parked_) {
            return;
        }
        for (BufferWaiter** list : {&head_, &retrying_}) {
            for (BufferWaiter** p = list; *p != nullptr; p = &(*p)->next_) {
                if (*p == w) {
                    *p = w->next_;
                    w->parked_ = false;
                    w->next_ = nullptr;
                    return;
                }
            }
        }
    }
    // Retries every parked waiter once; those still short park again for the next iteration. A
    // retry may cancel or park any waiter, itself included: the batch being retried is a list of
    // its own that cancel() also searches.
    void retry_all() noexcept {
        retrying_ = head_;
        head_ = nullptr;
        while (retrying_ != nullptr) {
            BufferWaiter* w = retrying_;
            retrying_ = w->next_;
            w->parked_ = false;
            w->next_ = nullptr;
            w->retry_after_buffer_wait();
        }
    }
    // Forgets every waiter without retrying (shard teardown, after their owners are gone).
    void clear() noexcept { head_ = retrying_ = nullptr; }
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }

  private:
    BufferWaiter* head_ = nullptr;
    BufferWaiter* retrying_ = nullptr;
};

}  // namespace ferry::io
