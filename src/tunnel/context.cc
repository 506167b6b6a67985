#include "ferry/tunnel/context.h"

#include "ferry/tunnel/session.h"

namespace ferry::tunnel {

void end_of_iteration(Context& ctx) noexcept {
    // Flushing may queue more frames (a stream finishing sends its RESET or FIN): loop until
    // the list stays empty.
    while (ctx.dirty_head != nullptr) {
        Session* s = ctx.dirty_head;
        ctx.dirty_head = s->next_dirty;
        s->next_dirty = nullptr;
        s->in_dirty_list = false;
        s->flush();
    }
    ctx.bufs.refill();
    ctx.tunnel_bufs.refill();
    // Each re-arm checks its own ring and parks again (without a syscall) if that is still dry.
    Rearmable* r = ctx.starved_head;
    ctx.starved_head = nullptr;
    while (r != nullptr) {
        Rearmable* next = r->next_starved;
        r->starved = false;
        r->next_starved = nullptr;
        r->rearm();
        r = next;
    }
    while (ctx.retired_head != nullptr) {
        Retirable* dead = ctx.retired_head;
        ctx.retired_head = dead->next_retired;
        dead->retire();
    }
}

}  // namespace ferry::tunnel
