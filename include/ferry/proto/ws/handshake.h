// The WebSocket opening handshake (RFC 6455 §4): a server checks an Upgrade request parsed by
// http1::RequestParser and writes its 101 (or error) answer; a client writes the Upgrade request
// and checks the 101 parsed by ResponseHeadParser. Pure functions over caller buffers.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

#include "ferry/proto/http1/request_parser.h"
#include "ferry/proto/ws/response_head_parser.h"

namespace ferry::proto::ws {

inline constexpr size_t kAcceptKeySize = 28;  // base64 of a SHA-1 digest
inline constexpr size_t kClientKeySize = 24;  // base64 of 16 bytes
inline constexpr size_t kMaxSubprotocols = 16;

// Sec-WebSocket-Accept for `client_key` (§4.2.2 item 5.4): base64(SHA-1(key + the RFC's GUID)).
[[nodiscard]] std::array<char, kAcceptKeySize> compute_accept_key(
    std::string_view client_key) noexcept;
// A client's Sec-WebSocket-Key from 16 bytes the caller drew from a CSPRNG (§4.1: random and
// fresh for every connection).
[[nodiscard]] std::array<char, kClientKeySize> encode_client_key(
    std::span<const std::byte, 16> nonce) noexcept;
// 22 base64 characters and "==", i.e. what decodes to 16 bytes (§4.1 item 7). The value of the
// last character's unused bits is not checked, as lenient decoders ignore them too.
[[nodiscard]] bool is_valid_client_key(std::string_view key) noexcept;

// The outcome of checking an Upgrade request. On failure http_status is 400, 405 or 426 and
// `reason` a static text: answer with write_error_response(http_status, reason) and close. On
// success the views point into the RequestParser's copy of the head (valid until its reset()).
struct UpgradeRequest {
    int http_status = 0;
    const char* reason = nullptr;
    std::string_view key;     // Sec-WebSocket-Key
    std::string_view host;    // Host
    std::string_view origin;  // Origin; empty when absent (non-browser clients)
    // The first Sec-WebSocket-Extensions value, empty when none. ferry negotiates no extension
    // (an offer is simply not answered, §9.1); further lines are in RequestParser::headers().
    std::string_view extensions;
    // Sec-WebSocket-Protocol tokens in the client's order, over every such line.
    std::array<std::string_view, kMaxSubprotocols> subprotocols{};
    size_t subprotocol_count = 0;

    [[nodiscard]] bool ok() const noexcept { return http_status == 0; }
    [[nodiscard]] std::span<const std::string_view> offered_subprotocols() const noexcept {
        return {subprotocols.data(), subprotocol_count};
    }
};

// Checks a parsed request head (§4.2.1): GET (else 405), HTTP/1.1 or later, a Host, Upgrade
// listing "websocket", Connection listing "upgrade", exactly one Sec-WebSocket-Key that
// is_valid_client_key() accepts, Sec-WebSocket-Protocol made of tokens (at most 16), all 400
// otherwise; exactly one Sec-WebSocket-Version and it is 13 (else 426, which
// write_error_response() sends with "Sec-WebSocket-Version: 13", §4.4). Names are compared
// case-insensitively, as are the Upgrade and Connection tokens. The path and Origin are the
// caller's policy (404 / 403).
[[nodiscard]] UpgradeRequest validate_upgrade_request(const http1::RequestParser& request) noexcept;

// The first subprotocol the client offered that `supported` contains (exact match), or empty.
[[nodiscard]] std::string_view select_subprotocol(
    const UpgradeRequest& request, std::span<const std::string_view> supported) noexcept;

// The response writers and write_upgrade_request() return the bytes written at the start of
// `out`, or 0 when `out` is too small or an argument would break the head: a field name that is
// not a token, a value with CR, LF or another control character, a subprotocol that is not a
// token. Callers pass their own text, so 0 is a bug or an undersized buffer, never peer input.

// 101 Switching Protocols with Sec-WebSocket-Accept for `client_key`, the chosen `subprotocol`
// (omitted when empty; it must be one the client offered) and `extra` fields.
[[nodiscard]] size_t write_101_response(std::span<char> out, std::string_view client_key,
                                        std::string_view subprotocol = {},
                                        std::span<const http1::HeaderField> extra = {}) noexcept;

// A refusal with "Connection: close" and `reason` plus a newline as a text/plain body with its
// Content-Length. 426 adds "Upgrade: websocket" and "Sec-WebSocket-Version: 13"; 405 adds
// "Allow: GET". Statuses without a known reason phrase are written with "Error".
[[nodiscard]] size_t write_error_response(std::span<char> out, int http_status,
                                          std::string_view reason) noexcept;

// A client's Upgrade request for `path_and_query` (origin-form, starting with '/') on `host`
// with `key` (from encode_client_key), offering `subprotocols` in order of preference. It offers
// no extension.
[[nodiscard]] size_t write_upgrade_request(std::span<char> out, std::string_view host,
                                           std::string_view path_and_query, std::string_view key,
                                           std::span<const std::string_view> subprotocols = {},
                                           std::span<const http1::HeaderField> extra = {}) noexcept;

// The outcome of checking the server's answer. `error` is null on success, else a static reason
// and the client fails the connection (§4.1: no Close frame, the TCP connection is closed).
struct UpgradeResponse {
    const char* error = nullptr;
    int status_code = 0;           // as received
    std::string_view subprotocol;  // chosen by the server, empty when none; views the parser
    [[nodiscard]] bool ok() const noexcept { return error == nullptr; }
};

// Checks a parsed response head against the request (§4.1, the client's checks 1-6): status
// 101, Upgrade "websocket" and Connection listing "upgrade" (case-insensitive),
// Sec-WebSocket-Accept matching `client_key`, no Sec-WebSocket-Extensions (none was offered),
// and at most one Sec-WebSocket-Protocol, naming one of `offered_subprotocols`.
[[nodiscard]] UpgradeResponse validate_upgrade_response(
    const ResponseHeadParser& response, std::string_view client_key,
    std::span<const std::string_view> offered_subprotocols) noexcept;

}  // namespace ferry::proto::ws
