// The protobuf encoding (varints, tags, length-delimited fields) of proto/lane7.proto's two
// messages, by hand: four fields do not justify libprotobuf on the data plane. Unknown fields
// are skipped, as protobuf requires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::proto::grpc::lane7 {

inline constexpr std::string_view kSendPath = "/ferry.lane7.Lane7/Send";
inline constexpr std::string_view kStreamPath = "/ferry.lane7.Lane7/Stream";

// Message { bytes payload = 1; }: the payload (a view of `wire`), or false when `wire` is not a
// well-formed protobuf message (truncated, a bad wire type, a group).
[[nodiscard]] bool decode_message(std::span<const std::byte> wire,
                                  std::string_view* payload) noexcept;

// Message { payload }, appended to `out` (for clients and tests).
void encode_message(std::string_view payload, std::string* out);

// Result { payload = 1; repeated trail = 2; shard = 3 }, appended to `out`.
void encode_result(std::string_view payload, std::span<const std::string> trail, uint32_t shard,
                   std::string* out);

struct DecodedResult {
    std::string payload;
    std::vector<std::string> trail;
    uint32_t shard = 0;
};
// For tests and the initiator's /trigger: false when `wire` is malformed.
[[nodiscard]] bool decode_result(std::span<const std::byte> wire, DecodedResult* out);

}  // namespace ferry::proto::grpc::lane7
