// Peer discovery by DNS: the addresses of one name (a Kubernetes headless Service: one A/AAAA
// record per terminator pod) re-resolved every --dns-refresh by a resolver thread with c-ares,
// never on a shard. Each change is published as a new generation of a snapshot; shards look at
// the generation on their tick (one atomic load) and take the new set when it moved, so the data
// path never waits on DNS and never takes a lock.
#pragma once

#include <ares.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "ferry/io/socket.h"

namespace ferry::discovery {

// The latest answer, shared by the resolver thread (writer) and the shards (readers).
class PeerSnapshot final {
  public:
    // Replaces the set (sorted, distinct) when it differs; the generation moves only then.
    void publish(std::vector<io::SocketAddress> addresses);
    // 0 until the first answer.
    [[nodiscard]] uint64_t generation() const noexcept {
        return generation_.load(std::memory_order_acquire);
    }
    // The set and its generation.
    [[nodiscard]] std::vector<io::SocketAddress> read(uint64_t* generation) const;

  private:
    mutable std::mutex mu_;
    std::vector<io::SocketAddress> addresses_;
    std::atomic<uint64_t> generation_{0};
};

struct ResolverOptions {
    std::string name;     // the DNS name, e.g. ferry-terminator.ferry.svc.cluster.local
    uint16_t port = 0;    // the terminators' tunnel port
    std::string servers;  // "IP[:PORT],..." or empty: the system's resolv.conf
    uint64_t refresh_ns = 30'000'000'000;
    uint64_t timeout_ns = 5'000'000'000;  // one lookup, all tries
};

// Resolves `name` (A and AAAA) once, blocking the calling thread at most options.timeout_ns:
// the addresses sorted by their text, with `port`. An empty answer is an error (NXDOMAIN, no
// records): the caller keeps the last good set rather than dropping every peer.
[[nodiscard]] absl::StatusOr<std::vector<io::SocketAddress>> resolve(
    const ResolverOptions& options);

class Resolver final {
  public:
    Resolver(ResolverOptions options, PeerSnapshot* out) noexcept;
    ~Resolver();  // stops and joins
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // Starts the thread: resolves at once, then every refresh. Logs changes and failures.
    void start();
    void stop() noexcept;

  private:
    void run();

    ResolverOptions options_;
    PeerSnapshot* out_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable wake_;
    bool stopping_ = false;
};

}  // namespace ferry::discovery
