#include "net.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace ferry::bench {

absl::StatusOr<sockaddr_in> parse_endpoint(std::string_view text) {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrFormat("'%s' is not HOST:PORT", text));
    }
    const std::string host(text.substr(0, colon));
    const std::string_view port_text = text.substr(colon + 1);
    uint32_t port = 0;
    if (!absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()), &port) ||
        port > 65535) {
        return absl::InvalidArgumentError(absl::StrFormat("bad port in '%s'", text));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
        return absl::InvalidArgumentError(absl::StrFormat("'%s' is not an IPv4 address", host));
    }
    return addr;
}

std::string format_endpoint(const sockaddr_in& addr) {
    char host[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
    return absl::StrFormat("%s:%d", host, ntohs(addr.sin_port));
}

absl::StatusOr<int> listen_tcp(const sockaddr_in& addr) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
        const int err = errno;
        close(fd);
        return absl::UnavailableError(
            absl::StrFormat("bind %s: %s", format_endpoint(addr), strerror(err)));
    }
    if (listen(fd, 4096) < 0) {
        const int err = errno;
        close(fd);
        return absl::InternalError(absl::StrFormat("listen: %s", strerror(err)));
    }
    return fd;
}

absl::StatusOr<sockaddr_in> local_endpoint(int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
        return absl::InternalError(absl::StrFormat("getsockname: %s", strerror(errno)));
    }
    return addr;
}

int client_socket() noexcept {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    set_nodelay(fd);
    return fd;
}

void set_nodelay(int fd) noexcept {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

uint64_t raise_fd_limit(uint64_t wanted) noexcept {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return 0;
    }
    if (lim.rlim_cur >= wanted) {
        return lim.rlim_cur;
    }
    if (lim.rlim_max < wanted) {
        // Only root may raise the hard limit; it is capped by fs.nr_open.
        rlimit raised = lim;
        raised.rlim_max = wanted;
        raised.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            return wanted;
        }
    }
    lim.rlim_cur = lim.rlim_max < wanted ? lim.rlim_max : wanted;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
    return lim.rlim_cur;
}

std::string errno_text(int negative_errno) {
    const int err = -negative_errno;
    if (err == ECONNREFUSED) {
        return "connect refused";
    }
    return strerror(err);
}

}  // namespace ferry::bench
