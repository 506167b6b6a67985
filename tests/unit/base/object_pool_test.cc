#include "ferry/base/object_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ferry::base {
namespace {

// Counts constructions and destructions so tests can see the pool runs both exactly once.
struct Tracked {
    static inline int alive = 0;
    static inline int destroyed = 0;

    Tracked(int v, std::string s) : value(v), text(std::move(s)) { ++alive; }
    ~Tracked() {
        --alive;
        ++destroyed;
    }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;

    int value;
    std::string text;
};

struct alignas(64) CacheLine {
    uint64_t words[8];
};

class ObjectPoolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        Tracked::alive = 0;
        Tracked::destroyed = 0;
    }
};

TEST_F(ObjectPoolTest, CreateForwardsConstructorArguments) {
    ObjectPool<Tracked> pool;
    Tracked* t = pool.create(7, std::string(100, 'x'));
    EXPECT_EQ(t->value, 7);
    EXPECT_EQ(t->text, std::string(100, 'x'));
    EXPECT_EQ(Tracked::alive, 1);
    pool.destroy(t);
}

TEST_F(ObjectPoolTest, DestroyRunsTheDestructorOnce) {
    ObjectPool<Tracked> pool;
    Tracked* t = pool.create(1, "a");
    pool.destroy(t);
    EXPECT_EQ(Tracked::alive, 0);
    EXPECT_EQ(Tracked::destroyed, 1);
}

TEST_F(ObjectPoolTest, LiveCountFollowsCreateAndDestroy) {
    ObjectPool<Tracked> pool;
    EXPECT_EQ(pool.live(), 0U);
    Tracked* a = pool.create(1, "a");
    Tracked* b = pool.create(2, "b");
    EXPECT_EQ(pool.live(), 2U);
    pool.destroy(a);
    EXPECT_EQ(pool.live(), 1U);
    pool.destroy(b);
    EXPECT_EQ(pool.live(), 0U);
}

TEST_F(ObjectPoolTest, ReusesTheMostRecentlyFreedSlot) {
    ObjectPool<Tracked> pool;
    Tracked* a = pool.create(1, "a");
    Tracked* b = pool.create(2, "b");
    pool.destroy(a);
    Tracked* c = pool.create(3, "c");
    EXPECT_EQ(static_cast<void*>(c), static_cast<void*>(a));
    EXPECT_EQ(c->value, 3);
    EXPECT_EQ(b->value, 2);
    pool.destroy(b);
    pool.destroy(c);
}

TEST_F(ObjectPoolTest, LiveObjectsNeverShareASlot) {
    ObjectPool<Tracked> pool;
    std::vector<Tracked*> objs;
    std::set<Tracked*> distinct;
    // More than one block, so growth is covered too.
    for (int i = 0; i < 200; ++i) {
        Tracked* t = pool.create(i, std::to_string(i));
        objs.push_back(t);
        distinct.insert(t);
    }
    EXPECT_EQ(distinct.size(), objs.size());
    for (int i = 0; i < 200; ++i) {
        EXPECT_EQ(objs[static_cast<size_t>(i)]->value, i);
        EXPECT_EQ(objs[static_cast<size_t>(i)]->text, std::to_string(i));
    }
    for (Tracked* t : objs) {
        pool.destroy(t);
    }
    EXPECT_EQ(pool.live(), 0U);
    EXPECT_EQ(Tracked::alive, 0);
}

TEST_F(ObjectPoolTest, ManyCreateDestroyCyclesStayWithinThePeakFootprint) {
    ObjectPool<Tracked> pool;
    std::vector<Tracked*> objs;
    std::set<Tracked*> slots_seen;
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 20000; ++round) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        const bool grow = objs.empty() || (objs.size() < 100 && (state >> 33) % 2 == 0);
        if (grow) {
            Tracked* t = pool.create(round, "r");
            slots_seen.insert(t);
            objs.push_back(t);
        } else {
            const size_t victim = static_cast<size_t>(state >> 40) % objs.size();
            pool.destroy(objs[victim]);
            objs[victim] = objs.back();
            objs.pop_back();
        }
        ASSERT_EQ(pool.live(), objs.size());
    }
    // At most 100 live at once: every slot ever used comes from the first two 64-slot blocks.
    EXPECT_LE(slots_seen.size(), 128U);
    for (Tracked* t : objs) {
        pool.destroy(t);
    }
    EXPECT_EQ(Tracked::alive, 0);
}

TEST_F(ObjectPoolTest, HonoursOverAlignedTypes) {
    ObjectPool<CacheLine> pool;
    std::vector<CacheLine*> objs;
    for (int i = 0; i < 130; ++i) {
        CacheLine* c = pool.create();
        EXPECT_EQ(reinterpret_cast<uintptr_t>(c) % 64, 0U);
        c->words[0] = static_cast<uint64_t>(i);
        c->words[7] = static_cast<uint64_t>(i);
        objs.push_back(c);
    }
    for (size_t i = 0; i < objs.size(); ++i) {
        EXPECT_EQ(objs[i]->words[0], i);
        EXPECT_EQ(objs[i]->words[7], i);
        pool.destroy(objs[i]);
    }
}

TEST_F(ObjectPoolTest, ObjectsAliveAtPoolDeathAreAbandonedWithoutDestruction) {
    {
        ObjectPool<Tracked> pool;
        Tracked* t = pool.create(1, "short");
        (void)t;
    }
    // Documented: the shard's exit drops the blocks; no destructor runs for leftovers.
    EXPECT_EQ(Tracked::destroyed, 0);
}

}  // namespace
}  // namespace ferry::base
