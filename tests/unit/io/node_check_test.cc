#include "ferry/io/node_check.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace ferry::io {
namespace {

// A scratch tree standing in for /proc, /sys and /lib/modules.
class NodeCheckTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/ferry-node-check.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(root_); }
    void write(const std::string& rel, const std::string& text) {
        std::filesystem::create_directories(std::filesystem::path(root_ + rel).parent_path());
        FILE* f = std::fopen((root_ + rel).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs(text.c_str(), f);
        std::fclose(f);
    }
    NodeCheck check() {
        return check_node(root_ + "/proc", root_ + "/sys", root_ + "/modules", "6.1.0-test");
    }
    std::string root_;
};

TEST_F(NodeCheckTest, NoSysctlAndNoModuleMeansAllowedAndAbsent) {
    NodeCheck c = check();
    EXPECT_EQ(c.io_uring_disabled, -1);
    EXPECT_EQ(c.tls_module, TlsModule::Absent);
    std::string line = describe(c, false);
    EXPECT_NE(line.find("no such sysctl (io_uring allowed)"), std::string::npos) << line;
    EXPECT_NE(line.find("tls module absent"), std::string::npos) << line;
    EXPECT_NE(line.find("install the tls module"), std::string::npos) << line;
}

TEST_F(NodeCheckTest, ReadsTheSysctlValue) {
    for (int v : {0, 1, 2}) {
        write("/proc/sys/kernel/io_uring_disabled", std::to_string(v) + "\n");
        EXPECT_EQ(check().io_uring_disabled, v);
    }
    EXPECT_NE(describe(check(), false).find("=2 (io_uring disabled)"), std::string::npos);
    write("/proc/sys/kernel/io_uring_disabled", "garbage\n");
    EXPECT_EQ(check().io_uring_disabled, -1);
}

TEST_F(NodeCheckTest, ModuleLoadedWinsOverInstalled) {
    write("/modules/6.1.0-test/kernel/net/tls/tls.ko.xz", "");
    EXPECT_EQ(check().tls_module, TlsModule::Available);
    std::filesystem::create_directories(root_ + "/sys/module/tls");
    EXPECT_EQ(check().tls_module, TlsModule::Loaded);
    EXPECT_NE(describe(check(), true).find("tls module loaded, kTLS usable"), std::string::npos);
}

TEST(NodeCheck, TheRealNodeAnswers) {
    NodeCheck c = check_node();
    EXPECT_GE(c.io_uring_disabled, -1);
    EXPECT_LE(c.io_uring_disabled, 2);
    EXPECT_FALSE(describe(c, false).empty());
}

}  // namespace
}  // namespace ferry::io
