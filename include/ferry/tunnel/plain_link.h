// PlainLink: a tunnel Link over a TCP socket whose bytes need no user-space crypto (plain TCP,
// or a kTLS socket after the keys went into the kernel).
#pragma once

#include "ferry/tunnel/link.h"
#include "ferry/tunnel/socket_io.h"

namespace ferry::tunnel {

class PlainLink final : public Link, private SocketEvents {
public:
    // Takes ownership of the connected socket `fd`.
    PlainLink(Context& ctx, int fd, const char* kind = "plain") noexcept;
    void start(LinkSink* sink) noexcept override;
    void write(WriteBatch* batch) noexcept override;
    void close() noexcept override;
    [[nodiscard]] const char* kind() const noexcept override { return kind_; }

private:
    void on_socket_data(buf::Chunk&& bytes) noexcept override;
    void on_socket_eof() noexcept override;
    void on_socket_error(const char* what, int err) noexcept override;
    void on_socket_sent() noexcept override;
    void on_socket_connected(int) noexcept override {}
    void on_socket_closed() noexcept override;
    void down(const char* reason, int err) noexcept;

    Context& ctx_;
    SocketIo io_;
    LinkSink* sink_ = nullptr;
    WriteBatch* batch_ = nullptr;
    const char* kind_;
    bool down_ = false;
};

}  // namespace ferry::tunnel
