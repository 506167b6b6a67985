// Host-side kTLS tests: the probe and the parts that need no kTLS. The real kTLS data path is
// exercised by ktls_loopback_test.cc inside a VM (suite 'ktls').
#include "ferry/tls/ktls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace ferry::tls {
namespace {

using ::testing::HasSubstr;

// Asks the kernel directly, independent of the code under test.
int tls_ulp_errno() {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listener, 1), 0);
    EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const int server = accept(listener, nullptr, nullptr);
    const int rc = setsockopt(client, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
    const int err = rc == 0 ? 0 : errno;
    close(server);
    close(client);
    close(listener);
    return err;
}

TEST(Ktls, ProbeAgreesWithTheKernel) {
    const int err = tls_ulp_errno();
    if (err == ENOENT) {
        // This is the development host: CONFIG_TLS is off.
        EXPECT_FALSE(ktls_supported());
        EXPECT_THAT(std::string(ktls_probe().message()), HasSubstr("kernel has no TLS ULP"));
        EXPECT_FALSE(ktls_rekey_supported());
    } else if (err == 0) {
        EXPECT_TRUE(ktls_supported()) << ktls_probe();
    }
    EXPECT_EQ(&ktls_probe(), &ktls_probe()) << "probed once, cached";
}

TEST(Ktls, InstallFailsCleanlyWithoutTheUlp) {
    if (ktls_supported()) {
        GTEST_SKIP() << "kernel has kTLS; the VM test covers installation";
    }
    DirectionKeys keys;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const absl::Status s = install_ktls(fd, keys, keys);
    close(fd);
    EXPECT_FALSE(s.ok());
}

std::span<const std::byte> bytes(std::initializer_list<int> list, std::vector<std::byte>& store) {
    store.clear();
    for (int b : list) {
        store.push_back(static_cast<std::byte>(b));
    }
    return store;
}

TEST(Ktls, ClassifiesControlRecords) {
    std::vector<std::byte> s;
    EXPECT_EQ(classify_ktls_record(23, bytes({1, 2, 3}, s)).kind, KtlsRecordKind::Data);
    EXPECT_EQ(classify_ktls_record(21, bytes({1, 0}, s)).kind, KtlsRecordKind::CloseNotify);
    const KtlsRecord alert = classify_ktls_record(21, bytes({2, 42}, s));
    EXPECT_EQ(alert.kind, KtlsRecordKind::Alert);
    EXPECT_EQ(alert.alert, 42);
    EXPECT_EQ(classify_ktls_record(21, bytes({2}, s)).kind, KtlsRecordKind::Malformed);
    const KtlsRecord update = classify_ktls_record(22, bytes({24, 0, 0, 1, 1}, s));
    EXPECT_EQ(update.kind, KtlsRecordKind::KeyUpdate);
    EXPECT_TRUE(update.update_requested);
    EXPECT_EQ(classify_ktls_record(22, bytes({24, 0, 0, 1, 2}, s)).kind, KtlsRecordKind::Malformed);
    EXPECT_EQ(classify_ktls_record(22, bytes({4, 0, 0, 0}, s)).kind, KtlsRecordKind::Malformed);
    EXPECT_EQ(classify_ktls_record(20, bytes({1}, s)).kind, KtlsRecordKind::Malformed);
}

TEST(Ktls, RecordTypeDefaultsToApplicationData) {
    msghdr msg{};
    EXPECT_EQ(ktls_record_type(msg), 23);
}

}  // namespace
}  // namespace ferry::tls
