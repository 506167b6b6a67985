#include "ferry/proto/ws/response_head_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::proto::ws {
namespace {

struct Outcome {
    HeadStatus status = HeadStatus::NeedMore;
    size_t consumed = 0;  // over all feeds, up to the final result
    std::string detail;
    std::string summary;  // everything the accessors expose, after Complete

    bool operator==(const Outcome&) const = default;
};

std::string summarize(const ResponseHeadParser& p) {
    std::string s = "1." + std::to_string(p.version_minor()) + " " +
                    std::to_string(p.status_code()) + " '" + std::string(p.reason_phrase()) + "' |";
    for (const auto& h : p.headers()) {
        s += std::string(h.name) + ":" + std::string(h.value) + "|";
    }
    return s;
}

// Feeds `input` in chunks of `sizes` (remainder last), each a separate copy that dies after its
// feed, so a view into the input instead of the parser's copy shows up (ASan, wrong text).
Outcome parse_chunks(std::string_view input, const std::vector<size_t>& sizes,
                     size_t max_head_size = kDefaultMaxResponseHeadSize) {
    ResponseHeadParser parser(max_head_size);
    Outcome out;
    size_t pos = 0;
    size_t next = 0;
    while (pos < input.size()) {
        size_t n = next < sizes.size() ? sizes[next++] : input.size() - pos;
        n = std::min(n, input.size() - pos);
        const std::string chunk(input.substr(pos, n));
        const HeadResult r = parser.feed(chunk);
        out.consumed += r.consumed;
        pos += n;
        out.status = r.status;
        if (r.status == HeadStatus::NeedMore) {
            EXPECT_EQ(r.consumed, n);
            continue;
        }
        out.detail = r.detail != nullptr ? r.detail : "";
        break;
    }
    if (out.status == HeadStatus::Complete) {
        out.summary = summarize(parser);
    }
    return out;
}

// Whole, every split in two, byte by byte: all the same outcome.
Outcome parse_every_split(std::string_view input) {
    Outcome whole = parse_chunks(input, {input.size()});
    for (size_t k = 1; k < input.size(); ++k) {
        EXPECT_EQ(parse_chunks(input, {k}), whole) << "split at " << k;
    }
    EXPECT_EQ(parse_chunks(input, std::vector<size_t>(input.size(), 1)), whole) << "bytewise";
    return whole;
}

void expect_rejected(std::string_view input) {
    const Outcome out = parse_every_split(input);
    EXPECT_EQ(out.status, HeadStatus::Error) << input;
    EXPECT_FALSE(out.detail.empty());
}

// RFC 6455 §1.3.
constexpr std::string_view kRfcResponse =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n";

TEST(WsResponseHeadParser, ParsesTheRfcResponseInEverySplit) {
    const Outcome out = parse_every_split(kRfcResponse);
    ASSERT_EQ(out.status, HeadStatus::Complete) << out.detail;
    EXPECT_EQ(out.consumed, kRfcResponse.size());
    EXPECT_EQ(out.summary,
              "1.1 101 'Switching Protocols' |Upgrade:websocket|Connection:Upgrade|"
              "Sec-WebSocket-Accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=|Sec-WebSocket-Protocol:chat|");
}

TEST(WsResponseHeadParser, LeavesTheFramesAfterTheHead) {
    ResponseHeadParser p;
    const std::string input = std::string(kRfcResponse) + "\x81\x02hi";
    const HeadResult r = p.feed(input);
    ASSERT_EQ(r.status, HeadStatus::Complete);
    EXPECT_EQ(r.consumed, kRfcResponse.size());
    EXPECT_EQ(p.header("SEC-WEBSOCKET-PROTOCOL"), "chat");
    EXPECT_EQ(p.header("missing"), std::nullopt);
    // Until reset the parser repeats its result and takes nothing.
    EXPECT_EQ(p.feed("more").consumed, 0U);
    EXPECT_EQ(p.feed("more").status, HeadStatus::Complete);
    p.reset();
    const HeadResult again = p.feed("HTTP/1.0 404 Not Found\r\nX-A:  b \r\n\r\n");
    ASSERT_EQ(again.status, HeadStatus::Complete);
    EXPECT_EQ(p.status_code(), 404);
    EXPECT_EQ(p.version_minor(), 0);
    EXPECT_EQ(p.reason_phrase(), "Not Found");
    ASSERT_EQ(p.headers().size(), 1U);
    EXPECT_EQ(p.headers()[0].value, "b");
}

TEST(WsResponseHeadParser, AcceptsAnEmptyOrMissingReasonPhrase) {
    EXPECT_EQ(parse_every_split("HTTP/1.1 101 \r\n\r\n").summary, "1.1 101 '' |");
    EXPECT_EQ(parse_every_split("HTTP/1.1 101\r\n\r\n").summary, "1.1 101 '' |");
    EXPECT_EQ(parse_every_split("HTTP/1.1 200 OK, fine\r\nA:\r\n\r\n").summary,
              "1.1 200 'OK, fine' |A:|");
}

TEST(WsResponseHeadParser, RejectsMalformedStatusLines) {
    for (std::string_view bad :
         {"\r\n\r\n", "HTTP/1.1\r\n\r\n", "HTTP/1.1 10\r\n\r\n", "HTTP/1.1 1011 x\r\n\r\n",
          "HTTP/1.1 10x x\r\n\r\n", "HTTP/1.1  101 x\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
          "http/1.1 101 x\r\n\r\n", "HTTP/11 101 x\r\n\r\n", "HTTP/2 101 x\r\n\r\n",
          "HTTP/2.0 101 x\r\n\r\n", "HTTP/1.1 101 bad\x01reason\r\n\r\n", "ICY 200 OK\r\n\r\n"}) {
        expect_rejected(bad);
    }
}

TEST(WsResponseHeadParser, RejectsWhatRequestParserRejectsInFields) {
    using namespace std::string_view_literals;
    for (std::string_view bad : {
             "HTTP/1.1 101 x\nUpgrade: websocket\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\nUpgrade: websocket\n\r\n"sv,
             "HTTP/1.1 101 x\r\nUpgrade: web\rsocket\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n folded\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\nNo colon\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\n: empty name\r\n\r\n"sv,
             "HTTP/1.1 101 x\r\nX: nul\0inside\r\n\r\n"sv,
         }) {
        expect_rejected(bad);
    }
}

TEST(WsResponseHeadParser, BoundsTheHeadSizeAndFieldCount) {
    std::string head = "HTTP/1.1 101 x\r\n";
    head += "X-Long: " + std::string(200, 'l') + "\r\n\r\n";
    EXPECT_EQ(parse_chunks(head, {head.size()}, 128).status, HeadStatus::Error);
    EXPECT_EQ(parse_chunks(head, {head.size()}, head.size()).status, HeadStatus::Complete);
    std::string many = "HTTP/1.1 101 x\r\n";
    for (size_t i = 0; i <= kMaxResponseHeaderFields; ++i) {
        many += "X-" + std::to_string(i) + ": v\r\n";
    }
    many += "\r\n";
    EXPECT_EQ(parse_chunks(many, {many.size()}).status, HeadStatus::Error);
}

}  // namespace
}  // namespace ferry::proto::ws
