#include "ferry/role/result_log.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::role {
namespace {

TEST(ResultLog, RendersTheNewestFirstAcrossShardsAndForgetsTheOldestOfAFullShard) {
    ResultLog log(2, 2);
    log.record(0, R"({"n":1})");
    log.record(1, R"({"n":2})");
    log.record(0, R"({"n":3})");
    log.record(0, R"({"n":4})");  // shard 0 holds two: {"n":1} goes
    log.record(5, R"({"n":5})");  // no such shard: ignored
    EXPECT_EQ(log.render(100), "{\"results\":[{\"n\":4},{\"n\":3},{\"n\":2}]}\n");
    EXPECT_EQ(log.render(1), "{\"results\":[{\"n\":4}]}\n");
    EXPECT_EQ(ResultLog(1, 4).render(10), "{\"results\":[]}\n");
}

// Records a result, answers a reply synchronously.
class CapturingReply final : public AdminReply {
  public:
    void respond(int s, std::string_view type, std::string_view b) noexcept override {
        status = s;
        content_type = type;
        body = b;
    }
    int status = 0;
    std::string content_type;
    std::string body;
};

TEST(ResultLog, TheOutputEndpointServesGetOnly) {
    ResultLog log(1, 4);
    log.record(0, R"({"ok":true})");
    OutputEndpoint out(log);
    CapturingReply get;
    out.serve("GET", "", "", get);
    EXPECT_EQ(get.status, 200);
    EXPECT_EQ(get.content_type, "application/json");
    EXPECT_EQ(get.body, "{\"results\":[{\"ok\":true}]}\n");
    CapturingReply post;
    out.serve("POST", "", "{}", post);
    EXPECT_EQ(post.status, 405);
}

TEST(ResultLog, APreviewNeverCutsACharacterInTwo) {
    EXPECT_EQ(preview("short", 10), "short");
    EXPECT_EQ(preview("abcdef", 3), "abc");
    // "é" is two bytes (c3 a9): a cut after its first byte backs off to before it.
    EXPECT_EQ(preview("ab\xc3\xa9z", 3), "ab");
    EXPECT_EQ(preview("ab\xc3\xa9z", 4), "ab\xc3\xa9");
}

}  // namespace
}  // namespace ferry::role
