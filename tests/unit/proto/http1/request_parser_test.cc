#include "ferry/proto/http1/request_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ferry::proto::http1 {
namespace {

struct Outcome {
    ParseStatus status = ParseStatus::NeedMore;
    int http_status = 0;
    size_t consumed = 0;  // over all feeds, up to the final result
    std::string detail;
    std::string summary;  // everything the accessors expose, after Complete

    bool operator==(const Outcome&) const = default;
};

std::string summarize(const RequestParser& p) {
    std::string s = std::string(p.method()) + " " + std::string(p.target()) + " 1." +
                    std::to_string(p.version_minor()) + " |";
    for (const auto& h : p.headers()) {
        s += std::string(h.name) + ":" + std::string(h.value) + "|";
    }
    s += " cl=" + std::to_string(p.content_length()) + (p.chunked() ? " chunked" : "") +
         (p.connection_close() ? " close" : "") + (p.connection_upgrade() ? " upgrade" : "");
    return s;
}

// Feeds `input` in chunks of `sizes` (remainder last), each chunk a separate allocation that
// dies right after its feed, so views that pointed into the input rather than the parser's own
// copy would show up as wrong text here (and as use-after-free under ASan).
Outcome parse_chunks(std::string_view input, const std::vector<size_t>& sizes,
                     size_t max_head_size = kDefaultMaxHeadSize) {
    RequestParser parser(max_head_size);
    Outcome out;
    size_t pos = 0;
    size_t next = 0;
    while (pos < input.size()) {
        size_t n = next < sizes.size() ? sizes[next++] : input.size() - pos;
        n = std::min(n, input.size() - pos);
        const std::string chunk(input.substr(pos, n));
        const ParseResult r = parser.feed(chunk);
        out.consumed += r.consumed;
        pos += n;
        out.status = r.status;
        if (r.status == ParseStatus::NeedMore) {
            EXPECT_EQ(r.consumed, n);
            continue;
        }
        out.http_status = r.http_status;
        out.detail = r.detail != nullptr ? r.detail : "";
        break;
    }
    if (out.status == ParseStatus::Complete) {
        out.summary = summarize(parser);
    }
    return out;
}

Outcome parse(std::string_view input, size_t max_head_size = kDefaultMaxHeadSize) {
    return parse_chunks(input, {input.size()}, max_head_size);
}

void expect_rejected(std::string_view input, int http_status) {
    const Outcome out = parse(input);
    EXPECT_EQ(out.status, ParseStatus::Error) << input;
    EXPECT_EQ(out.http_status, http_status) << input << " -> " << out.detail;
    EXPECT_FALSE(out.detail.empty());
}

TEST(Http1RequestParser, ParsesAGetWithPathQueryAndHeaders) {
    RequestParser p;
    const std::string_view req =
        "GET /metrics?format=prom&x=1 HTTP/1.1\r\nHost: 10.0.0.1:9090\r\n"
        "User-Agent:  curl/7.88 \r\nAccept:*/*\r\n\r\n";
    const ParseResult r = p.feed(req);
    ASSERT_EQ(r.status, ParseStatus::Complete) << r.detail;
    EXPECT_EQ(r.consumed, req.size());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(p.method(), "GET");
    EXPECT_EQ(p.target(), "/metrics?format=prom&x=1");
    EXPECT_EQ(p.path(), "/metrics");
    EXPECT_EQ(p.query(), "format=prom&x=1");
    EXPECT_EQ(p.version_minor(), 1);
    ASSERT_EQ(p.headers().size(), 3U);
    EXPECT_EQ(p.headers()[1].name, "User-Agent");
    EXPECT_EQ(p.headers()[1].value, "curl/7.88");
    EXPECT_EQ(p.headers()[2].value, "*/*");
    EXPECT_EQ(p.content_length(), -1);
    EXPECT_FALSE(p.chunked());
    EXPECT_FALSE(p.connection_close());
    EXPECT_FALSE(p.connection_upgrade());
}

TEST(Http1RequestParser, LooksUpHeadersCaseInsensitively) {
    RequestParser p;
    ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nX-Trail: a\r\nx-trail: b\r\nEmpty:\r\n\r\n").status,
              ParseStatus::Complete);
    EXPECT_EQ(p.header("X-TRAIL"), "a");
    EXPECT_EQ(p.header("empty"), "");
    EXPECT_EQ(p.header("missing"), std::nullopt);
    EXPECT_EQ(p.header("x-trai"), std::nullopt);
    EXPECT_EQ(p.path(), "/");
    EXPECT_EQ(p.query(), "");
}

TEST(Http1RequestParser, StopsAtTheEndOfTheHeadAndLeavesTheBody) {
    RequestParser p;
    const std::string head = "POST /trigger HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    const ParseResult r = p.feed(head + "{\"n\":1234}\n");
    ASSERT_EQ(r.status, ParseStatus::Complete);
    EXPECT_EQ(r.consumed, head.size());
    EXPECT_EQ(p.content_length(), 11);
}

TEST(Http1RequestParser, ParsesPipelinedRequestsAfterReset) {
    RequestParser p;
    const std::string a = "GET /health HTTP/1.1\r\n\r\n";
    const std::string b = "GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n";
    const std::string both = a + b;
    ParseResult r = p.feed(both);
    ASSERT_EQ(r.status, ParseStatus::Complete);
    ASSERT_EQ(r.consumed, a.size());
    EXPECT_EQ(p.target(), "/health");
    // Until reset the parser repeats its result and takes nothing.
    r = p.feed(std::string_view(both).substr(a.size()));
    EXPECT_EQ(r.status, ParseStatus::Complete);
    EXPECT_EQ(r.consumed, 0U);
    p.reset();
    r = p.feed(std::string_view(both).substr(a.size()));
    ASSERT_EQ(r.status, ParseStatus::Complete);
    EXPECT_EQ(r.consumed, b.size());
    EXPECT_EQ(p.target(), "/ready");
    EXPECT_TRUE(p.connection_close());
    EXPECT_EQ(p.headers().size(), 1U);
}

TEST(Http1RequestParser, SkipsEmptyLinesBeforeTheRequestLine) {
    const Outcome out = parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(out.status, ParseStatus::Complete);
    EXPECT_EQ(out.consumed, 22U);
    EXPECT_EQ(out.summary, "GET / 1.1 | cl=-1");
}

TEST(Http1RequestParser, AllowsAMissingHostInHttp11) {
    EXPECT_EQ(parse("GET /health HTTP/1.1\r\n\r\n").status, ParseStatus::Complete);
}

TEST(Http1RequestParser, RejectsMoreThanOneHost) {
    expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
}

TEST(Http1RequestParser, RejectsAnInvalidHost) {
    expect_rejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").status, ParseStatus::Complete);
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").status, ParseStatus::Complete);
}

TEST(Http1RequestParser, AppliesConnectionPersistenceRules) {
    EXPECT_EQ(parse("GET / HTTP/1.0\r\n\r\n").summary, "GET / 1.0 | cl=-1 close");
    EXPECT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").summary,
              "GET / 1.0 |Connection:Keep-Alive| cl=-1");
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n").summary,
              "GET / 1.1 |Connection:keep-alive, CLOSE| cl=-1 close");
}

TEST(Http1RequestParser, RecognizesAWebSocketUpgradeHead) {
    RequestParser p;
    ASSERT_EQ(p.feed("GET /tunnel HTTP/1.1\r\nHost: ferry\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive,,  Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                  .status,
              ParseStatus::Complete);
    EXPECT_TRUE(p.connection_upgrade());
    EXPECT_EQ(p.header("upgrade"), "websocket");
    EXPECT_EQ(p.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(Http1RequestParser, AcceptsChunkedTransferEncoding) {
    const Outcome out = parse("POST /trigger HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    EXPECT_EQ(out.summary, "POST /trigger 1.1 |Transfer-Encoding:Chunked| cl=-1 chunked");
}

TEST(Http1RequestParser, RejectsTransferEncodingWithContentLength) {
    expect_rejected("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                    400);
    expect_rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                    400);
}

TEST(Http1RequestParser, RejectsTransferEncodingsItCannotFrame) {
    expect_rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    expect_rejected(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        400);
    expect_rejected("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400);
    expect_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_rejected("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
}

TEST(Http1RequestParser, AcceptsRepeatedIdenticalContentLengths) {
    EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").summary,
              "POST / 1.1 |Content-Length:5|Content-Length:5| cl=5");
    EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 7 , 7\r\n\r\n").summary,
              "POST / 1.1 |Content-Length:7 , 7| cl=7");
    EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").summary,
              "POST / 1.1 |Content-Length:0| cl=0");
}

TEST(Http1RequestParser, RejectsInvalidOrConflictingContentLength) {
    for (std::string_view value :
         {"abc", "-1", "+5", "5 5", "0x10", "", ",", "5, 6", "99999999999999999999", "1.0"}) {
        SCOPED_TRACE(value);
        expect_rejected("POST / HTTP/1.1\r\nContent-Length: " + std::string(value) + "\r\n\r\n",
                        400);
    }
    expect_rejected("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n").summary,
              "POST / 1.1 |Content-Length:9223372036854775807| cl=9223372036854775807");
}

TEST(Http1RequestParser, RejectsObsFold) {
    expect_rejected("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n", 400);
}

TEST(Http1RequestParser, RejectsWhitespaceBeforeTheFirstHeader) {
    expect_rejected("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

TEST(Http1RequestParser, RejectsBareCrAndBareLf) {
    expect_rejected("GET / HTTP/1.1\rHost: x\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\n\r\r\n", 400);
    expect_rejected("\rGET / HTTP/1.1\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\nHost: x\n\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nHost: x\r\n\n", 400);
    expect_rejected("\nGET / HTTP/1.1\r\n\r\n", 400);
}

TEST(Http1RequestParser, ReportsTheOffendingByteOffsetForBareLf) {
    const ParseResult r = RequestParser().feed("GET / HTTP/1.1\n");
    EXPECT_EQ(r.status, ParseStatus::Error);
    EXPECT_EQ(r.consumed, 14U);
}

TEST(Http1RequestParser, RejectsInvalidTokenCharactersInMethodAndNames) {
    expect_rejected("G(T / HTTP/1.1\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nx@y: z\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
    expect_rejected(std::string("GET / HTTP/1.1\r\nN\xc3\xa4me: x\r\n\r\n"), 400);
}

TEST(Http1RequestParser, RejectsControlCharactersInValues) {
    expect_rejected(std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26), 400);
    expect_rejected("GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", 400);
    expect_rejected("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400);
    // obs-text and tabs are allowed.
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nX: caf\xc3\xa9\tbar\r\n\r\n").status, ParseStatus::Complete);
}

TEST(Http1RequestParser, RejectsMalformedRequestLines) {
    for (std::string_view line :
         {"GET /", "GET  / HTTP/1.1", "GET / HTTP/1.1 ", "GET /  HTTP/1.1", " GET / HTTP/1.1",
          "GET / http/1.1", "GET / HTTP/1.10", "GET / HTTP/1", "GET / HTTP/x.1",
          "GET /a\x7f HTTP/1.1", "GET /caf\xc3\xa9 HTTP/1.1", "GET\t/ HTTP/1.1"}) {
        SCOPED_TRACE(line);
        expect_rejected(std::string(line) + "\r\n\r\n", 400);
    }
}

TEST(Http1RequestParser, RejectsUnsupportedHttpVersionsWith505) {
    expect_rejected("GET / HTTP/2.0\r\n\r\n", 505);
    expect_rejected("GET / HTTP/0.9\r\n\r\n", 505);
    EXPECT_EQ(parse("GET / HTTP/1.9\r\n\r\n").summary, "GET / 1.9 | cl=-1");
}

TEST(Http1RequestParser, RejectsUnknownMethodsWith501) {
    expect_rejected("BREW /pot HTTP/1.1\r\n\r\n", 501);
    expect_rejected("get / HTTP/1.1\r\n\r\n", 501);  // methods are case-sensitive
    for (std::string_view m :
         {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"}) {
        EXPECT_EQ(parse(std::string(m) + " / HTTP/1.1\r\n\r\n").status, ParseStatus::Complete);
    }
    EXPECT_EQ(parse("CONNECT ferry:443 HTTP/1.1\r\n\r\n").summary, "CONNECT ferry:443 1.1 | cl=-1");
}

TEST(Http1RequestParser, AcceptsAHeadOfExactlyTheMaximumSize) {
    std::string req = "GET / HTTP/1.1\r\nX: ";
    req += std::string(256 - req.size() - 4, 'v') + "\r\n\r\n";
    ASSERT_EQ(req.size(), 256U);
    EXPECT_EQ(parse(req, 256).status, ParseStatus::Complete);
    const Outcome out = parse(req, 255);
    EXPECT_EQ(out.status, ParseStatus::Error);
    EXPECT_EQ(out.http_status, 431);
    EXPECT_EQ(out.consumed, 255U);
}

TEST(Http1RequestParser, RejectsAnUnterminatedHeadOnceItOutgrowsTheLimit) {
    RequestParser p(128);
    const std::string junk(100, 'a');
    EXPECT_EQ(p.feed(junk).status, ParseStatus::NeedMore);
    const ParseResult r = p.feed(junk);
    EXPECT_EQ(r.status, ParseStatus::Error);
    EXPECT_EQ(r.http_status, 431);
    EXPECT_EQ(r.consumed, 28U);
}

TEST(Http1RequestParser, DoesNotCountSkippedEmptyLinesAgainstTheLimit) {
    std::string lines;
    for (int i = 0; i < 100; ++i) {
        lines += "\r\n";
    }
    EXPECT_EQ(parse(lines + "GET / HTTP/1.1\r\n\r\n", 64).status, ParseStatus::Complete);
}

TEST(Http1RequestParser, AcceptsSixtyFourHeadersButNotSixtyFive) {
    std::string req = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 64; ++i) {
        req += 'H';
        req += std::to_string(i);
        req += ": v\r\n";
    }
    const Outcome ok = parse(req + "\r\n");
    EXPECT_EQ(ok.status, ParseStatus::Complete);
    expect_rejected(req + "H64: v\r\n\r\n", 431);
}

TEST(Http1RequestParser, RepeatsAnErrorUntilReset) {
    RequestParser p;
    const ParseResult first = p.feed("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n");
    ASSERT_EQ(first.status, ParseStatus::Error);
    const ParseResult again = p.feed("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(again.status, ParseStatus::Error);
    EXPECT_EQ(again.http_status, first.http_status);
    EXPECT_EQ(again.consumed, 0U);
    EXPECT_STREQ(again.detail, first.detail);
    p.reset();
    EXPECT_EQ(p.feed("GET / HTTP/1.1\r\n\r\n").status, ParseStatus::Complete);
}

// Requests that exercise every scan state and most rejections, for the split tests.
const std::vector<std::string>& split_corpus() {
    static const std::vector<std::string> corpus = {
        "GET /output?limit=5 HTTP/1.1\r\nHost: localhost:9090\r\nAccept: application/json\r\n"
        "Connection: close\r\n\r\nTRAILING",
        "\r\n\r\nPOST /trigger HTTP/1.1\r\nContent-Length: 2\r\nX-Long: " + std::string(300, 'z') +
            "\r\n\r\n{}",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\r\r\n\r\n",
        "GET / HTTP/1.1\r\n\n",
        "GET / HTTP/3.0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nX: " + std::string(600, 'q'),  // too large for the 512-byte parser
    };
    return corpus;
}

TEST(Http1RequestParser, GivesTheSameResultForEveryTwoWaySplit) {
    for (const auto& input : split_corpus()) {
        const Outcome whole = parse(input, 512);
        for (size_t cut = 0; cut <= input.size(); ++cut) {
            ASSERT_EQ(parse_chunks(input, {cut}, 512), whole) << input << " cut at " << cut;
        }
    }
}

TEST(Http1RequestParser, GivesTheSameResultWhenFedByteByByte) {
    for (const auto& input : split_corpus()) {
        const Outcome whole = parse(input, 512);
        EXPECT_EQ(parse_chunks(input, std::vector<size_t>(input.size(), 1), 512), whole) << input;
    }
}

TEST(Http1RequestParser, GivesTheSameResultForRandomChunks) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<size_t> size_of(0, 40);
    for (const auto& input : split_corpus()) {
        const Outcome whole = parse(input, 512);
        for (int round = 0; round < 100; ++round) {
            std::vector<size_t> sizes;
            for (size_t total = 0; total < input.size(); total += sizes.back()) {
                sizes.push_back(size_of(rng));
            }
            ASSERT_EQ(parse_chunks(input, sizes, 512), whole) << input << " round " << round;
        }
    }
}

// Heads larger than the first buffer grow it, fed whole or byte by byte, up to the limit.
TEST(RequestParser, AHeadLargerThanTheFirstBufferStillParsesUpToTheLimit) {
    const std::string cookie(5000, 'c');
    const std::string head = "GET /chat HTTP/1.1\r\nHost: a\r\nCookie: " + cookie + "\r\n\r\n";
    ASSERT_GT(head.size(), kInitialHeadCapacity * 4);
    RequestParser whole;
    EXPECT_EQ(whole.feed(head).status, ParseStatus::Complete);
    EXPECT_EQ(whole.header("cookie").value_or(""), cookie);
    RequestParser bytewise;
    ParseResult r{};
    for (char c : head) {
        r = bytewise.feed(std::string_view(&c, 1));
    }
    EXPECT_EQ(r.status, ParseStatus::Complete);
    EXPECT_EQ(bytewise.path(), "/chat");
    EXPECT_EQ(bytewise.header("cookie").value_or(""), cookie);
    RequestParser small(4096);
    r = small.feed(head);
    EXPECT_EQ(r.status, ParseStatus::Error);
    EXPECT_EQ(r.http_status, 431);
}

}  // namespace
}  // namespace ferry::proto::http1
