// Rendezvous (highest-random-weight) hashing: which endpoint of a set a routing key goes to. The
// initiator uses it to pick a terminator among its --peer set for every new stream; the key is
// the one that travels in OPEN, so every hop can make the same choice with the same key.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"

namespace ferry::route {

// The XXH3 seed of every routing hash. Fixed, never per process: every shard and every ferry
// process with the same endpoint set sends a key to the same endpoint.
inline constexpr uint64_t kRendezvousSeed = 0x6665727279726877ULL;  // "ferryrhw"

// XXH3-64 of a routing key (or an endpoint id) with kRendezvousSeed.
[[nodiscard]] uint64_t hash_key(std::string_view key) noexcept;

// The splitmix64 finalizer: spreads hash(key) ^ hash(endpoint) over all 64 bits, so the ranks of
// one key over the endpoints are independent draws.
[[nodiscard]] constexpr uint64_t mix(uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// The weighted score -w / ln(u), with u the top 53 bits of `h` mapped into (0, 1): an endpoint
// of weight w wins a share w / sum(w) of the keys. Increasing in `h` for a fixed weight.
[[nodiscard]] inline double weighted_score(uint64_t h, double weight) noexcept {
    const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1p-53;
    return -weight / std::log(u);
}

// One choice: the winner and the runner-up (the endpoint the key moves to when the winner
// leaves), by index into the set, with their scores. kNone where there is none.
struct Choice {
    static constexpr size_t kNone = static_cast<size_t>(-1);
    size_t endpoint = kNone;
    double score = 0;
    size_t runner_up = kNone;
    double runner_up_score = 0;

    [[nodiscard]] bool found() const noexcept { return endpoint != kNone; }
};

// A set of endpoints, each named by an id (an address as written) and a weight. The choice
// depends only on the key and on the ids and weights in the set, never on the order they were
// added in: removing an endpoint moves only the keys it had (to their runner-up), adding one takes
// about 1/(n+1) of the keys. add/remove are configuration-time calls and allocate; choose and
// choose_if allocate nothing and may run on the data path. Not thread-safe: one per shard, or
// shared read-only.
class RendezvousSet final {
  public:
    // Adds an endpoint; its index is size() before the call. Refuses an empty or duplicate id and
    // a weight that is not a positive finite number.
    [[nodiscard]] absl::Status add(std::string_view id, double weight = 1.0);
    // Removes an endpoint; the indices after it shift down by one. False when it is not there.
    bool remove(std::string_view id);

    [[nodiscard]] size_t size() const noexcept { return endpoints_.size(); }
    [[nodiscard]] bool empty() const noexcept { return endpoints_.empty(); }
    [[nodiscard]] std::string_view id(size_t i) const noexcept { return ids_[i]; }
    [[nodiscard]] double weight(size_t i) const noexcept { return endpoints_[i].weight; }
    [[nodiscard]] std::optional<size_t> find(std::string_view id) const noexcept;

    // The endpoint with the highest score for `key` among all.
    [[nodiscard]] Choice choose(std::string_view key) const noexcept {
        return choose_if(key, [](size_t) { return true; });
    }
    // The same among the endpoints for which `eligible(index)` is true (the healthy ones): a key
    // whose winner is not eligible goes to its next-highest eligible endpoint. Not found when
    // none is eligible.
    template <class Eligible>
    [[nodiscard]] Choice choose_if(std::string_view key, Eligible&& eligible) const noexcept;

  private:
    struct Endpoint {
        uint64_t id_hash;
        double weight;
    };

    // Highest score wins; equal scores (vanishingly rare) go to the higher id hash, so the
    // choice never depends on the order of the set.
    template <class Score, class ScoreOf, class Eligible>
    [[nodiscard]] Choice pick(ScoreOf&& score_of, Eligible&& eligible) const noexcept;

    std::vector<Endpoint> endpoints_;
    std::vector<std::string> ids_;
    bool uniform_ = true;  // all weights equal: ranks compare as integers, no logarithm
};

template <class Score, class ScoreOf, class Eligible>
Choice RendezvousSet::pick(ScoreOf&& score_of, Eligible&& eligible) const noexcept {
    size_t best = Choice::kNone;
    size_t second = Choice::kNone;
    Score best_score{};
    Score second_score{};
    auto beats = [this](Score s, size_t i, Score other, size_t j) noexcept {
        return s > other || (s == other && endpoints_[i].id_hash > endpoints_[j].id_hash);
    };
    for (size_t i = 0; i < endpoints_.size(); ++i) {
        if (!eligible(i)) {
            continue;
        }
        const Score s = score_of(i);
        if (best == Choice::kNone || beats(s, i, best_score, best)) {
            second = best;
            second_score = best_score;
            best = i;
            best_score = s;
        } else if (second == Choice::kNone || beats(s, i, second_score, second)) {
            second = i;
            second_score = s;
        }
    }
    Choice c;
    c.endpoint = best;
    c.runner_up = second;
    if constexpr (std::is_same_v<Score, double>) {
        c.score = best_score;
        c.runner_up_score = second_score;
    } else {
        if (best != Choice::kNone) {
            c.score = weighted_score(best_score, endpoints_[best].weight);
        }
        if (second != Choice::kNone) {
            c.runner_up_score = weighted_score(second_score, endpoints_[second].weight);
        }
    }
    return c;
}

template <class Eligible>
Choice RendezvousSet::choose_if(std::string_view key, Eligible&& eligible) const noexcept {
    const uint64_t kh = hash_key(key);
    if (uniform_) {
        return pick<uint64_t>(
            [this, kh](size_t i) noexcept { return mix(kh ^ endpoints_[i].id_hash); }, eligible);
    }
    return pick<double>(
        [this, kh](size_t i) noexcept {
            return weighted_score(mix(kh ^ endpoints_[i].id_hash), endpoints_[i].weight);
        },
        eligible);
}

}  // namespace ferry::route
