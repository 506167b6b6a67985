// Socket set-up at the boundary (addresses, listeners, options). The data path itself never
// calls these per message: reads and writes go through the ring.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::io {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    [[nodiscard]] const sockaddr* get() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage);
    }
    [[nodiscard]] int family() const noexcept { return storage.ss_family; }
    [[nodiscard]] uint16_t port() const noexcept;
    [[nodiscard]] std::string to_string() const;
};

// "host:port" or "[v6]:port"; a host name is resolved once (getaddrinfo), numeric hosts are not.
[[nodiscard]] absl::StatusOr<SocketAddress> parse_address(std::string_view host_port);

// A bound, listening TCP socket; SO_REUSEPORT lets every shard own a listener on the same port.
[[nodiscard]] absl::StatusOr<int> listen_tcp(const SocketAddress& addr, bool reuse_port,
                                             int backlog);
// Fails when another socket already listens on `addr`. Shards bind with SO_REUSEPORT, which
// would otherwise silently share the port with a stale or second ferry and split its traffic.
[[nodiscard]] absl::Status ensure_not_listening(const SocketAddress& addr);
// Raises the open-files soft limit to the hard limit (one fd per proxied connection and side).
// Returns the limit now in force.
[[nodiscard]] uint64_t raise_fd_limit() noexcept;

// The address a socket is bound to (the real port after binding port 0).
[[nodiscard]] absl::StatusOr<SocketAddress> local_address(int fd);
// A new unconnected TCP socket for `family`, close-on-exec, TCP_NODELAY set.
[[nodiscard]] int new_tcp_socket(int family) noexcept;
void set_nodelay(int fd) noexcept;

}  // namespace ferry::io
