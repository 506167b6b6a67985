#include "ferry/shard/shard.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "ferry/base/clock.h"
#include "ferry/base/log.h"

namespace ferry::shard {

Shard::Shard(int index, ShardOptions options, ServiceFactory factory, loop::Metrics* metrics)
    : index_(index),
      options_(std::move(options)),
      factory_(std::move(factory)),
      metrics_(metrics) {}

Shard::~Shard() { join(); }

void Shard::start() {
    thread_ = std::thread([this] { run(); });
}

void Shard::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Shard::run() {
    base::set_thread_shard(index_);
    metrics_->thread_id.set(static_cast<int64_t>(gettid()));
    if (options_.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(static_cast<size_t>(options_.cpu), &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
            FERRY_LOG(Warn, "cannot pin shard %d to CPU %d", index_, options_.cpu);
        }
    }
    absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
        loop::ContextOwner::create(options_, *metrics_);
    if (!owner.ok()) {
        FERRY_LOG(Error, "%s", owner.status().message());
        status_.store(Status::Failed, std::memory_order_release);
        return;
    }
    loop::Context& ctx = (*owner)->context();
    ring_ = &ctx.ring;
    ctx_ = &ctx;
    std::vector<std::unique_ptr<Service>> services = factory_(ctx, index_);
    for (auto& s : services) {
        services_view_.push_back(s.get());
        if (!s->start()) {
            status_.store(Status::Failed, std::memory_order_release);
            return;
        }
    }
    const io::RingFeatures& f = ring_->features();
    FERRY_LOG(Debug, "shard up: cpu %d, defer_taskrun %d, msg_ring %d, send_zc %d", options_.cpu,
              f.defer_taskrun, f.msg_ring, f.send_zc);
    mailbox_.attach(ring_, &mail_op_);
    arm_tick();
    status_.store(Status::Running, std::memory_order_release);
    run_loop(ctx, services);
    // Services go first (their teardown may still queue cancellations on the ring); what they
    // parked on the context dies with them.
    services_view_.clear();
    services.clear();
    mailbox_.detach();
    ctx.forget_pending();
    status_.store(Status::Exited, std::memory_order_release);
}

void Shard::run_loop(loop::Context& ctx, std::vector<std::unique_ptr<Service>>& services) {
    while (!stop_) {
        ring_->submit_and_wait(1);
        ctx.now_ns = base::mono_ns();
        ring_->dispatch();
        if (tick_due_) {
            tick_due_ = false;
            for (Service* s : services_view_) {
                s->tick(ctx.now_ns);
            }
            arm_tick();
        }
        housekeeping(ctx, services);
        if (stop_) {
            // One last submit: the RESETs and closes that stop() queued leave now.
            ring_->submit_and_wait(0);
            break;
        }
        if (draining_) {
            bool idle = true;
            for (Service* s : services_view_) {
                idle = idle && s->idle();
            }
            if (idle) {
                FERRY_LOG(Info, "drained");
                break;
            }
        }
    }
}

void Shard::housekeeping(loop::Context& ctx,
                         std::vector<std::unique_ptr<Service>>& services) noexcept {
    loop::end_of_iteration(ctx);
    for (auto& s : services) {
        s->housekeeping();
    }
    metrics_->buffers_in_use.set(ctx.local_pool.in_use().value());
    metrics_->tunnel_buffers_in_use.set(ctx.tunnel_pool.in_use().value());
}

void Shard::on_mail(int32_t res, uint32_t) noexcept {
    // res 8: the eventfd doorbell (re-arm it); res 0: a MSG_RING wake-up.
    if (res == sizeof(uint64_t)) {
        mailbox_.rearm();
    }
    std::vector<Message> messages;
    mailbox_.take(&messages);
    for (const Message& m : messages) {
        switch (m.type) {
            case MessageType::Drain:
                if (!draining_) {
                    FERRY_LOG(Info, "draining");
                    draining_ = true;
                    for (Service* s : services_view_) {
                        s->drain();
                    }
                }
                break;
            case MessageType::Stop:
                if (!stop_) {
                    stop_ = true;
                    // The drain deadline passed: what is still open is cut, and its peers must
                    // see an abort (RESET, RST), not a clean end.
                    for (Service* s : services_view_) {
                        s->stop();
                    }
                }
                break;
            case MessageType::Reload:
                for (Service* s : services_view_) {
                    s->reload();
                }
                break;
            case MessageType::Dump:
                FERRY_LOG(Info,
                          "buffers: local pool %u free of %u, %u lent to the kernel; tunnel pool "
                          "%u free of %u, %u lent",
                          ctx_->local_pool.free_count(), ctx_->local_pool.buffer_count(),
                          ctx_->local_bufs.lent(), ctx_->tunnel_pool.free_count(),
                          ctx_->tunnel_pool.buffer_count(), ctx_->tunnel_bufs.lent());
                for (Service* s : services_view_) {
                    s->dump();
                }
                break;
        }
    }
}

void Shard::arm_tick() noexcept {
    tick_ts_ = io::to_kernel_timespec(options_.tick_ns);
    io_uring_prep_timeout(ring_->sqe(&tick_op_), &tick_ts_, 0, 0);
}

void Shard::on_tick(int32_t, uint32_t) noexcept { tick_due_ = true; }

}  // namespace ferry::shard
