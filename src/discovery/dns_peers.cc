#include "ferry/discovery/dns_peers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ferry/base/clock.h"
#include "ferry/base/log.h"

namespace ferry::discovery {
namespace {

// ares_library_init once per process (it is not thread-safe itself).
void init_library() {
    static const int rc = ares_library_init(ARES_LIB_INIT_ALL);
    (void)rc;
}

struct Lookup {
    bool done = false;
    int status = ARES_SUCCESS;
    std::vector<io::SocketAddress> addresses;
};

void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    auto* lookup = static_cast<Lookup*>(arg);
    lookup->done = true;
    lookup->status = status;
    if (result == nullptr) {
        return;
    }
    for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || n->ai_addr == nullptr ||
            n->ai_addrlen > sizeof(sockaddr_storage)) {
            continue;
        }
        io::SocketAddress a;
        std::memcpy(&a.storage, n->ai_addr, n->ai_addrlen);
        a.length = static_cast<socklen_t>(n->ai_addrlen);
        lookup->addresses.push_back(a);
    }
    ares_freeaddrinfo(result);
}

std::string join_addresses(const std::vector<io::SocketAddress>& addresses) {
    return absl::StrJoin(addresses, ", ", [](std::string* out, const io::SocketAddress& a) {
        out->append(a.to_string());
    });
}

bool same(const std::vector<io::SocketAddress>& a, const std::vector<io::SocketAddress>& b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].to_string() != b[i].to_string()) {
            return false;
        }
    }
    return true;
}

}  // namespace

void PeerSnapshot::publish(std::vector<io::SocketAddress> addresses) {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation_.load(std::memory_order_relaxed) != 0 && same(addresses_, addresses)) {
        return;
    }
    addresses_ = std::move(addresses);
    generation_.fetch_add(1, std::memory_order_release);
}

std::vector<io::SocketAddress> PeerSnapshot::read(uint64_t* generation) const {
    std::lock_guard<std::mutex> lock(mu_);
    *generation = generation_.load(std::memory_order_relaxed);
    return addresses_;
}

absl::StatusOr<std::vector<io::SocketAddress>> resolve(const ResolverOptions& options) {
    init_library();
    ares_options opts{};
    opts.timeout = 1000;  // ms per try; c-ares doubles it on each retry
    opts.tries = 3;
    ares_channel channel = nullptr;
    int rc = ares_init_options(&channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        return absl::UnavailableError(absl::StrFormat("c-ares init: %s", ares_strerror(rc)));
    }
    if (!options.servers.empty() &&
        (rc = ares_set_servers_ports_csv(channel, options.servers.c_str())) != ARES_SUCCESS) {
        ares_destroy(channel);
        return absl::InvalidArgumentError(
            absl::StrFormat("DNS servers '%s': %s", options.servers, ares_strerror(rc)));
    }
    Lookup lookup;
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;  // A and AAAA
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NUMERICSERV;
    const std::string service = std::to_string(options.port);
    ares_getaddrinfo(channel, options.name.c_str(), service.c_str(), &hints, on_addrinfo, &lookup);
    // poll(2), not select(2): with tens of thousands of connections open this thread's socket
    // may be numbered above FD_SETSIZE.
    const uint64_t deadline = base::mono_ns() + options.timeout_ns;
    while (!lookup.done) {
        const uint64_t now = base::mono_ns();
        if (now >= deadline) {
            ares_cancel(channel);  // runs the callback with ARES_ECANCELLED
            break;
        }
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        const int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        nfds_t n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            const bool r = ARES_GETSOCK_READABLE(bits, i);
            const bool w = ARES_GETSOCK_WRITABLE(bits, i);
            if (r || w) {
                fds[n++] = {socks[i], static_cast<short>((r ? POLLIN : 0) | (w ? POLLOUT : 0)), 0};
            }
        }
        timeval max{0, 100'000};
        timeval tv{};
        timeval* t = ares_timeout(channel, &max, &tv);
        const int wait_ms = static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000);
        (void)poll(fds, n, std::max(wait_ms, 1));
        if (n == 0) {
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts only
        }
        for (nfds_t i = 0; i < n; ++i) {
            ares_process_fd(
                channel,
                (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0 ? fds[i].fd : ARES_SOCKET_BAD,
                (fds[i].revents & POLLOUT) != 0 ? fds[i].fd : ARES_SOCKET_BAD);
        }
    }
    ares_destroy(channel);
    if (!lookup.done || lookup.status != ARES_SUCCESS) {
        return absl::UnavailableError(
            absl::StrFormat("resolving %s: %s", options.name,
                            lookup.done ? ares_strerror(lookup.status) : "no answer in time"));
    }
    std::vector<io::SocketAddress>& a = lookup.addresses;
    std::sort(a.begin(), a.end(), [](const io::SocketAddress& x, const io::SocketAddress& y) {
        return x.to_string() < y.to_string();
    });
    a.erase(std::unique(a.begin(), a.end(),
                        [](const io::SocketAddress& x, const io::SocketAddress& y) {
                            return x.to_string() == y.to_string();
                        }),
            a.end());
    if (a.empty()) {
        return absl::NotFoundError(absl::StrFormat("%s has no A or AAAA records", options.name));
    }
    return std::move(a);
}

Resolver::Resolver(ResolverOptions options, PeerSnapshot* out) noexcept
    : options_(std::move(options)), out_(out) {}

Resolver::~Resolver() { stop(); }

void Resolver::start() {
    init_library();
    thread_ = std::thread([this] { run(); });
}

void Resolver::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Resolver::run() {
    std::vector<io::SocketAddress> last;
    bool failing = false;
    for (;;) {
        absl::StatusOr<std::vector<io::SocketAddress>> got = resolve(options_);
        if (got.ok()) {
            if (!same(*got, last) || out_->generation() == 0) {
                FERRY_LOG(Info, "dns: %s:%u -> %s", options_.name, options_.port,
                          join_addresses(*got));
                last = *got;
                out_->publish(*std::move(got));
            }
            failing = false;
        } else if (!failing) {
            // Keep the last good set: a DNS outage must not take every terminator away.
            FERRY_LOG(Warn, "dns: %s; keeping the last answer (%u peer(s))", got.status().message(),
                      last.size());
            failing = true;
        }
        std::unique_lock<std::mutex> lock(mu_);
        if (wake_.wait_for(lock, std::chrono::nanoseconds(options_.refresh_ns),
                           [this] { return stopping_; })) {
            return;
        }
    }
}

}  // namespace ferry::discovery
