#include "ferry/io/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace ferry::io {
namespace {

TEST(ParseAddress, ReadsAnIpv4HostAndPort) {
    absl::StatusOr<SocketAddress> a = parse_address("127.0.0.1:8080");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->family(), AF_INET);
    EXPECT_EQ(a->port(), 8080);
    EXPECT_EQ(a->length, sizeof(sockaddr_in));
    EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
}

TEST(ParseAddress, ReadsABracketedIpv6HostAndPort) {
    absl::StatusOr<SocketAddress> a = parse_address("[::1]:443");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->family(), AF_INET6);
    EXPECT_EQ(a->port(), 443);
    EXPECT_EQ(a->length, sizeof(sockaddr_in6));
    EXPECT_EQ(a->to_string(), "[::1]:443");
}

TEST(ParseAddress, ReadsTheIpv6Wildcard) {
    absl::StatusOr<SocketAddress> a = parse_address("[::]:9000");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->family(), AF_INET6);
    EXPECT_EQ(a->to_string(), "[::]:9000");
}

TEST(ParseAddress, AnEmptyHostMeansEveryIpv4Interface) {
    absl::StatusOr<SocketAddress> a = parse_address(":7000");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->family(), AF_INET);
    EXPECT_EQ(a->to_string(), "0.0.0.0:7000");
}

TEST(ParseAddress, ResolvesAHostName) {
    absl::StatusOr<SocketAddress> a = parse_address("localhost:5000");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->family() == AF_INET || a->family() == AF_INET6);
    EXPECT_EQ(a->port(), 5000);
}

TEST(ParseAddress, AcceptsTheWholePortRange) {
    absl::StatusOr<SocketAddress> zero = parse_address("127.0.0.1:0");
    ASSERT_TRUE(zero.ok());
    EXPECT_EQ(zero->port(), 0);
    absl::StatusOr<SocketAddress> top = parse_address("127.0.0.1:65535");
    ASSERT_TRUE(top.ok());
    EXPECT_EQ(top->port(), 65535);
}

TEST(ParseAddress, RejectsBadPortsAndShapes) {
    const char* bad[] = {
        "127.0.0.1",        // no port
        "127.0.0.1:",       // empty port
        "127.0.0.1:65536",  // too large
        "127.0.0.1:-1",     // negative
        "127.0.0.1:http",   // service names are not resolved
        "127.0.0.1:80x",    // trailing junk
        "127.0.0.1:99999999999",
        "[::1]",    // bracket without port
        "[::1]80",  // missing colon after the bracket
        "[::1:80",  // unterminated bracket
        "",         // nothing
        "[]:80x",
    };
    for (const char* text : bad) {
        absl::StatusOr<SocketAddress> a = parse_address(text);
        EXPECT_FALSE(a.ok()) << "'" << text << "' parsed as " << a->to_string();
        if (!a.ok()) {
            EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << text;
        }
    }
}

TEST(ParseAddress, RejectsAnUnresolvableHost) {
    absl::StatusOr<SocketAddress> a = parse_address("300.1.2.3:80");
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(a.status().message().find("300.1.2.3:80"), std::string_view::npos);
}

TEST(SocketAddress, NonInetFamiliesHaveNoPortAndNoText) {
    SocketAddress a;
    reinterpret_cast<sockaddr_un*>(&a.storage)->sun_family = AF_UNIX;
    a.length = sizeof(sockaddr_un);
    EXPECT_EQ(a.port(), 0);
    EXPECT_EQ(a.to_string(), "?");
}

TEST(ListenTcp, BindsPortZeroAndLocalAddressReportsTheRealPort) {
    absl::StatusOr<SocketAddress> addr = parse_address("127.0.0.1:0");
    ASSERT_TRUE(addr.ok());
    absl::StatusOr<int> fd = listen_tcp(*addr, /*reuse_port=*/false, 16);
    ASSERT_TRUE(fd.ok()) << fd.status();
    absl::StatusOr<SocketAddress> local = local_address(*fd);
    ASSERT_TRUE(local.ok()) << local.status();
    EXPECT_EQ(local->family(), AF_INET);
    EXPECT_NE(local->port(), 0);
    EXPECT_EQ(local->to_string(), "127.0.0.1:" + std::to_string(local->port()));
    EXPECT_NE(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);

    // It really listens: a client connects and the listener accepts it.
    int client = new_tcp_socket(AF_INET);
    ASSERT_GE(client, 0);
    ASSERT_EQ(connect(client, local->get(), local->length), 0);
    int accepted = accept4(*fd, nullptr, nullptr, SOCK_CLOEXEC);
    EXPECT_GE(accepted, 0);
    close(accepted);
    close(client);
    close(*fd);
}

TEST(ListenTcp, ListensOnIpv6Loopback) {
    absl::StatusOr<SocketAddress> addr = parse_address("[::1]:0");
    ASSERT_TRUE(addr.ok());
    absl::StatusOr<int> fd = listen_tcp(*addr, /*reuse_port=*/true, 16);
    if (!fd.ok()) {
        GTEST_SKIP() << "no IPv6 loopback: " << fd.status();
    }
    absl::StatusOr<SocketAddress> local = local_address(*fd);
    ASSERT_TRUE(local.ok());
    EXPECT_EQ(local->family(), AF_INET6);
    EXPECT_NE(local->port(), 0);
    close(*fd);
}

TEST(ListenTcp, ReusePortLetsTwoListenersShareAPort) {
    absl::StatusOr<SocketAddress> addr = parse_address("127.0.0.1:0");
    ASSERT_TRUE(addr.ok());
    absl::StatusOr<int> first = listen_tcp(*addr, /*reuse_port=*/true, 16);
    ASSERT_TRUE(first.ok());
    absl::StatusOr<SocketAddress> local = local_address(*first);
    ASSERT_TRUE(local.ok());
    absl::StatusOr<int> second = listen_tcp(*local, /*reuse_port=*/true, 16);
    EXPECT_TRUE(second.ok()) << second.status();
    if (second.ok()) {
        close(*second);
    }
    close(*first);
}

TEST(ListenTcp, ABusyPortWithoutReusePortFailsAndNamesTheAddress) {
    absl::StatusOr<SocketAddress> addr = parse_address("127.0.0.1:0");
    ASSERT_TRUE(addr.ok());
    absl::StatusOr<int> first = listen_tcp(*addr, /*reuse_port=*/false, 16);
    ASSERT_TRUE(first.ok());
    absl::StatusOr<SocketAddress> local = local_address(*first);
    ASSERT_TRUE(local.ok());
    absl::StatusOr<int> second = listen_tcp(*local, /*reuse_port=*/false, 16);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(second.status().message().find(local->to_string()), std::string_view::npos);
    close(*first);
}

TEST(LocalAddress, FailsOnSomethingThatIsNotASocket) {
    absl::StatusOr<SocketAddress> a = local_address(-1);
    EXPECT_FALSE(a.ok());
}

TEST(NewTcpSocket, SetsNoDelayAndCloseOnExec) {
    int fd = new_tcp_socket(AF_INET);
    ASSERT_GE(fd, 0);
    int on = 0;
    socklen_t len = sizeof(on);
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    EXPECT_NE(on, 0);
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    close(fd);
}

}  // namespace
}  // namespace ferry::io
