// TcpTransport: the bottom of every transport stack — one connected TCP socket driven by the
// ring (io::SocketIo), its receives landing in the tunnel pool. Plain TCP on its own; under
// TlsTransport the ciphertext, or, once kTLS took the keys, the kernel's plaintext.
#pragma once

#include "ferry/io/socket.h"
#include "ferry/io/socket_io.h"
#include "ferry/loop/context.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/transport.h"

namespace ferry::transport {

class TcpTransport final : public Transport, private io::SocketEvents {
  public:
    // Takes ownership of the connected socket `fd`; receives land in the tunnel pool. `metrics`
    // outlives the transport.
    TcpTransport(loop::Context& ctx, Metrics& metrics, int fd) noexcept;
    // A client connection's socket, attached later: receives land in `bufs` (the local pool).
    TcpTransport(loop::Context& ctx, Metrics& metrics, io::BufRing& bufs) noexcept;

    // Takes ownership of the connected socket `fd` (the second constructor's).
    void attach(int fd) noexcept { io_.attach(fd); }

    // Connects the attached socket to `to` (within --connect-timeout) and reports to `sink`:
    // on_transport_established() once connected (reading starts then), on_transport_down()
    // naming the failure otherwise. Instead of start().
    void connect(const io::SocketAddress& to, TransportSink* sink) noexcept;

    void start(TransportSink* sink) noexcept override;
    void write(iovec* iov, uint32_t count, uint64_t bytes) noexcept override;
    void pause_reading() noexcept override { io_.pause_reading(); }
    void resume_reading() noexcept override { io_.start_reading(); }
    void close() noexcept override;
    void shutdown_write() noexcept override { io_.shutdown_write(); }
    [[nodiscard]] const char* kind() const noexcept override { return "plain"; }
    [[nodiscard]] bool established() const noexcept override { return !connecting_; }
    [[nodiscard]] io::SocketIo* raw_socket() noexcept override { return &io_; }

  private:
    void on_socket_data(buf::Chunk&& bytes) noexcept override;
    void on_socket_eof() noexcept override;
    void on_socket_error(const char* what, int err) noexcept override;
    bool on_socket_recv_error(int err) noexcept override;
    void on_socket_sent() noexcept override;
    void on_socket_connected(int res) noexcept override;
    void on_socket_closed() noexcept override;
    void on_socket_recv_stopped() noexcept override;
    void down(const char* reason, int err) noexcept;

    Metrics& metrics_;
    io::SocketIo io_;
    TransportSink* sink_ = nullptr;
    bool writing_ = false;
    bool down_ = false;
    bool connecting_ = false;
};

}  // namespace ferry::transport
