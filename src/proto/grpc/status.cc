#include "ferry/proto/grpc/status.h"

#include <array>

namespace ferry::proto::grpc {

namespace {

constexpr std::array<std::string_view, 17> kNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};
constexpr std::array<std::string_view, 17> kTexts = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
};

}  // namespace

std::string_view status_name(StatusCode code) noexcept {
    const auto i = static_cast<size_t>(code);
    return i < kNames.size() ? kNames[i] : "UNKNOWN";
}

std::string_view status_text(StatusCode code) noexcept {
    const auto i = static_cast<size_t>(code);
    return i < kTexts.size() ? kTexts[i] : "2";
}

std::optional<StatusCode> parse_status(std::string_view text) noexcept {
    for (size_t i = 0; i < kTexts.size(); ++i) {
        if (text == kTexts[i]) {
            return static_cast<StatusCode>(i);
        }
    }
    return std::nullopt;
}

StatusCode status_from_http(int http_status) noexcept {
    switch (http_status) {
        case 400:
            return StatusCode::Internal;
        case 401:
            return StatusCode::Unauthenticated;
        case 403:
            return StatusCode::PermissionDenied;
        case 404:
            return StatusCode::Unimplemented;
        case 429:
        case 502:
        case 503:
        case 504:
            return StatusCode::Unavailable;
        default:
            return StatusCode::Unknown;
    }
}

}  // namespace ferry::proto::grpc
