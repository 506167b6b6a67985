// KeyedUpstreams: several upstreams of one protocol (ws:// or grpc:// pods behind a terminator)
// sharing its streams by the OPEN's routing key, with the same rendezvous hashing the initiator
// picks terminators by (route::RendezvousSet, XXH3, fixed seed): a key sticks to its pod, and
// every terminator with the same upstream set and weights chooses alike. Each member keeps its
// own connections, limits and deadlines; this only picks one per stream.
#pragma once

#include <memory>
#include <vector>

#include "ferry/role/protocol.h"
#include "ferry/route/rendezvous_set.h"

namespace ferry::role {

class KeyedUpstreams final : public UpstreamProtocol {
  public:
    // `members[i]` serves `urls[i]`; ids are the addresses as IP:port, weights the URLs' own.
    KeyedUpstreams(std::vector<std::unique_ptr<UpstreamProtocol>> members,
                   const std::vector<ServiceUrl>& urls) noexcept;

    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override;

  private:
    std::vector<std::unique_ptr<UpstreamProtocol>> members_;
    route::RendezvousSet set_;  // index i is members_[i]
};

}  // namespace ferry::role
