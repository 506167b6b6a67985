#include "ferry/proto/ws/handshake.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace ferry::proto::ws {
namespace {

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// RFC 6455 §1.3.
constexpr std::string_view kRfcRequest =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

constexpr std::string_view kRfcResponse =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n";

// Parses `head` (which must be a complete, valid HTTP request head) and checks it.
UpgradeRequest check_request(http1::RequestParser& parser, std::string_view head) {
    const http1::ParseResult r = parser.feed(head);
    EXPECT_EQ(r.status, http1::ParseStatus::Complete) << head << (r.detail ? r.detail : "");
    return validate_upgrade_request(parser);
}

// The RFC request with the line starting with `name` replaced by `line` (removed when empty),
// or `line` added before the blank line when no line starts with `name`.
std::string rfc_request_with(std::string_view name, std::string_view line) {
    std::string out;
    std::string_view rest = kRfcRequest;
    bool replaced = false;
    while (!rest.starts_with("\r\n")) {
        const size_t eol = rest.find("\r\n");
        const std::string_view current = rest.substr(0, eol + 2);
        rest.remove_prefix(eol + 2);
        if (!name.empty() && current.starts_with(name)) {
            replaced = true;
            if (!line.empty()) {
                out += std::string(line) + "\r\n";
            }
        } else {
            out += current;
        }
    }
    if (!replaced && !line.empty()) {
        out += std::string(line) + "\r\n";
    }
    return out + "\r\n";
}

// Parses `head` (a complete, valid response head) into `parser` and checks it; the result's
// views point into `parser`.
UpgradeResponse check_response(ResponseHeadParser& parser, std::string_view head,
                               std::string_view key, std::vector<std::string_view> offered) {
    parser.reset();
    const HeadResult r = parser.feed(head);
    EXPECT_EQ(r.status, HeadStatus::Complete) << head << (r.detail ? r.detail : "");
    return validate_upgrade_response(parser, key, offered);
}

std::string as_text(std::span<const char> out, size_t n) { return {out.data(), n}; }

TEST(WsHandshake, ComputesTheRfcAcceptKey) {
    const auto accept = compute_accept_key(kRfcKey);
    EXPECT_EQ(std::string_view(accept.data(), accept.size()), kRfcAccept);
}

TEST(WsHandshake, EncodesTheRfcClientKey) {
    const std::string_view nonce = "the sample nonce";
    std::array<std::byte, 16> bytes{};
    std::memcpy(bytes.data(), nonce.data(), 16);
    const auto key = encode_client_key(bytes);
    EXPECT_EQ(std::string_view(key.data(), key.size()), kRfcKey);
    EXPECT_TRUE(is_valid_client_key({key.data(), key.size()}));
}

TEST(WsHandshake, ValidatesClientKeys) {
    EXPECT_TRUE(is_valid_client_key(kRfcKey));
    EXPECT_TRUE(is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    EXPECT_TRUE(is_valid_client_key("++//++//++//++//++//+w=="));
    EXPECT_FALSE(is_valid_client_key(""));
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));   // 18 bytes, no padding
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZ-=="));   // not base64
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZ ==="));
    EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25j===="));
}

TEST(WsHandshake, AcceptsTheRfcUpgradeRequest) {
    http1::RequestParser parser;
    const UpgradeRequest r = check_request(parser, kRfcRequest);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(r.reason, nullptr);
    EXPECT_EQ(r.key, kRfcKey);
    EXPECT_EQ(r.host, "server.example.com");
    EXPECT_EQ(r.origin, "http://example.com");
    EXPECT_EQ(r.extensions, "");
    ASSERT_EQ(r.offered_subprotocols().size(), 2U);
    EXPECT_EQ(r.offered_subprotocols()[0], "chat");
    EXPECT_EQ(r.offered_subprotocols()[1], "superchat");
}

TEST(WsHandshake, MatchesNamesAndTokensCaseInsensitively) {
    // What browsers and other clients send: mixed case, Connection lists, extension offers.
    const std::string request =
        "GET /ws?room=1 HTTP/1.1\r\n"
        "host: 10.0.0.7:8080\r\n"
        "connection: keep-alive, Upgrade\r\n"
        "UPGRADE: WebSocket\r\n"
        "sec-websocket-version: 13\r\n"
        "SEC-WEBSOCKET-KEY: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "\r\n";
    http1::RequestParser parser;
    const UpgradeRequest r = check_request(parser, request);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_EQ(r.key, "AAAAAAAAAAAAAAAAAAAAAA==");
    EXPECT_EQ(r.host, "10.0.0.7:8080");
    EXPECT_EQ(r.origin, "");
    EXPECT_EQ(r.extensions, "permessage-deflate; client_max_window_bits");
    EXPECT_TRUE(r.offered_subprotocols().empty());
    // Upgrade may list several protocols, over several lines.
    http1::RequestParser p2;
    EXPECT_TRUE(
        check_request(p2, rfc_request_with("Upgrade", "Upgrade: h2c\r\nUpgrade: foo/2, websocket"))
            .ok());
}

TEST(WsHandshake, CollectsSubprotocolsOverSeveralLines) {
    http1::RequestParser parser;
    const UpgradeRequest r =
        check_request(parser, rfc_request_with("Sec-WebSocket-Protocol",
                                               "Sec-WebSocket-Protocol: chat, , superchat\r\n"
                                               "sec-websocket-protocol: v2.bin.example"));
    ASSERT_TRUE(r.ok()) << r.reason;
    ASSERT_EQ(r.offered_subprotocols().size(), 3U);
    EXPECT_EQ(r.offered_subprotocols()[2], "v2.bin.example");

    const std::array<std::string_view, 2> supported = {"v2.bin.example", "superchat"};
    EXPECT_EQ(select_subprotocol(r, supported), "superchat");  // the client's order wins
    const std::array<std::string_view, 1> none = {"mqtt"};
    EXPECT_EQ(select_subprotocol(r, none), "");
    EXPECT_EQ(select_subprotocol(r, {}), "");
}

TEST(WsHandshake, RefusesBadRequestsWithTheirStatus) {
    struct Case {
        std::string request;
        int status;
    };
    std::string sixteen = "Sec-WebSocket-Protocol: p0";
    for (int i = 1; i <= 16; ++i) {
        sixteen += ", p" + std::to_string(i);
    }
    const std::vector<Case> cases = {
        {"POST /chat HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405},
        {std::string("HEAD") + rfc_request_with("", "").substr(3), 405},
        {"GET /chat HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {rfc_request_with("Host", ""), 400},
        {rfc_request_with("Host", "Host:"), 400},
        {rfc_request_with("Upgrade", ""), 400},
        {rfc_request_with("Upgrade", "Upgrade: h2c"), 400},
        {rfc_request_with("Upgrade", "Upgrade: websocket2"), 400},
        {rfc_request_with("Connection", ""), 400},
        {rfc_request_with("Connection", "Connection: keep-alive"), 400},
        {rfc_request_with("Sec-WebSocket-Key", ""), 400},
        {rfc_request_with("Sec-WebSocket-Key", "Sec-WebSocket-Key: c2hvcnQ="), 400},
        {rfc_request_with("Sec-WebSocket-Key", "Sec-WebSocket-Key: "), 400},
        {rfc_request_with("Sec-WebSocket-Key",
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
         400},
        {rfc_request_with("Sec-WebSocket-Version", ""), 426},
        {rfc_request_with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426},
        {rfc_request_with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8"), 426},
        {rfc_request_with("Sec-WebSocket-Version",
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13"),
         400},
        {rfc_request_with("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: chat, sup{er}"), 400},
        {rfc_request_with("Sec-WebSocket-Protocol", sixteen), 400},
    };
    for (const Case& c : cases) {
        http1::RequestParser parser;
        const UpgradeRequest r = check_request(parser, c.request);
        EXPECT_EQ(r.http_status, c.status) << c.request;
        ASSERT_NE(r.reason, nullptr) << c.request;
        EXPECT_FALSE(r.ok());
        EXPECT_TRUE(r.key.empty());
    }
    // Exactly 16 subprotocols still fit.
    http1::RequestParser parser;
    const std::string fifteen = sixteen.substr(0, sixteen.rfind(','));
    const UpgradeRequest r =
        check_request(parser, rfc_request_with("Sec-WebSocket-Protocol", fifteen));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.subprotocol_count, kMaxSubprotocols);
}

TEST(WsHandshake, WritesTheRfc101Response) {
    std::array<char, 512> out{};
    const size_t n = write_101_response(out, kRfcKey, "chat");
    EXPECT_EQ(as_text(out, n), kRfcResponse);
    // Without a subprotocol, with extra fields.
    const std::array<http1::HeaderField, 1> extra = {{{"X-Ferry-Node", "node-3"}}};
    const size_t m = write_101_response(out, kRfcKey, {}, extra);
    EXPECT_EQ(as_text(out, m),
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Ferry-Node: node-3\r\n\r\n");
    // Every buffer shorter than the response is refused whole.
    for (size_t size = 0; size < n; ++size) {
        EXPECT_EQ(write_101_response(std::span<char>(out.data(), size), kRfcKey, "chat"), 0U);
    }
}

TEST(WsHandshake, RefusesToWriteFieldsThatWouldBreakTheHead) {
    std::array<char, 512> out{};
    const std::array<http1::HeaderField, 1> injected = {{{"X-A", "v\r\nSet-Cookie: x"}}};
    EXPECT_EQ(write_101_response(out, kRfcKey, {}, injected), 0U);
    const std::array<http1::HeaderField, 1> bad_name = {{{"X A", "v"}}};
    EXPECT_EQ(write_101_response(out, kRfcKey, {}, bad_name), 0U);
    EXPECT_EQ(write_101_response(out, kRfcKey, "chat, superchat"), 0U);
    const std::array<std::string_view, 1> bad_protocol = {"a b"};
    EXPECT_EQ(write_upgrade_request(out, "h", "/", kRfcKey, bad_protocol), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h", "/", kRfcKey, {}, injected), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h", "chat", kRfcKey), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h", "/a b", kRfcKey), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h", "/a#frag", kRfcKey), 0U);
    EXPECT_EQ(write_upgrade_request(out, "", "/", kRfcKey), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h\r\nX: y", "/", kRfcKey), 0U);
    EXPECT_EQ(write_upgrade_request(out, "h", "/", "not a key"), 0U);
}

TEST(WsHandshake, WritesErrorResponsesWithTheirHeadersAndLength) {
    struct Case {
        int status;
        std::string_view status_line;
        std::vector<std::string_view> fields;  // besides Connection, Content-Type/-Length
    };
    const std::vector<Case> cases = {
        {400, "HTTP/1.1 400 Bad Request", {}},
        {403, "HTTP/1.1 403 Forbidden", {}},
        {405, "HTTP/1.1 405 Method Not Allowed", {"Allow: GET"}},
        {426, "HTTP/1.1 426 Upgrade Required", {"Upgrade: websocket", "Sec-WebSocket-Version: 13"}},
        {431, "HTTP/1.1 431 Request Header Fields Too Large", {}},
        {502, "HTTP/1.1 502 Bad Gateway", {}},
        {503, "HTTP/1.1 503 Service Unavailable", {}},
        {504, "HTTP/1.1 504 Gateway Timeout", {}},
    };
    for (const Case& c : cases) {
        std::array<char, 1024> out{};
        const std::string_view reason = "unsupported Sec-WebSocket-Version (13 is supported)";
        const size_t n = write_error_response(out, c.status, reason);
        ASSERT_GT(n, 0U);
        const std::string text = as_text(out, n);
        EXPECT_TRUE(text.starts_with(std::string(c.status_line) + "\r\n")) << text;
        ResponseHeadParser parser;
        const HeadResult r = parser.feed(text);
        ASSERT_EQ(r.status, HeadStatus::Complete) << text;
        EXPECT_EQ(parser.status_code(), c.status);
        const std::string body = text.substr(r.consumed);
        EXPECT_EQ(body, std::string(reason) + "\n");
        EXPECT_EQ(parser.header("content-length"), std::to_string(body.size()));
        EXPECT_EQ(parser.header("content-type"), "text/plain; charset=utf-8");
        EXPECT_TRUE(parser.header("connection")->starts_with("close")) << text;
        for (std::string_view field : c.fields) {
            EXPECT_NE(text.find(std::string(field) + "\r\n"), std::string::npos) << field;
        }
        if (c.status == 426) {
            EXPECT_EQ(parser.header("connection"), "close, Upgrade");
        }
        for (size_t size = 0; size < n; ++size) {
            ASSERT_EQ(write_error_response(std::span<char>(out.data(), size), c.status, reason),
                      0U);
        }
    }
}

TEST(WsHandshake, WritesAnUpgradeRequestTheServerSideAccepts) {
    std::array<char, 1024> out{};
    const std::array<std::string_view, 2> protocols = {"v2.bin.example", "chat"};
    const std::array<http1::HeaderField, 1> extra = {{{"Origin", "https://app.example"}}};
    const size_t n = write_upgrade_request(out, "server.example.com:443", "/chat?x=1", kRfcKey,
                                           protocols, extra);
    const std::string text = as_text(out, n);
    EXPECT_EQ(text,
              "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com:443\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v2.bin.example, chat\r\n"
              "Origin: https://app.example\r\n\r\n");
    http1::RequestParser parser;
    const UpgradeRequest r = check_request(parser, text);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_EQ(parser.target(), "/chat?x=1");
    EXPECT_EQ(r.origin, "https://app.example");
    ASSERT_EQ(r.offered_subprotocols().size(), 2U);
    EXPECT_EQ(r.offered_subprotocols()[1], "chat");
    for (size_t size = 0; size < n; ++size) {
        ASSERT_EQ(write_upgrade_request(std::span<char>(out.data(), size), "server.example.com:443",
                                        "/chat?x=1", kRfcKey, protocols, extra),
                  0U);
    }

    // And the server's answer to it passes the client's checks.
    std::array<char, 512> answer{};
    const std::string_view chosen = select_subprotocol(r, std::array<std::string_view, 1>{"chat"});
    const size_t m = write_101_response(answer, r.key, chosen);
    ResponseHeadParser response_parser;
    const UpgradeResponse response = check_response(response_parser, as_text(answer, m), kRfcKey,
                                                    {protocols.begin(), protocols.end()});
    ASSERT_TRUE(response.ok()) << response.error;
    EXPECT_EQ(response.status_code, 101);
    EXPECT_EQ(response.subprotocol, "chat");
}

TEST(WsHandshake, ChecksTheServerResponse) {
    const std::vector<std::string_view> offered = {"chat", "superchat"};
    ResponseHeadParser parser;
    UpgradeResponse r = check_response(parser, kRfcResponse, kRfcKey, offered);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.subprotocol, "chat");
    // No subprotocol chosen is fine; case does not matter in Upgrade and Connection.
    r = check_response(
        parser,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE"
        "\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        kRfcKey, offered);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.subprotocol, "");

    const std::string base =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    const std::vector<std::pair<std::string, std::vector<std::string_view>>> bad = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", offered},
        {"HTTP/1.1 400 Bad Request\r\n\r\n", offered},
        {"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered},
        {"HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered},
        {"HTTP/1.1 101 x\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered},
        {"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered},
        {"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", offered},
        {"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: S3PPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered},
        {base + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", offered},
        {base + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", offered},
        {base + "Sec-WebSocket-Protocol: mqtt\r\n\r\n", offered},
        {base + "Sec-WebSocket-Protocol: Chat\r\n\r\n", offered},
        {base + "Sec-WebSocket-Protocol: chat\r\n\r\n", {}},
        {base + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n", offered},
    };
    for (const auto& [head, offers] : bad) {
        r = check_response(parser, head, kRfcKey, offers);
        EXPECT_FALSE(r.ok()) << head;
        EXPECT_NE(r.error, nullptr);
        EXPECT_EQ(r.subprotocol, "");
    }
    EXPECT_EQ(
        check_response(parser, "HTTP/1.1 403 Forbidden\r\n\r\n", kRfcKey, offered).status_code,
        403);
    // The accept key belongs to one client key.
    EXPECT_FALSE(check_response(parser, kRfcResponse, "AAAAAAAAAAAAAAAAAAAAAA==", offered).ok());
}

}  // namespace
}  // namespace ferry::proto::ws
