#include "ferry/loop/context_owner.h"

#include "ferry/base/clock.h"

namespace ferry::loop {

absl::StatusOr<std::unique_ptr<ContextOwner>> ContextOwner::create(const ContextOptions& options,
                                                                   Metrics& metrics) {
    std::unique_ptr<ContextOwner> o(new ContextOwner());
    absl::StatusOr<std::unique_ptr<io::Ring>> ring = io::Ring::create(options.ring);
    if (!ring.ok()) {
        return ring.status();
    }
    o->ring_ = *std::move(ring);
    o->local_pool_ = std::make_unique<buf::Pool>(options.buffer_size, options.buffer_count);
    o->tunnel_pool_ = std::make_unique<buf::Pool>(options.buffer_size, options.tunnel_buffer_count);
    o->local_bufs_ = std::make_unique<io::BufRing>(*o->ring_, *o->local_pool_, /*group=*/0,
                                                   options.buffer_ring_entries);
    o->tunnel_bufs_ = std::make_unique<io::BufRing>(*o->ring_, *o->tunnel_pool_, /*group=*/1,
                                                    options.tunnel_buffer_ring_entries);
    for (io::BufRing* b : {o->local_bufs_.get(), o->tunnel_bufs_.get()}) {
        if (absl::Status st = b->init(); !st.ok()) {
            return st;
        }
    }
    o->socket_tuning_ = options.socket;
    o->ctx_ =
        std::make_unique<Context>(*o->ring_, *o->local_pool_, *o->local_bufs_, *o->tunnel_pool_,
                                  *o->tunnel_bufs_, o->nodes_, metrics, o->socket_tuning_);
    o->ctx_->now_ns = base::mono_ns();
    return o;
}

ContextOwner::~ContextOwner() = default;

}  // namespace ferry::loop
