#include "ferry/proto/grpc/wire.h"

#include <gtest/gtest.h>

#include <string>

#include "ferry/proto/grpc/status.h"

namespace ferry::proto::grpc {
namespace {

std::string format(uint64_t ns) {
    std::array<char, kMaxTimeoutText> out{};
    return std::string(out.data(), format_timeout(ns, out));
}

TEST(GrpcWire, ParsesEveryTimeoutUnit) {
    EXPECT_EQ(parse_timeout("1H"), uint64_t{3'600'000'000'000});
    EXPECT_EQ(parse_timeout("2M"), uint64_t{120'000'000'000});
    EXPECT_EQ(parse_timeout("3S"), uint64_t{3'000'000'000});
    EXPECT_EQ(parse_timeout("100m"), uint64_t{100'000'000});
    EXPECT_EQ(parse_timeout("7u"), uint64_t{7'000});
    EXPECT_EQ(parse_timeout("99999999n"), uint64_t{99'999'999});
    EXPECT_EQ(parse_timeout("0S"), uint64_t{0});
    EXPECT_EQ(parse_timeout("99999999H"), UINT64_MAX);  // saturates
}

TEST(GrpcWire, RefusesMalformedTimeouts) {
    for (const char* bad : {"", "S", "100", "123456789S", "1s", "1.5S", "-1S", " 1S", "1S "}) {
        EXPECT_FALSE(parse_timeout(bad).has_value()) << bad;
    }
}

TEST(GrpcWire, FormatsTimeoutsInTheFinestUnitThatFitsRoundingUp) {
    EXPECT_EQ(format(0), "0n");
    EXPECT_EQ(format(99'999'999), "99999999n");
    EXPECT_EQ(format(100'000'000), "100000u");
    EXPECT_EQ(format(100'000'001), "100001u");  // up, never earlier
    EXPECT_EQ(format(uint64_t{3'600'000'000'000} * 1000), "3600000S");
    EXPECT_EQ(format(UINT64_MAX), "5124096H");
    for (uint64_t ns : {uint64_t{1}, uint64_t{999}, uint64_t{123'456'789'012}, UINT64_MAX / 3}) {
        const auto back = parse_timeout(format(ns));
        ASSERT_TRUE(back.has_value());
        EXPECT_GE(*back, ns);
    }
}

TEST(GrpcWire, RecognisesGrpcContentTypes) {
    EXPECT_TRUE(is_grpc_content_type("application/grpc"));
    EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
    EXPECT_TRUE(is_grpc_content_type("Application/GRPC+json"));
    EXPECT_TRUE(is_grpc_content_type("application/grpc;charset=utf-8"));
    EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
    EXPECT_FALSE(is_grpc_content_type("application/json"));
    EXPECT_FALSE(is_grpc_content_type("application/grp"));
}

TEST(GrpcWire, PercentEncodesGrpcMessageBothWays) {
    const std::string text = "bad \xc3\xa9 100% \n";
    std::string enc(percent_encoded_size(text), '\0');
    ASSERT_EQ(percent_encode(text, enc), enc.size());
    EXPECT_EQ(enc, "bad %C3%A9 100%25 %0A");
    std::string dec(enc.size(), '\0');
    dec.resize(percent_decode(enc, dec));
    EXPECT_EQ(dec, text);
    // A malformed escape is kept as it is.
    std::string odd(8, '\0');
    odd.resize(percent_decode("%zz%4", odd));
    EXPECT_EQ(odd, "%zz%4");
}

TEST(GrpcStatus, NamesAndParsesCodes) {
    EXPECT_EQ(status_name(StatusCode::Unavailable), "UNAVAILABLE");
    EXPECT_EQ(status_name(static_cast<StatusCode>(99)), "UNKNOWN");
    EXPECT_EQ(parse_status("14"), StatusCode::Unavailable);
    EXPECT_EQ(status_text(StatusCode::DeadlineExceeded), "4");
    EXPECT_FALSE(parse_status("014").has_value());
    EXPECT_FALSE(parse_status("17").has_value());
    EXPECT_EQ(status_from_http(404), StatusCode::Unimplemented);
    EXPECT_EQ(status_from_http(503), StatusCode::Unavailable);
    EXPECT_EQ(status_from_http(500), StatusCode::Unknown);
}

}  // namespace
}  // namespace ferry::proto::grpc
