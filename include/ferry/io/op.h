// Completion object: every SQE's user_data is an Op*, and each CQE is dispatched to it.
//
// seastar's kernel_completion shape: one virtual call per CQE; per-byte work stays non-virtual.
// An Op is embedded in the object that owns the operation (a connection's recv, send, connect),
// so submitting costs no allocation. The owner must not be freed while an Op of it is in flight:
// teardown cancels the ops and frees only after each has delivered its final CQE.
#pragma once

#include <cstdint>

namespace ferry::io {

class Op {
  public:
    // `res` is the CQE result (negative errno on failure); `flags` the CQE flags (F_MORE for a
    // multishot op that stays armed, F_NOTIF for a zero-copy send's buffer release, F_BUFFER).
    virtual void complete(int32_t res, uint32_t flags) noexcept = 0;

  protected:
    Op() = default;
    ~Op() = default;
};

// An Op that forwards to a member function of its owner: keeps owners free of Op subclasses.
template <class Owner, void (Owner::*Handler)(int32_t, uint32_t) noexcept>
class MemberOp final : public Op {
  public:
    explicit MemberOp(Owner* owner) noexcept : owner_(owner) {}
    void complete(int32_t res, uint32_t flags) noexcept override { (owner_->*Handler)(res, flags); }

  private:
    Owner* owner_;
};

}  // namespace ferry::io
