// gRPC status codes (grpc/doc/statuscodes.md) and the text forms the wire and the logs use.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ferry::proto::grpc {

enum class StatusCode : uint8_t {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
};

// "OK", "CANCELLED", ... as grpc-status names them in the docs; "UNKNOWN" for other values.
[[nodiscard]] std::string_view status_name(StatusCode code) noexcept;

// The grpc-status value ("0".."16"): its decimal digits, no sign, no leading zeros past the
// first. Other values, which a peer may send, are not ours to judge: nullopt.
[[nodiscard]] std::optional<StatusCode> parse_status(std::string_view text) noexcept;

// The decimal text of `code` for a grpc-status field (static storage).
[[nodiscard]] std::string_view status_text(StatusCode code) noexcept;

// The HTTP status a gRPC status maps to when an answer cannot be a gRPC response at all
// (the reverse of grpc/doc/http-grpc-status-mapping.md is not defined; this is only for logs).
// The mapping from an HTTP status of a non-gRPC answer to a gRPC status, per
// http-grpc-status-mapping.md: 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
// 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
[[nodiscard]] StatusCode status_from_http(int http_status) noexcept;

}  // namespace ferry::proto::grpc
