// Hooks end to end: the example library (examples/hooks/example_hooks.c) loaded with --hooks
// transforms and drops triggered messages at the initiator and answers messages at the sink; a
// bad library stops ferry at start with one line and exit status 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

std::string example_hooks() {
    const char* p = std::getenv("FERRY_EXAMPLE_HOOKS");
    return p != nullptr ? p : "build/examples/libferry-example-hooks.so";
}

TEST_F(E2e, TheExampleHooksTransformDropAndAnswerMessages) {
    Tunnel t(dir_, testlib::free_port(), 1, {"--hooks", example_hooks()});
    ASSERT_TRUE(t.ready()) << t.initiator->log();
    // on_trigger: "shout" goes out in upper case; the sink's default reply shows what arrived.
    const std::string shouted = admin_post(t.admin_i_, "/trigger", R"({"say":"shout"})");
    EXPECT_EQ(shouted.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << shouted;
    EXPECT_NE(shouted.find(R"("message":"{\"SAY\":\"SHOUT\"}")"), std::string::npos) << shouted;
    // on_trigger: "drop" is not sent at all, and the result says so.
    const std::string dropped = admin_post(t.admin_i_, "/trigger", R"({"please":"drop"})");
    EXPECT_NE(dropped.find(R"("dropped":true)"), std::string::npos) << dropped;
    EXPECT_NE(dropped.find(R"("ok":false)"), std::string::npos) << dropped;
    EXPECT_EQ(t.terminator_metric("ferry_streams_opened_total"), 1);
    // on_receive_terminator: a message that is not a JSON object gets the hook's own answer.
    const std::string plain = admin_post(t.admin_i_, "/trigger", R"("just text")");
    EXPECT_NE(plain.find(R"("result":"hooked by cluster-b-0: \"just text\"")"), std::string::npos)
        << plain;
}

TEST(Hooks, ABadLibraryStopsFerryAtStartWithOneLineAndStatusTwo) {
    const std::string dir = testlib::make_temp_dir();
    for (const std::string& lib : {std::string("/nonexistent/libhooks.so"),
                                   std::string("/lib/x86_64-linux-gnu/libc.so.6")}) {
        Process p({ferry_bin(), "initiator", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2",
                   "--tunnel-transport", "plain", "--hooks", lib},
                  dir + "/bad-hooks.log");
        EXPECT_EQ(p.wait(10000).value_or(-1), 2) << lib;
        const std::string log = p.log();
        EXPECT_NE(log.find("--hooks"), std::string::npos) << log;
        EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
    }
    testlib::remove_tree(dir);
}

}  // namespace
}  // namespace ferry::e2e
