// Shard: one pinned thread that owns a ring, a buffer pool and everything those carry.
//
// The loop (liburing examples/proxy.c shape): submit and wait for at least one CQE, dispatch
// every ready CQE to its Op, then loop::end_of_iteration — flush what queued output (so one
// write carries everything this batch produced), lend freed buffers back to the kernel, retry
// what waited for buffers, free what closed — and the services' housekeeping. Nothing here
// blocks except the wait itself.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "ferry/io/ring.h"
#include "ferry/loop/context.h"
#include "ferry/loop/context_owner.h"
#include "ferry/shard/mailbox.h"
#include "ferry/shard/service.h"

namespace ferry::shard {

// The ring and pool sizes (ContextOptions) plus what the shard itself needs.
struct ShardOptions : loop::ContextOptions {
    int cpu = -1;  // pin to this CPU; -1 = no pinning
    uint64_t tick_ns = 100'000'000;
};

// Builds a shard's services on its own thread once its ring and pool exist.
using ServiceFactory =
    std::function<std::vector<std::unique_ptr<Service>>(loop::Context& ctx, int shard_index)>;

class Shard final {
  public:
    enum class Status : int { Starting = 0, Running = 1, Failed = 2, Exited = 3 };

    Shard(int index, ShardOptions options, ServiceFactory factory, loop::Metrics* metrics);
    ~Shard();
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;

    void start();
    void join();
    // Any thread.
    void post(Message m, io::Ring* from) noexcept { mailbox_.post(m, from); }
    [[nodiscard]] Status status() const noexcept { return status_.load(std::memory_order_acquire); }
    [[nodiscard]] int index() const noexcept { return index_; }

  private:
    void run();
    void run_loop(loop::Context& ctx, std::vector<std::unique_ptr<Service>>& services);
    void on_mail(int32_t res, uint32_t flags) noexcept;
    void on_tick(int32_t res, uint32_t flags) noexcept;
    void arm_tick() noexcept;
    void housekeeping(loop::Context& ctx, std::vector<std::unique_ptr<Service>>& services) noexcept;

    int index_;
    ShardOptions options_;
    ServiceFactory factory_;
    loop::Metrics* metrics_;
    Mailbox mailbox_;
    std::thread thread_;
    std::atomic<Status> status_{Status::Starting};

    // Loop state, touched only on the shard thread.
    io::Ring* ring_ = nullptr;
    loop::Context* ctx_ = nullptr;
    std::vector<Service*> services_view_;
    io::MemberOp<Shard, &Shard::on_mail> mail_op_{this};
    io::MemberOp<Shard, &Shard::on_tick> tick_op_{this};
    __kernel_timespec tick_ts_{};
    bool draining_ = false;
    bool stop_ = false;
    bool tick_due_ = false;
};

}  // namespace ferry::shard
