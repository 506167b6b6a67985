#include "ferry/loop/context.h"

namespace ferry::loop {

void Context::forget_pending() noexcept {
    flush_head_ = nullptr;
    retired_head_ = nullptr;
    waits_.clear();
}

void end_of_iteration(Context& ctx) noexcept {
    // Flushing may queue more output (a stream finishing sends its RESET or FIN): loop until the
    // list stays empty.
    while (ctx.flush_head_ != nullptr) {
        Flushable* f = ctx.flush_head_;
        ctx.flush_head_ = f->next_flush_;
        f->next_flush_ = nullptr;
        f->flush_queued_ = false;
        f->flush();
    }
    ctx.local_bufs.refill();
    ctx.tunnel_bufs.refill();
    // Each retry checks its own source and parks again (without a syscall) if that is still dry.
    ctx.waits_.retry_all();
    while (ctx.retired_head_ != nullptr) {
        Retirable* dead = ctx.retired_head_;
        ctx.retired_head_ = dead->next_retired_;
        dead->retire();
    }
}

}  // namespace ferry::loop
