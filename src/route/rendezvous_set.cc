#include "ferry/route/rendezvous_set.h"

#include <xxhash.h>

#include <algorithm>

#include "absl/strings/str_format.h"

namespace ferry::route {

uint64_t hash_key(std::string_view key) noexcept {
    return XXH3_64bits_withSeed(key.data(), key.size(), kRendezvousSeed);
}

absl::Status RendezvousSet::add(std::string_view id, double weight) {
    if (id.empty()) {
        return absl::InvalidArgumentError("an endpoint needs a non-empty id");
    }
    if (!(weight > 0) || !std::isfinite(weight)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("endpoint %s: the weight must be a positive number", id));
    }
    if (find(id).has_value()) {
        return absl::AlreadyExistsError(absl::StrFormat("endpoint %s is already in the set", id));
    }
    endpoints_.push_back({hash_key(id), weight});
    ids_.emplace_back(id);
    uniform_ = uniform_ && weight == endpoints_.front().weight;
    return absl::OkStatus();
}

bool RendezvousSet::remove(std::string_view id) {
    const std::optional<size_t> i = find(id);
    if (!i.has_value()) {
        return false;
    }
    endpoints_.erase(endpoints_.begin() + static_cast<std::ptrdiff_t>(*i));
    ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(*i));
    uniform_ = std::all_of(endpoints_.begin(), endpoints_.end(), [this](const Endpoint& e) {
        return e.weight == endpoints_.front().weight;
    });
    return true;
}

std::optional<size_t> RendezvousSet::find(std::string_view id) const noexcept {
    for (size_t i = 0; i < ids_.size(); ++i) {
        if (ids_[i] == id) {
            return i;
        }
    }
    return std::nullopt;
}

}  // namespace ferry::route
