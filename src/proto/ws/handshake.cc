#include "ferry/proto/ws/handshake.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/proto/http1/field_syntax.h"

namespace ferry::proto::ws {
namespace {

using http1::for_each_element;
using http1::iequals;
using http1::is_field_value;
using http1::is_token;

// RFC 6455 §1.3.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

constexpr int kBadRequest = 400;
constexpr int kMethodNotAllowed = 405;
constexpr int kUpgradeRequired = 426;

bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// Appends to a caller buffer; remembers an overflow so that writers check once, at the end.
class HeadWriter {
  public:
    explicit HeadWriter(std::span<char> out) noexcept : out_(out) {}

    HeadWriter& put(std::string_view s) noexcept {
        if (s.size() > out_.size() - size_) {
            overflow_ = true;
        } else if (!s.empty()) {
            std::memcpy(out_.data() + size_, s.data(), s.size());
            size_ += s.size();
        }
        return *this;
    }
    HeadWriter& put_number(size_t v) noexcept {
        char digits[24];
        const auto r = std::to_chars(digits, digits + sizeof(digits), v);
        return put({digits, static_cast<size_t>(r.ptr - digits)});
    }
    // "name: value\r\n"; an invalid name or value makes the whole head unwritable.
    HeadWriter& field(std::string_view name, std::string_view value) noexcept {
        if (!is_token(name) || !is_field_value(value)) {
            invalid_ = true;
        }
        return put(name).put(": ").put(value).put("\r\n");
    }
    HeadWriter& fields(std::span<const http1::HeaderField> extra) noexcept {
        for (const auto& [name, value] : extra) {
            field(name, value);
        }
        return *this;
    }
    void invalidate() noexcept { invalid_ = true; }
    [[nodiscard]] size_t finish() const noexcept { return overflow_ || invalid_ ? 0 : size_; }

  private:
    std::span<char> out_;
    size_t size_ = 0;
    bool overflow_ = false;
    bool invalid_ = false;
};

const char* reason_phrase(int status) noexcept {
    switch (status) {
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Error";
    }
}

bool list_contains(std::span<const http1::HeaderField> headers, std::string_view name,
                   std::string_view token) noexcept {
    for (const auto& h : headers) {
        if (!iequals(h.name, name)) {
            continue;
        }
        const bool found = !for_each_element(
            h.value, [&](std::string_view element) { return !iequals(element, token); });
        if (found) {
            return true;
        }
    }
    return false;
}

size_t count_fields(std::span<const http1::HeaderField> headers, std::string_view name) noexcept {
    size_t n = 0;
    for (const auto& h : headers) {
        n += iequals(h.name, name) ? 1U : 0U;
    }
    return n;
}

UpgradeRequest refuse(int http_status, const char* reason) noexcept {
    UpgradeRequest r;
    r.http_status = http_status;
    r.reason = reason;
    return r;
}

UpgradeResponse reject(int status_code, const char* error) noexcept {
    UpgradeResponse r;
    r.status_code = status_code;
    r.error = error;
    return r;
}

}  // namespace

std::array<char, kAcceptKeySize> compute_accept_key(std::string_view client_key) noexcept {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    // SHA-1 is what §4.2.2 prescribes; it is not used for security here. Failing means OOM or
    // a broken OpenSSL, which are fatal (STYLE.md "Errors").
    FERRY_CHECK(ctx != nullptr);
    const bool ok = EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr) == 1 &&
                    EVP_DigestUpdate(ctx, client_key.data(), client_key.size()) == 1 &&
                    EVP_DigestUpdate(ctx, kGuid.data(), kGuid.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, digest, &digest_size) == 1;
    EVP_MD_CTX_free(ctx);
    FERRY_CHECK(ok && digest_size == 20);
    unsigned char encoded[kAcceptKeySize + 1];  // EVP_EncodeBlock adds a NUL
    FERRY_CHECK(EVP_EncodeBlock(encoded, digest, 20) == static_cast<int>(kAcceptKeySize));
    std::array<char, kAcceptKeySize> accept;
    std::memcpy(accept.data(), encoded, kAcceptKeySize);
    return accept;
}

std::array<char, kClientKeySize> encode_client_key(std::span<const std::byte, 16> nonce) noexcept {
    unsigned char encoded[kClientKeySize + 1];
    FERRY_CHECK(EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(nonce.data()),
                                16) == static_cast<int>(kClientKeySize));
    std::array<char, kClientKeySize> key;
    std::memcpy(key.data(), encoded, kClientKeySize);
    return key;
}

bool is_valid_client_key(std::string_view key) noexcept {
    if (key.size() != kClientKeySize || !key.ends_with("==")) {
        return false;
    }
    for (size_t i = 0; i < kClientKeySize - 2; ++i) {
        if (!is_base64_char(key[i])) {
            return false;
        }
    }
    return true;
}

UpgradeRequest validate_upgrade_request(const http1::RequestParser& request) noexcept {
    const std::span<const http1::HeaderField> headers = request.headers();
    // RFC 6455 §4.2.1 items 1-6, in that order, so the answer names the first thing wrong.
    if (request.method() != "GET") {
        return refuse(kMethodNotAllowed, "WebSocket handshake needs GET");
    }
    if (request.version_minor() < 1) {
        return refuse(kBadRequest, "WebSocket handshake needs HTTP/1.1");
    }
    const std::optional<std::string_view> host = request.header("host");
    if (!host.has_value() || host->empty()) {
        return refuse(kBadRequest, "missing Host");
    }
    if (!list_contains(headers, "upgrade", "websocket")) {
        return refuse(kBadRequest, "Upgrade does not name websocket");
    }
    if (!request.connection_upgrade()) {
        return refuse(kBadRequest, "Connection does not list upgrade");
    }
    const size_t keys = count_fields(headers, "sec-websocket-key");
    const std::string_view key = request.header("sec-websocket-key").value_or("");
    if (keys == 0) {
        return refuse(kBadRequest, "missing Sec-WebSocket-Key");
    }
    if (keys > 1) {
        return refuse(kBadRequest, "more than one Sec-WebSocket-Key");  // §11.3.1
    }
    if (!is_valid_client_key(key)) {
        return refuse(kBadRequest, "Sec-WebSocket-Key is not base64 of 16 bytes");
    }
    // §4.4: a version this server does not speak is answered 426 with the one it does.
    const size_t versions = count_fields(headers, "sec-websocket-version");
    if (versions > 1) {
        return refuse(kBadRequest, "more than one Sec-WebSocket-Version");  // §11.3.5
    }
    if (versions == 0 || request.header("sec-websocket-version") != "13") {
        return refuse(kUpgradeRequired, "unsupported Sec-WebSocket-Version (13 is supported)");
    }

    UpgradeRequest r;
    r.key = key;
    r.host = *host;
    r.origin = request.header("origin").value_or("");
    r.extensions = request.header("sec-websocket-extensions").value_or("");
    const char* bad_protocol = nullptr;
    for (const auto& h : headers) {
        if (!iequals(h.name, "sec-websocket-protocol")) {
            continue;
        }
        // §4.1 item 10: 1#token, possibly over several lines (RFC 9110 §5.3 combines them).
        for_each_element(h.value, [&](std::string_view element) {
            if (!is_token(element)) {
                bad_protocol = "Sec-WebSocket-Protocol element is not a token";
            } else if (r.subprotocol_count == kMaxSubprotocols) {
                bad_protocol = "too many Sec-WebSocket-Protocol elements";
            } else {
                r.subprotocols[r.subprotocol_count++] = element;
            }
            return bad_protocol == nullptr;
        });
        if (bad_protocol != nullptr) {
            return refuse(kBadRequest, bad_protocol);
        }
    }
    return r;
}

std::string_view select_subprotocol(const UpgradeRequest& request,
                                    std::span<const std::string_view> supported) noexcept {
    for (std::string_view offered : request.offered_subprotocols()) {
        for (std::string_view mine : supported) {
            if (offered == mine) {
                return offered;
            }
        }
    }
    return {};
}

size_t write_101_response(std::span<char> out, std::string_view client_key,
                          std::string_view subprotocol,
                          std::span<const http1::HeaderField> extra) noexcept {
    const std::array<char, kAcceptKeySize> accept = compute_accept_key(client_key);
    HeadWriter w(out);
    w.put("HTTP/1.1 101 Switching Protocols\r\n")
        .put("Upgrade: websocket\r\n")
        .put("Connection: Upgrade\r\n")
        .field("Sec-WebSocket-Accept", {accept.data(), accept.size()});
    if (!subprotocol.empty()) {
        if (!is_token(subprotocol)) {
            w.invalidate();
        }
        w.field("Sec-WebSocket-Protocol", subprotocol);
    }
    w.fields(extra).put("\r\n");
    return w.finish();
}

size_t write_error_response(std::span<char> out, int http_status,
                            std::string_view reason) noexcept {
    FERRY_DCHECK(http_status >= 400 && http_status <= 599);
    HeadWriter w(out);
    w.put("HTTP/1.1 ").put_number(static_cast<size_t>(http_status)).put(" ");
    w.put(reason_phrase(http_status)).put("\r\n");
    if (http_status == kUpgradeRequired) {
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to, and §7.8 wants "upgrade"
        // among the connection options whenever Upgrade is sent.
        w.put("Connection: close, Upgrade\r\nUpgrade: websocket\r\n");
        w.put("Sec-WebSocket-Version: 13\r\n");
    } else {
        w.put("Connection: close\r\n");
    }
    if (http_status == kMethodNotAllowed) {
        w.put("Allow: GET\r\n");  // RFC 9110 §15.5.6
    }
    if (http_status == 503) {
        // Draining, or the tunnel went: a client may come back at once (RFC 9110 §10.2.3).
        w.put("Retry-After: 1\r\n");
    }
    w.put("Content-Type: text/plain; charset=utf-8\r\n");
    w.put("Content-Length: ").put_number(reason.size() + 1).put("\r\n\r\n");
    w.put(reason).put("\n");
    return w.finish();
}

size_t write_upgrade_request(std::span<char> out, std::string_view host,
                             std::string_view path_and_query, std::string_view key,
                             std::span<const std::string_view> subprotocols,
                             std::span<const http1::HeaderField> extra) noexcept {
    HeadWriter w(out);
    // §4.1 item 3: the request-target is origin-form ("/path?query") without a fragment.
    bool valid_target = path_and_query.starts_with('/');
    for (char c : path_and_query) {
        const auto u = static_cast<unsigned char>(c);
        valid_target = valid_target && u > ' ' && u < 0x7f && c != '#';
    }
    if (!valid_target || host.empty() || !is_valid_client_key(key)) {
        w.invalidate();
    }
    w.put("GET ").put(path_and_query).put(" HTTP/1.1\r\n");
    w.field("Host", host)
        .put("Upgrade: websocket\r\n")
        .put("Connection: Upgrade\r\n")
        .field("Sec-WebSocket-Key", key)
        .put("Sec-WebSocket-Version: 13\r\n");
    if (!subprotocols.empty()) {
        w.put("Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < subprotocols.size(); ++i) {
            if (!is_token(subprotocols[i])) {
                w.invalidate();
            }
            w.put(i == 0 ? "" : ", ").put(subprotocols[i]);
        }
        w.put("\r\n");
    }
    w.fields(extra).put("\r\n");
    return w.finish();
}

UpgradeResponse validate_upgrade_response(
    const ResponseHeadParser& response, std::string_view client_key,
    std::span<const std::string_view> offered_subprotocols) noexcept {
    const int status = response.status_code();
    const std::span<const http1::HeaderField> headers = response.headers();
    // RFC 6455 §4.1, the client's checks 1-6 on the server's handshake.
    if (status != 101) {
        return reject(status, "server did not switch protocols");
    }
    if (response.version_minor() < 1) {
        return reject(status, "101 response is not HTTP/1.1");
    }
    if (count_fields(headers, "upgrade") != 1 ||
        !iequals(response.header("upgrade").value_or(""), "websocket")) {
        return reject(status, "Upgrade is not websocket");
    }
    if (!list_contains(headers, "connection", "upgrade")) {
        return reject(status, "Connection does not list upgrade");
    }
    const std::array<char, kAcceptKeySize> expected = compute_accept_key(client_key);
    if (count_fields(headers, "sec-websocket-accept") != 1 ||
        response.header("sec-websocket-accept") !=
            std::string_view(expected.data(), expected.size())) {
        return reject(status, "Sec-WebSocket-Accept does not match the key");
    }
    for (const auto& h : headers) {
        if (iequals(h.name, "sec-websocket-extensions") && !h.value.empty()) {
            return reject(status, "server chose an extension that was not offered");
        }
    }
    UpgradeResponse r;
    r.status_code = status;
    const size_t protocols = count_fields(headers, "sec-websocket-protocol");
    if (protocols > 1) {
        return reject(status, "more than one Sec-WebSocket-Protocol");
    }
    if (protocols == 1) {
        const std::string_view chosen = response.header("sec-websocket-protocol").value_or("");
        bool offered = false;
        for (std::string_view p : offered_subprotocols) {
            offered = offered || p == chosen;
        }
        if (!offered) {
            return reject(status, "server chose a subprotocol that was not offered");
        }
        r.subprotocol = chosen;
    }
    return r;
}

}  // namespace ferry::proto::ws
