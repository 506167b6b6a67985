// Socket helpers for ferry-load: IPv4 endpoint parsing, listeners, client sockets, fd limits.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::bench {

// Parses "A.B.C.D:PORT" (port 0 allowed for listeners).
[[nodiscard]] absl::StatusOr<sockaddr_in> parse_endpoint(std::string_view text);
[[nodiscard]] std::string format_endpoint(const sockaddr_in& addr);

// A listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (so every worker thread can own one
// on the same port). Blocking; the ring does the accepting.
[[nodiscard]] absl::StatusOr<int> listen_tcp(const sockaddr_in& addr);

// The address a socket is bound to (the real port after binding port 0).
[[nodiscard]] absl::StatusOr<sockaddr_in> local_endpoint(int fd);

// A fresh TCP socket with TCP_NODELAY set, for connecting through the ring; -errno on failure.
[[nodiscard]] int client_socket() noexcept;

// Disables Nagle on an accepted socket (request/response latency must not wait for an ACK).
void set_nodelay(int fd) noexcept;

// Raises RLIMIT_NOFILE so that `wanted` descriptors fit (the hard limit too when privileged).
// Returns the soft limit now in force.
uint64_t raise_fd_limit(uint64_t wanted) noexcept;

// Human-readable errno text for a negative CQE result ("connect refused" for ECONNREFUSED).
[[nodiscard]] std::string errno_text(int negative_errno);

}  // namespace ferry::bench
