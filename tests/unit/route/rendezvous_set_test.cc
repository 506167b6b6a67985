#include "ferry/route/rendezvous_set.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry::route {
namespace {

constexpr int kKeys = 100'000;

std::string key(int i) { return absl::StrCat("client-", i); }
std::string endpoint(int i) { return absl::StrCat("10.0.0.", i + 1, ":7443"); }

RendezvousSet make_set(int n) {
    RendezvousSet set;
    for (int i = 0; i < n; ++i) {
        EXPECT_TRUE(set.add(endpoint(i)).ok());
    }
    return set;
}

// The winner of every key, by endpoint id.
std::vector<std::string> winners(const RendezvousSet& set) {
    std::vector<std::string> out;
    out.reserve(kKeys);
    for (int i = 0; i < kKeys; ++i) {
        const Choice c = set.choose(key(i));
        out.emplace_back(c.found() ? set.id(c.endpoint) : "");
    }
    return out;
}

TEST(RendezvousSet, SpreadsKeysEvenlyOverTenEndpoints) {
    const RendezvousSet set = make_set(10);
    std::array<int, 10> count{};
    for (int i = 0; i < kKeys; ++i) {
        const Choice c = set.choose(key(i));
        ASSERT_TRUE(c.found());
        ++count[c.endpoint];
    }
    const double ideal = kKeys / 10.0;
    for (size_t e = 0; e < count.size(); ++e) {
        EXPECT_NEAR(count[e], ideal, ideal * 0.05) << set.id(e);
    }
}

TEST(RendezvousSet, RemovingAnEndpointMovesExactlyItsKeys) {
    RendezvousSet set = make_set(10);
    const std::vector<std::string> before = winners(set);
    const std::string gone = endpoint(3);
    ASSERT_TRUE(set.remove(gone));
    const std::vector<std::string> after = winners(set);
    int moved = 0;
    for (int i = 0; i < kKeys; ++i) {
        if (before[static_cast<size_t>(i)] == gone) {
            EXPECT_NE(after[static_cast<size_t>(i)], gone);
            ++moved;
        } else {
            EXPECT_EQ(after[static_cast<size_t>(i)], before[static_cast<size_t>(i)]) << key(i);
        }
    }
    EXPECT_GT(moved, 0);
}

TEST(RendezvousSet, KeysOfARemovedEndpointGoToTheirRunnerUp) {
    RendezvousSet set = make_set(5);
    std::vector<std::string> runner_up;
    for (int i = 0; i < 1000; ++i) {
        const Choice c = set.choose(key(i));
        runner_up.emplace_back(c.endpoint == 0 ? set.id(c.runner_up) : "");
    }
    ASSERT_TRUE(set.remove(endpoint(0)));
    for (int i = 0; i < 1000; ++i) {
        if (!runner_up[static_cast<size_t>(i)].empty()) {
            EXPECT_EQ(set.id(set.choose(key(i)).endpoint), runner_up[static_cast<size_t>(i)]);
        }
    }
}

TEST(RendezvousSet, AddingAnEndpointMovesAboutOneInNPlusOneKeysAllToIt) {
    RendezvousSet set = make_set(10);
    const std::vector<std::string> before = winners(set);
    ASSERT_TRUE(set.add(endpoint(10)).ok());
    const std::vector<std::string> after = winners(set);
    int moved = 0;
    for (int i = 0; i < kKeys; ++i) {
        if (after[static_cast<size_t>(i)] != before[static_cast<size_t>(i)]) {
            EXPECT_EQ(after[static_cast<size_t>(i)], endpoint(10));
            ++moved;
        }
    }
    const double ideal = kKeys / 11.0;
    EXPECT_NEAR(moved, ideal, ideal * 0.05);
}

TEST(RendezvousSet, WeightsTwoToOneGiveSharesTwoToOne) {
    RendezvousSet set;
    ASSERT_TRUE(set.add("heavy", 2.0).ok());
    ASSERT_TRUE(set.add("light", 1.0).ok());
    int heavy = 0;
    for (int i = 0; i < kKeys; ++i) {
        heavy += set.choose(key(i)).endpoint == 0 ? 1 : 0;
    }
    EXPECT_NEAR(heavy, kKeys * 2.0 / 3.0, kKeys * 0.01);
}

TEST(RendezvousSet, WeightedSharesFollowTheWeightsOverSeveralEndpoints) {
    RendezvousSet set;
    const std::array<double, 4> weights{1, 2, 3, 4};
    for (size_t i = 0; i < weights.size(); ++i) {
        ASSERT_TRUE(set.add(endpoint(static_cast<int>(i)), weights[i]).ok());
    }
    std::array<int, 4> count{};
    for (int i = 0; i < kKeys; ++i) {
        ++count[set.choose(key(i)).endpoint];
    }
    for (size_t i = 0; i < weights.size(); ++i) {
        const double ideal = kKeys * weights[i] / 10.0;
        EXPECT_NEAR(count[i], ideal, ideal * 0.05) << i;
    }
}

TEST(RendezvousSet, TwoInstancesBuiltInDifferentOrdersChooseAlike) {
    RendezvousSet forward;
    RendezvousSet backward;
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(forward.add(endpoint(i), 1.0 + i % 3).ok());
        ASSERT_TRUE(backward.add(endpoint(9 - i), 1.0 + (9 - i) % 3).ok());
    }
    for (int i = 0; i < 10'000; ++i) {
        const Choice a = forward.choose(key(i));
        const Choice b = backward.choose(key(i));
        ASSERT_EQ(forward.id(a.endpoint), backward.id(b.endpoint)) << key(i);
        ASSERT_EQ(forward.id(a.runner_up), backward.id(b.runner_up)) << key(i);
        ASSERT_EQ(a.score, b.score);
        ASSERT_EQ(a.runner_up_score, b.runner_up_score);
    }
}

TEST(RendezvousSet, TheChoiceIsAFixedFunctionOfKeyAndIds) {
    // The seed is a constant: these pairs hold in every process, on every machine.
    EXPECT_EQ(hash_key(""), hash_key(""));
    RendezvousSet set = make_set(3);
    const Choice c = set.choose("tenant-42");
    RendezvousSet again = make_set(3);
    EXPECT_EQ(again.choose("tenant-42").endpoint, c.endpoint);
    EXPECT_NE(hash_key("a"), hash_key("b"));
}

TEST(RendezvousSet, RunnerUpScoreIsBelowTheWinners) {
    const RendezvousSet set = make_set(4);
    for (int i = 0; i < 1000; ++i) {
        const Choice c = set.choose(key(i));
        ASSERT_TRUE(c.found());
        ASSERT_NE(c.runner_up, Choice::kNone);
        ASSERT_NE(c.runner_up, c.endpoint);
        ASSERT_GT(c.score, 0);
        ASSERT_GE(c.score, c.runner_up_score);
    }
}

TEST(RendezvousSet, ChooseIfSkipsIneligibleEndpoints) {
    const RendezvousSet set = make_set(5);
    for (int i = 0; i < 2000; ++i) {
        const Choice all = set.choose(key(i));
        const Choice some = set.choose_if(key(i), [&](size_t e) { return e != all.endpoint; });
        ASSERT_TRUE(some.found());
        // The key's next-highest endpoint takes it.
        EXPECT_EQ(some.endpoint, all.runner_up);
        EXPECT_NE(some.runner_up, all.endpoint);
    }
}

TEST(RendezvousSet, ChooseIfWithOneEligibleHasNoRunnerUp) {
    const RendezvousSet set = make_set(3);
    const Choice c = set.choose_if("k", [](size_t e) { return e == 1; });
    EXPECT_EQ(c.endpoint, 1U);
    EXPECT_EQ(c.runner_up, Choice::kNone);
}

TEST(RendezvousSet, NothingEligibleIsNotFound) {
    const RendezvousSet set = make_set(3);
    EXPECT_FALSE(set.choose_if("k", [](size_t) { return false; }).found());
    EXPECT_FALSE(RendezvousSet().choose("k").found());
}

TEST(RendezvousSet, RefusesDuplicateEmptyAndBadWeights) {
    RendezvousSet set;
    ASSERT_TRUE(set.add("a").ok());
    EXPECT_FALSE(set.add("a").ok());
    EXPECT_FALSE(set.add("").ok());
    EXPECT_FALSE(set.add("b", 0).ok());
    EXPECT_FALSE(set.add("b", -1).ok());
    EXPECT_FALSE(set.add("b", std::numeric_limits<double>::infinity()).ok());
    EXPECT_FALSE(set.add("b", std::numeric_limits<double>::quiet_NaN()).ok());
    EXPECT_EQ(set.size(), 1U);
    EXPECT_FALSE(set.remove("b"));
    EXPECT_TRUE(set.remove("a"));
    EXPECT_TRUE(set.empty());
}

}  // namespace
}  // namespace ferry::route
