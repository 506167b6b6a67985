// TcpLeg: the local TCP socket of one tunnel stream — an accepted client at the initiator, an
// upstream connection at the terminator — pumping bytes between the socket and the Stream.
//
// Socket -> tunnel: each received buffer goes to Stream::write as is; when a stream window's
// worth is queued the leg stops reading until on_stream_writable (backpressure, bounded memory).
// Tunnel -> socket: slices of tunnel receive buffers are queued and written with sendmsg;
// credit returns to the peer as the kernel takes them. Half-close travels both ways, and so do
// aborts: a reset socket becomes a tunnel RESET, and a reset stream a TCP RST (SO_LINGER 0) on
// this socket, so neither end takes a truncated stream for a complete one.
#pragma once

#include <sys/uio.h>

#include "ferry/base/object_pool.h"
#include "ferry/base/shared_limit.h"
#include "ferry/io/socket.h"
#include "ferry/io/socket_io.h"
#include "ferry/loop/context.h"
#include "ferry/role/metrics.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

// Hears when a leg's upstream connect is over (connected, failed, or given up), to bound the
// connects in flight.
class ConnectWatcher {
  public:
    virtual void on_connect_over(const void* tunnel) noexcept = 0;

  protected:
    ~ConnectWatcher() = default;
};

class TcpLeg final : public tunnel::StreamHandler,
                     private io::SocketEvents,
                     public loop::Retirable {
  public:
    // Lives in `pool` and frees itself there once its socket closed; `metrics` outlives it.
    TcpLeg(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>* pool) noexcept;

    // An accepted client socket carried by `stream`.
    void start_accepted(int fd, tunnel::Stream* stream) noexcept;
    // Connects to `upstream` for `stream`; peer data queues until connected. Accepts the stream
    // (OPEN_ACK) once connected; resets it with ConnectRefused when the connect fails. False,
    // with the leg closing itself and the stream untouched, when no socket could be made.
    [[nodiscard]] bool start_connect(const io::SocketAddress& upstream,
                                     tunnel::Stream* stream) noexcept;
    // Closes a socket that never got a stream (no tunnel, over the limit).
    void reject(int fd) noexcept;
    // The leg holds one unit of `limit` (--max-connections) and gives it back when it is freed.
    void hold_slot(base::SharedLimit* limit) noexcept { slot_ = limit; }
    // `watcher` hears once when the connect of start_connect() is over; `tunnel` names the
    // tunnel connection the stream came on.
    void watch_connect(ConnectWatcher* watcher, const void* tunnel) noexcept {
        watcher_ = watcher;
        tunnel_ = tunnel;
    }

    // StreamHandler
    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override;

    void retire() noexcept override;

  private:
    // SocketEvents
    void on_socket_data(buf::Chunk&& bytes) noexcept override;
    void on_socket_eof() noexcept override;
    void on_socket_error(const char* what, int err) noexcept override;
    void on_socket_sent() noexcept override;
    void on_socket_connected(int res) noexcept override;
    void on_socket_closed() noexcept override;

    void send_more() noexcept;
    void maybe_done() noexcept;
    void close() noexcept;
    // Closes with a TCP RST rather than a FIN: the stream was cut short.
    void abort() noexcept;
    void connect_over() noexcept;

    static constexpr uint32_t kMaxIov = 8;

    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<TcpLeg>* pool_;
    io::SocketIo io_;
    tunnel::Stream* stream_ = nullptr;
    buf::ChunkQueue out_;  // peer bytes waiting for the socket
    iovec iov_[kMaxIov];
    uint32_t sending_bytes_ = 0;
    bool connected_ = false;
    bool eof_read_ = false;  // local side half-closed; FIN queued on the stream
    bool fin_from_peer_ = false;
    bool shut_wr_ = false;
    bool deliver_then_close_ = false;  // stream gone after its FIN: flush out_, then close
    bool closing_ = false;
    bool accepted_ = false;  // a client of the initiator (else an upstream of the terminator)
    base::SharedLimit* slot_ = nullptr;
    ConnectWatcher* watcher_ = nullptr;
    const void* tunnel_ = nullptr;
};

}  // namespace ferry::role
