#include "ferry/role/route_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>

#include "absl/strings/str_format.h"

namespace ferry::role {

namespace {

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// RFC 3986 §2.1 percent-decoding, with the form encoding's '+' for a space; a '%' not followed
// by two hex digits stays as it is.
void percent_decode(std::string_view in, KeyBuffer* out) noexcept {
    out->size = 0;
    for (size_t i = 0; i < in.size() && out->size < out->text.size(); ++i) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < in.size()) {
            const int hi = hex_digit(in[i + 1]);
            const int lo = hex_digit(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = static_cast<char>(hi * 16 + lo);
                i += 2;
            }
        }
        out->text[out->size++] = c;
    }
}

}  // namespace

absl::StatusOr<RouteKeyRule> parse_route_key(std::string_view text) {
    RouteKeyRule rule;
    if (text == "client-address") {
        rule.source = RouteKeySource::ClientAddress;
        rule.name.clear();
        return rule;
    }
    const size_t colon = text.find(':');
    const std::string_view kind = text.substr(0, colon);
    const std::string_view name =
        colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
    if ((kind != "header" && kind != "query") || name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("'%s': expected header:NAME, query:NAME or client-address", text));
    }
    rule.source = kind == "header" ? RouteKeySource::Header : RouteKeySource::Query;
    rule.name = std::string(name);
    return rule;
}

std::string route_key_text(const RouteKeyRule& rule) {
    switch (rule.source) {
        case RouteKeySource::Header:
            return "header:" + rule.name;
        case RouteKeySource::Query:
            return "query:" + rule.name;
        case RouteKeySource::ClientAddress:
            break;
    }
    return "client-address";
}

bool query_param(std::string_view query, std::string_view name, KeyBuffer* out) noexcept {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = pair.find('=');
        if (eq == std::string_view::npos || pair.substr(0, eq) != name) {
            continue;
        }
        percent_decode(pair.substr(eq + 1), out);
        return out->size > 0;
    }
    return false;
}

bool client_address_key(int fd, KeyBuffer* out) noexcept {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    out->size = 0;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return false;
    }
    const void* ip = nullptr;
    if (ss.ss_family == AF_INET) {
        ip = &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr;
    } else if (ss.ss_family == AF_INET6) {
        ip = &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
    } else {
        return false;
    }
    if (inet_ntop(ss.ss_family, ip, out->text.data(), static_cast<socklen_t>(out->text.size())) ==
        nullptr) {
        return false;
    }
    out->size = std::strlen(out->text.data());
    return true;
}

std::string_view request_route_key(const RouteKeyRule& rule,
                                   const proto::http1::RequestParser& request,
                                   KeyBuffer* buffer) noexcept {
    switch (rule.source) {
        case RouteKeySource::Header: {
            const std::optional<std::string_view> v = request.header(rule.name);
            return v.has_value() ? *v : std::string_view();
        }
        case RouteKeySource::Query:
            return query_param(request.query(), rule.name, buffer) ? buffer->view()
                                                                   : std::string_view();
        case RouteKeySource::ClientAddress:
            break;
    }
    return {};
}

}  // namespace ferry::role
