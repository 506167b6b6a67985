#include "ferry/io/socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace ferry::io {

uint16_t SocketAddress::port() const noexcept {
    if (family() == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
    }
    if (family() == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    }
    return 0;
}

std::string SocketAddress::to_string() const {
    char host[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
                  sizeof(host));
        return absl::StrFormat("%s:%u", host, port());
    }
    if (family() == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
                  sizeof(host));
        return absl::StrFormat("[%s]:%u", host, port());
    }
    return "?";
}

absl::StatusOr<SocketAddress> parse_address(std::string_view host_port) {
    std::string_view host;
    std::string_view port_text;
    if (!host_port.empty() && host_port.front() == '[') {
        size_t close = host_port.find(']');
        if (close == std::string_view::npos || close + 1 >= host_port.size() ||
            host_port[close + 1] != ':') {
            return absl::InvalidArgumentError(
                absl::StrFormat("address '%s': expected [ipv6]:port", host_port));
        }
        host = host_port.substr(1, close - 1);
        port_text = host_port.substr(close + 2);
    } else {
        size_t colon = host_port.rfind(':');
        if (colon == std::string_view::npos) {
            return absl::InvalidArgumentError(
                absl::StrFormat("address '%s': expected host:port", host_port));
        }
        host = host_port.substr(0, colon);
        port_text = host_port.substr(colon + 1);
    }
    uint32_t port = 0;
    if (!absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()), &port) ||
        port > 65535) {
        return absl::InvalidArgumentError(
            absl::StrFormat("address '%s': port must be 0..65535", host_port));
    }
    std::string host_str(host.empty() ? "0.0.0.0" : host);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    int rc = getaddrinfo(host_str.c_str(), nullptr, &hints, &result);
    if (rc != 0 || result == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrFormat("address '%s': cannot resolve host: %s", host_port, gai_strerror(rc)));
    }
    SocketAddress out;
    std::memcpy(&out.storage, result->ai_addr, result->ai_addrlen);
    out.length = result->ai_addrlen;
    freeaddrinfo(result);
    if (out.family() == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&out.storage)->sin_port = htons(static_cast<uint16_t>(port));
    } else {
        reinterpret_cast<sockaddr_in6*>(&out.storage)->sin6_port =
            htons(static_cast<uint16_t>(port));
    }
    return out;
}

int new_tcp_socket(int family) noexcept {
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd >= 0) {
        set_nodelay(fd);
    }
    return fd;
}

void set_nodelay(int fd) noexcept {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::StatusOr<int> listen_tcp(const SocketAddress& addr, bool reuse_port, int backlog) {
    int fd = socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int err = errno;
        close(fd);
        return absl::InternalError(absl::StrFormat("SO_REUSEPORT: %s", strerror(err)));
    }
    if (bind(fd, addr.get(), addr.length) < 0) {
        int err = errno;
        close(fd);
        return absl::UnavailableError(
            absl::StrFormat("bind %s: %s", addr.to_string(), strerror(err)));
    }
    if (listen(fd, backlog) < 0) {
        int err = errno;
        close(fd);
        return absl::UnavailableError(
            absl::StrFormat("listen %s: %s", addr.to_string(), strerror(err)));
    }
    return fd;
}

absl::Status ensure_not_listening(const SocketAddress& addr) {
    if (addr.port() == 0) {
        return absl::OkStatus();
    }
    int fd = socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
    }
    // SO_REUSEADDR: a port whose old connections linger in TIME_WAIT is free; only a live
    // listener makes this bind fail.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = bind(fd, addr.get(), addr.length);
    int err = errno;
    close(fd);
    if (rc != 0 && err == EADDRINUSE) {
        return absl::AlreadyExistsError(
            absl::StrFormat("%s is already in use by another process", addr.to_string()));
    }
    return absl::OkStatus();
}

uint64_t raise_fd_limit() noexcept {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return 0;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &lim);
        (void)getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

absl::StatusOr<SocketAddress> local_address(int fd) {
    SocketAddress out;
    out.length = sizeof(out.storage);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.length) < 0) {
        return absl::InternalError(absl::StrFormat("getsockname: %s", strerror(errno)));
    }
    return out;
}

}  // namespace ferry::io
