// Link: the byte pipe under a tunnel Session (the transport seam).
//
// The Session speaks frames; a Link moves bytes. PlainLink is a TCP socket (also what a kTLS
// socket looks like once the kernel holds the keys); a user-space TLS link seals and opens
// records between the same two calls. The mux never knows which one it has.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string_view>

#include "ferry/buf/chunk_queue.h"

namespace ferry::tunnel {

// One tunnel write: frame headers from `headers` and payload slices owned by `owned`, in iov
// order. The Session fills it; the Link owns it until on_link_written(); then it is reused.
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

// Events a Link reports to its Session. All run on the shard thread, from CQE dispatch; none
// runs synchronously inside a Link call.
class LinkSink {
public:
    // Plain bytes of the tunnel, in order. The sink may keep slices of `bytes`.
    virtual void on_link_read(buf::Chunk&& bytes) noexcept = 0;
    // The batch passed to write() was fully handed to the kernel (or the link failed).
    virtual void on_link_written() noexcept = 0;
    // Reading ended (EOF or error: `reason` is static text, `err` an errno or 0). Called once;
    // the Link then finishes its in-flight work and reports on_link_quiescent().
    virtual void on_link_down(const char* reason, int err) noexcept = 0;
    // No operation of the Link is in flight and its socket is closed: it may be destroyed.
    virtual void on_link_quiescent() noexcept = 0;
    // The link can carry bytes now (a TLS handshake finished). Never called for a link that
    // was established() when started.
    virtual void on_link_established() noexcept = 0;
    // The keys are due for rotation but this link cannot rotate in place (kTLS on a kernel
    // without rekey, or certificates changed): the owner should replace the connection
    // (make-before-break) and drain this one.
    virtual void on_link_rotation_due(const char* why) noexcept = 0;

protected:
    ~LinkSink() = default;
};

class Link {
public:
    virtual ~Link() = default;
    virtual void start(LinkSink* sink) noexcept = 0;
    // At most one write in flight. The batch stays untouched by the caller until
    // on_link_written().
    virtual void write(WriteBatch* batch) noexcept = 0;
    // Ends the link: cancels reads and writes; on_link_down (if not yet) then on_link_quiescent.
    virtual void close() noexcept = 0;
    // "plain", "ktls", "tls": what carries the bytes, for logs and metrics.
    [[nodiscard]] virtual const char* kind() const noexcept = 0;
    // False while a handshake runs; write() may only be called once established.
    [[nodiscard]] virtual bool established() const noexcept { return true; }
    // proto::tunnel capability bits this link offers the peer (kCapabilityKeyUpdate).
    [[nodiscard]] virtual uint32_t capabilities() const noexcept { return 0; }
    // The peer said (in its HELLO) which capabilities it has.
    virtual void set_peer_capabilities(uint32_t) noexcept {}
    // Periodic work: key rotation by age.
    virtual void tick(uint64_t) noexcept {}
    // Who the peer proved to be (certificate identity), empty for plain links.
    [[nodiscard]] virtual std::string_view peer_identity() const noexcept { return {}; }
};

}  // namespace ferry::tunnel
