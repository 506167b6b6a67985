// SocketIo: the ring operations of one TCP socket — multishot recv into provided buffers,
// gathered sends (SEND_ZC above the threshold), half-close, and cancel-then-close teardown.
//
// Shared by the tunnel's TCP transport, the client/upstream legs and the admin port, so each
// socket of a shard has exactly one implementation of partial sends, buffer starvation and op
// draining.
// Events go to SocketEvents from CQE dispatch, never synchronously from a SocketIo call.
#pragma once

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>

#include "ferry/io/buf_ring.h"
#include "ferry/io/io_context.h"
#include "ferry/io/op.h"

namespace ferry::io {

class SocketEvents {
  public:
    // Bytes read, in order (may be called many times per CQE batch).
    virtual void on_socket_data(buf::Chunk&& bytes) noexcept = 0;
    // The peer half-closed (recv returned 0). Reading stops.
    virtual void on_socket_eof() noexcept = 0;
    // A recv or send failed; `what` is static text. Reading and sending stop.
    virtual void on_socket_error(const char* what, int err) noexcept = 0;
    // A recv failed with `err` (an errno). Return true when the owner dealt with it and reading
    // goes on (kTLS RX fails a plain recv with EIO at a control record, which the owner then
    // reads with its record type); false makes it a socket error.
    virtual bool on_socket_recv_error(int /*err*/) noexcept { return false; }
    // The iovecs given to send() are fully written (and, for SEND_ZC, released by the kernel).
    virtual void on_socket_sent() noexcept = 0;
    // Asynchronous connect() finished: 0 or a negative errno.
    virtual void on_socket_connected(int res) noexcept = 0;
    // After close(): every op has completed and the fd is closed. The owner may now free.
    virtual void on_socket_closed() noexcept = 0;
    // The recv op ended after pause_reading(): no read is in flight (kTLS install point).
    virtual void on_socket_recv_stopped() noexcept {}

  protected:
    ~SocketEvents() = default;
};

class SocketIo final : private BufferWaiter {
  public:
    // Reads land in buffers of `bufs` (the local or the tunnel pool's ring).
    SocketIo(IoContext& ctx, BufRing& bufs, SocketEvents* events) noexcept;
    SocketIo(const SocketIo&) = delete;
    SocketIo& operator=(const SocketIo&) = delete;
    ~SocketIo() { ctx_.buffer_waits.cancel(this); }

    void attach(int fd) noexcept { fd_ = fd; }
    [[nodiscard]] int fd() const noexcept { return fd_; }

    // Starts an async connect (with the connect timeout linked); result in on_socket_connected.
    void connect(const sockaddr* addr, socklen_t len) noexcept;
    // Arms multishot recv (idempotent). Idle sockets hold no buffer until bytes arrive.
    void start_reading() noexcept;
    // Stops reading (backpressure): cancels the multishot recv; data already in flight may still
    // be delivered. start_reading() resumes.
    void pause_reading() noexcept;
    // Writes all of iov[0..count) (`bytes` total). One send at a time; the caller keeps the iovec
    // array and the memory it names untouched until on_socket_sent().
    void send(iovec* iov, uint32_t count, uint64_t bytes) noexcept;
    // Sends FIN once (after the caller's last send completed).
    void shutdown_write() noexcept;
    // Cancels everything and closes the fd; ends with on_socket_closed().
    void close() noexcept;

    [[nodiscard]] bool reading() const noexcept { return want_read_; }
    [[nodiscard]] bool sending() const noexcept { return send_inflight_ || zc_notifs_ > 0; }
    [[nodiscard]] bool closing() const noexcept { return closing_; }
    [[nodiscard]] bool recv_in_flight() const noexcept { return recv_armed_; }
    // True while a recv that ran out of buffers waits for the ring to be refilled.
    using BufferWaiter::waiting_for_buffers;
    // kTLS sockets reject SEND_ZC (EOPNOTSUPP): turn it off for them.
    void set_zerocopy(bool allowed) noexcept { zerocopy_ = allowed; }

  private:
    // The buffer ring may have been refilled: re-arm a recv that ended with ENOBUFS.
    void retry_after_buffer_wait() noexcept override;
    void on_recv(int32_t res, uint32_t flags) noexcept;
    void on_send(int32_t res, uint32_t flags) noexcept;
    void on_connect(int32_t res, uint32_t flags) noexcept;
    void on_aux(int32_t res, uint32_t flags) noexcept;
    void submit_recv() noexcept;
    void submit_send() noexcept;
    void finish_op() noexcept;
    void fail(const char* what, int err) noexcept;

    IoContext& ctx_;
    BufRing& bufs_;
    SocketEvents* events_;
    int fd_ = -1;
    MemberOp<SocketIo, &SocketIo::on_recv> recv_op_{this};
    MemberOp<SocketIo, &SocketIo::on_send> send_op_{this};
    MemberOp<SocketIo, &SocketIo::on_connect> connect_op_{this};
    MemberOp<SocketIo, &SocketIo::on_aux> aux_op_{this};  // cancel, shutdown, timeouts
    msghdr msg_{};
    __kernel_timespec connect_timeout_{};
    iovec* iov_ = nullptr;
    uint32_t iov_count_ = 0;
    uint64_t send_left_ = 0;
    uint32_t ops_ = 0;  // SQEs whose final CQE has not arrived
    uint32_t zc_notifs_ = 0;
    bool want_read_ = false;
    bool recv_armed_ = false;
    bool send_inflight_ = false;
    bool failed_ = false;
    bool closing_ = false;
    bool closed_ = false;
    bool zerocopy_ = true;
};

}  // namespace ferry::io
