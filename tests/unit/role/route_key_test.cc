#include "ferry/role/route_key.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <span>
#include <string>

namespace ferry::role {
namespace {

void feed(proto::http1::RequestParser& p, const std::string& head) {
    const auto r = p.feed(std::as_bytes(std::span(head.data(), head.size())));
    EXPECT_EQ(r.status, proto::http1::ParseStatus::Complete);
}

TEST(RouteKey, ParsesEveryFormAndNamesItBack) {
    for (const char* text : {"header:X-Routing-Key", "query:room", "client-address"}) {
        absl::StatusOr<RouteKeyRule> r = parse_route_key(text);
        ASSERT_TRUE(r.ok()) << text;
        EXPECT_EQ(route_key_text(*r), text);
    }
    EXPECT_FALSE(parse_route_key("header:").ok());
    EXPECT_FALSE(parse_route_key("grpc:x").ok());
}

TEST(RouteKey, FindsAQueryParameterAndDecodesIt) {
    KeyBuffer b;
    ASSERT_TRUE(query_param("a=1&room=blue%20sky+2&z", "room", &b));
    EXPECT_EQ(b.view(), "blue sky 2");
    ASSERT_TRUE(query_param("room=%zz%4", "room", &b));
    EXPECT_EQ(b.view(), "%zz%4");
    EXPECT_FALSE(query_param("rooms=1&x=room", "room", &b));
    EXPECT_FALSE(query_param("room=", "room", &b));
    EXPECT_FALSE(query_param("", "room", &b));
}

TEST(RouteKey, CutsALongQueryKeyAtTheBuffer) {
    KeyBuffer b;
    const std::string query = "k=" + std::string(kMaxQueryKey + 100, 'x');
    ASSERT_TRUE(query_param(query, "k", &b));
    EXPECT_EQ(b.size, kMaxQueryKey);
}

TEST(RouteKey, TakesTheKeyFromTheRequestTheRuleNames) {
    const std::string head =
        "GET /chat?room=r7 HTTP/1.1\r\nHost: x\r\nx-routing-key: tenant-3\r\n\r\n";
    proto::http1::RequestParser p;
    feed(p, head);
    KeyBuffer b;
    EXPECT_EQ(request_route_key(RouteKeyRule{}, p, &b), "tenant-3");  // names are case-blind
    EXPECT_EQ(request_route_key({RouteKeySource::Query, "room"}, p, &b), "r7");
    EXPECT_EQ(request_route_key({RouteKeySource::Header, "X-Other"}, p, &b), "");
    EXPECT_EQ(request_route_key({RouteKeySource::Query, "user"}, p, &b), "");
    EXPECT_EQ(request_route_key({RouteKeySource::ClientAddress, ""}, p, &b), "");
}

TEST(RouteKey, KeysAClientByItsAddressWithoutThePort) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(lfd, 1), 0);
    socklen_t len = sizeof(a);
    ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    int sfd = accept(lfd, nullptr, nullptr);
    KeyBuffer b;
    ASSERT_TRUE(client_address_key(sfd, &b));
    EXPECT_EQ(b.view(), "127.0.0.1");
    EXPECT_FALSE(client_address_key(lfd, &b));  // a listener has no peer
    close(sfd);
    close(cfd);
    close(lfd);
}

}  // namespace
}  // namespace ferry::role
