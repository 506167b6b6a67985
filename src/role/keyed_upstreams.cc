#include "ferry/role/keyed_upstreams.h"

#include "ferry/base/check.h"

namespace ferry::role {

KeyedUpstreams::KeyedUpstreams(std::vector<std::unique_ptr<UpstreamProtocol>> members,
                               const std::vector<ServiceUrl>& urls) noexcept
    : members_(std::move(members)) {
    FERRY_CHECK(!members_.empty() && members_.size() == urls.size());
    for (const ServiceUrl& u : urls) {
        const absl::Status st = set_.add(u.address.to_string(), u.weight);
        FERRY_CHECK(st.ok());  // config refuses duplicate addresses and bad weights
    }
}

tunnel::OpenDecision KeyedUpstreams::open(tunnel::Session& session, tunnel::Stream& stream,
                                          const proto::tunnel::Open& open) noexcept {
    // The OPEN's routing key is the one the initiator chose this terminator by.
    return members_[set_.choose(open.routing_key).endpoint]->open(session, stream, open);
}

void KeyedUpstreams::tick(uint64_t now_ns) noexcept {
    for (auto& m : members_) {
        m->tick(now_ns);
    }
}

void KeyedUpstreams::drain() noexcept {
    for (auto& m : members_) {
        m->drain();
    }
}

bool KeyedUpstreams::idle() const noexcept {
    for (const auto& m : members_) {
        if (!m->idle()) {
            return false;
        }
    }
    return true;
}

}  // namespace ferry::role
