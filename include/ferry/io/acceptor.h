// Acceptor: one listening socket with a multishot accept on the shard's ring.
// With SO_REUSEPORT each shard has its own, so the kernel spreads connections over shards.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "ferry/io/op.h"
#include "ferry/io/ring.h"
#include "ferry/io/socket.h"

namespace ferry::io {

class AcceptHandler {
  public:
    // A new connection; the handler owns `fd`.
    virtual void on_accepted(int fd) noexcept = 0;

  protected:
    ~AcceptHandler() = default;
};

class Acceptor final {
  public:
    Acceptor(Ring& ring, AcceptHandler* handler) noexcept : ring_(ring), handler_(handler) {}
    ~Acceptor();
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;

    [[nodiscard]] absl::Status listen(const SocketAddress& addr, int backlog = 4096);
    void start() noexcept;
    // Stops accepting and closes the listener; idle() once the accept op has ended.
    void stop() noexcept;
    [[nodiscard]] bool idle() const noexcept { return !armed_; }
    [[nodiscard]] int fd() const noexcept { return fd_; }

  private:
    void on_accept(int32_t res, uint32_t flags) noexcept;
    void on_cancel(int32_t, uint32_t) noexcept {}

    Ring& ring_;
    AcceptHandler* handler_;
    MemberOp<Acceptor, &Acceptor::on_accept> accept_op_{this};
    MemberOp<Acceptor, &Acceptor::on_cancel> cancel_op_{this};
    int fd_ = -1;
    bool armed_ = false;
    bool stopped_ = false;
};

}  // namespace ferry::io
