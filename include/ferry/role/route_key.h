// The routing key of a client (--route-key): which part of its request names the key the
// initiator hashes to pick a terminator, and which travels in the stream's OPEN. A WebSocket
// client's key comes from its Upgrade request (a header or a query parameter); a client that has
// none, and every TCP client, is keyed by its address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ferry/proto/http1/request_parser.h"

namespace ferry::role {

enum class RouteKeySource : uint8_t { Header, Query, ClientAddress };

// --route-key: header:NAME, query:NAME or client-address.
struct RouteKeyRule {
    RouteKeySource source = RouteKeySource::Header;
    std::string name = "X-Routing-Key";  // the header or query parameter
};

// Parses a --route-key value; the error names what is accepted.
[[nodiscard]] absl::StatusOr<RouteKeyRule> parse_route_key(std::string_view text);
// "header:X-Routing-Key", as the flag is written.
[[nodiscard]] std::string route_key_text(const RouteKeyRule& rule);

// Longest key taken from a query parameter, after percent-decoding; the rest is cut off.
inline constexpr size_t kMaxQueryKey = 512;

// A key held by value: a decoded query parameter or a client address. No allocation.
struct KeyBuffer {
    std::array<char, kMaxQueryKey> text{};
    size_t size = 0;

    [[nodiscard]] std::string_view view() const noexcept { return {text.data(), size}; }
};

// The value of query parameter `name` in `query` ("a=1&b=2", no '?'), percent-decoded ('+' is a
// space) into `out`; false when the query has no such parameter. An empty value counts as absent.
[[nodiscard]] bool query_param(std::string_view query, std::string_view name,
                               KeyBuffer* out) noexcept;

// The address of the peer of connected socket `fd` as text (the IP, without the port, so one
// client host keeps its terminator across connections); false when getpeername fails.
[[nodiscard]] bool client_address_key(int fd, KeyBuffer* out) noexcept;

// The routing key of a parsed Upgrade request under `rule`: a header's value (a view into the
// request), or a query parameter decoded into `buffer`. Empty when the request has none (or
// the rule is client-address): the caller keys the client by its address.
[[nodiscard]] std::string_view request_route_key(const RouteKeyRule& rule,
                                                 const proto::http1::RequestParser& request,
                                                 KeyBuffer* buffer) noexcept;

}  // namespace ferry::role
