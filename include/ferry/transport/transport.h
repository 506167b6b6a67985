// Transport: an ordered, reliable byte stream under a tunnel Session — the layer seam.
//
// The Session speaks frames; a Transport moves bytes. Transports stack (envoy's TransportSocket):
// TcpTransport is the bottom, a TCP socket driven by the ring; TlsTransport runs mutual TLS 1.3
// over any lower Transport and hands the keys to the kernel (kTLS) only when the lower one is a
// raw socket. The mux never knows what it has under it.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string_view>

#include "ferry/buf/chunk_queue.h"

namespace ferry::io {
class SocketIo;
}

namespace ferry::transport {

// The session's write: frame headers from `headers` and payload slices owned by `owned`, in iov
// order; its iovecs go to Transport::write and are borrowed until on_transport_written().
struct WriteBatch {
    static constexpr uint32_t kMaxIov = 256;
    static constexpr uint32_t kHeaderSlot = 16;
    iovec iov[kMaxIov];
    uint32_t iov_count = 0;
    uint64_t bytes = 0;
    buf::ChunkQueue owned;
    alignas(8) std::byte headers[kMaxIov][kHeaderSlot];
    uint32_t headers_used = 0;

    [[nodiscard]] bool full(uint32_t iovs_needed) const noexcept {
        return iov_count + iovs_needed > kMaxIov || headers_used >= kMaxIov;
    }
    void add(const void* base, size_t len) noexcept {
        iov[iov_count++] = iovec{const_cast<void*>(base), len};
        bytes += len;
    }
};

// Events a Transport reports to the layer above. All run on the shard thread, from CQE dispatch
// or the end of the loop iteration; none runs synchronously inside a Transport call.
class TransportSink {
  public:
    // Bytes of the stream, in order. The sink may keep slices of `bytes`.
    virtual void on_transport_read(buf::Chunk&& bytes) noexcept = 0;
    // What write() was given was fully handed on (or the transport failed).
    virtual void on_transport_written() noexcept = 0;
    // Reading ended (EOF or error: `reason` is static text, `err` an errno or 0). Called once;
    // the transport then finishes its in-flight work and reports on_transport_quiescent().
    virtual void on_transport_down(const char* reason, int err) noexcept = 0;
    // No operation of the transport is in flight and what it sits on is closed: it may be freed.
    virtual void on_transport_quiescent() noexcept = 0;
    // The transport can carry bytes now (a TLS handshake finished). Never called for a transport
    // that was established() when started.
    virtual void on_transport_established() noexcept {}
    // The keys are due for rotation but this transport cannot rotate in place (kTLS on a kernel
    // without rekey, or certificates changed): the owner should replace the connection
    // (make-before-break) and drain this one.
    virtual void on_transport_rotation_due(const char* /*why*/) noexcept {}
    // A raw socket's recv failed with `err`; return true when the layer above dealt with it and
    // reading goes on (kTLS RX fails a plain recv with EIO at a control record).
    virtual bool on_transport_recv_error(int /*err*/) noexcept { return false; }
    // A raw socket's reading stopped after pause_reading(): no read is in flight.
    virtual void on_transport_read_stopped() noexcept {}

  protected:
    ~TransportSink() = default;
};

class Transport {
  public:
    virtual ~Transport() = default;
    // Starts reading (and, for TLS, the handshake). Events go to `sink` from now on.
    virtual void start(TransportSink* sink) noexcept = 0;
    // Writes iov[0..count), `bytes` in all. At most one write in flight; the iovec array and the
    // memory it names stay untouched by the caller until on_transport_written() (the transport
    // may advance the iovecs in place as parts go out).
    virtual void write(iovec* iov, uint32_t count, uint64_t bytes) noexcept = 0;
    // Backpressure from above: stop delivering on_transport_read until resume_reading(). Bytes
    // already on their way may still arrive.
    virtual void pause_reading() noexcept = 0;
    virtual void resume_reading() noexcept = 0;
    // Ends the transport: cancels reads and writes; on_transport_down (if not yet) then
    // on_transport_quiescent.
    virtual void close() noexcept = 0;
    // Ends our direction once what was written is out (TCP FIN; TLS close_notify first) and
    // keeps reading: a server's last answer then reaches a client that has not read it yet.
    virtual void shutdown_write() noexcept = 0;
    // "plain", "ktls", "tls", "ws": what carries the bytes, for logs and metrics.
    [[nodiscard]] virtual const char* kind() const noexcept = 0;
    // False while a handshake runs; write() may only be called once established.
    [[nodiscard]] virtual bool established() const noexcept { return true; }
    // proto::tunnel capability bits this transport offers the peer (kCapabilityKeyUpdate).
    [[nodiscard]] virtual uint32_t capabilities() const noexcept { return 0; }
    // The peer said (in its HELLO) which capabilities it has.
    virtual void set_peer_capabilities(uint32_t) noexcept {}
    // Periodic work: key rotation by age.
    virtual void tick(uint64_t) noexcept {}
    // Who the peer proved to be (certificate identity), empty when nothing authenticated it.
    [[nodiscard]] virtual std::string_view peer_identity() const noexcept { return {}; }
    // The TCP socket this transport is, when it is exactly one (nothing framed in user space
    // above the socket): the one place kernel TLS can be installed. Null otherwise.
    [[nodiscard]] virtual io::SocketIo* raw_socket() noexcept { return nullptr; }
};

}  // namespace ferry::transport
