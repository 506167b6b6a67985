#include "ferry/proto/http1/request_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "ferry/base/check.h"
#include "ferry/proto/http1/field_syntax.h"

namespace ferry::proto::http1 {
namespace {

constexpr int kBadRequest = 400;
constexpr int kNotImplemented = 501;
constexpr int kHeadTooLarge = 431;
constexpr int kVersionNotSupported = 505;

// RFC 3986 characters of uri-host [":" port], IP literals included.
bool is_host(std::string_view s) noexcept {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && std::string_view("-._~%!$&'()*+,;=:[]").find(ch) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

// Returns -1 unless `s` is 1*DIGIT that fits an int64_t.
int64_t parse_length(std::string_view s) noexcept {
    if (s.empty()) {
        return -1;
    }
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return -1;
        }
        const int64_t digit = c - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) {
            return -1;
        }
        v = v * 10 + digit;
    }
    return v;
}

bool is_known_method(std::string_view m) noexcept {
    for (std::string_view known :
         {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}) {
        if (m == known) {
            return true;
        }
    }
    return false;
}

}  // namespace

RequestParser::RequestParser(size_t max_head_size) noexcept
    : capacity_(std::min(max_head_size, kInitialHeadCapacity)), max_head_size_(max_head_size) {
    FERRY_CHECK(max_head_size >= 64);
    head_ = std::make_unique_for_overwrite<char[]>(capacity_);
}

bool RequestParser::grow() noexcept {
    if (capacity_ == max_head_size_) {
        return false;
    }
    // The views into the head are made only once it is complete, so moving it is safe here.
    const size_t bigger = std::min(capacity_ * 4, max_head_size_);
    auto head = std::make_unique_for_overwrite<char[]>(bigger);
    std::memcpy(head.get(), head_.get(), size_);
    head_ = std::move(head);
    capacity_ = bigger;
    return true;
}

void RequestParser::reset() noexcept {
    size_ = 0;
    detail_ = nullptr;
    error_status_ = 0;
    scan_ = Scan::Start;
    failed_ = false;
    method_ = {};
    target_ = {};
    version_minor_ = 1;
    header_count_ = 0;
    content_length_ = -1;
    chunked_ = false;
    connection_close_ = false;
    connection_upgrade_ = false;
}

ParseResult RequestParser::fail(size_t consumed, int http_status, const char* detail) noexcept {
    failed_ = true;
    error_status_ = http_status;
    detail_ = detail;
    return {consumed, ParseStatus::Error, http_status, detail};
}

ParseResult RequestParser::feed(std::span<const std::byte> input) noexcept {
    if (failed_) {
        return {0, ParseStatus::Error, error_status_, detail_};
    }
    if (scan_ == Scan::Done) {
        return {0, ParseStatus::Complete, 0, nullptr};
    }
    const auto* in = reinterpret_cast<const char*>(input.data());
    for (size_t i = 0; i < input.size(); ++i) {
        const char c = in[i];
        // RFC 9112 §2.2: a bare CR is invalid; we also refuse bare LF so that every parser in
        // front of us agrees with ours on where the head ends.
        if (scan_ == Scan::LineCr || scan_ == Scan::LineStartCr || scan_ == Scan::StartCr) {
            if (c != '\n') {
                return fail(i, kBadRequest, "bare CR in request head");
            }
        } else if (c == '\n') {
            return fail(i, kBadRequest, "bare LF in request head");
        }
        switch (scan_) {
            case Scan::Start:
                scan_ = c == '\r' ? Scan::StartCr : Scan::Line;
                break;
            case Scan::StartCr:
                scan_ = Scan::Start;  // an empty line before the request line is skipped
                continue;
            case Scan::Line:
                scan_ = c == '\r' ? Scan::LineCr : Scan::Line;
                break;
            case Scan::LineCr:
                scan_ = Scan::LineStart;
                break;
            case Scan::LineStart:
                scan_ = c == '\r' ? Scan::LineStartCr : Scan::Line;
                break;
            case Scan::LineStartCr:
                scan_ = Scan::Done;
                break;
            case Scan::Done:
                break;
        }
        if (scan_ == Scan::StartCr) {
            continue;
        }
        if (size_ == capacity_ && !grow()) {
            return fail(i, kHeadTooLarge, "request head too large");
        }
        head_[size_++] = c;
        if (scan_ == Scan::Done) {
            const int status = parse_head();
            if (status != 0) {
                return fail(i + 1, status, detail_);
            }
            return {i + 1, ParseStatus::Complete, 0, nullptr};
        }
    }
    return {input.size(), ParseStatus::NeedMore, 0, nullptr};
}

int RequestParser::parse_head() noexcept {
    // The scan guarantees every line ends in CRLF and the head ends in an empty line.
    std::string_view rest(head_.get(), size_);
    const size_t eol = rest.find("\r\n");
    if (int status = parse_request_line(rest.substr(0, eol)); status != 0) {
        return status;
    }
    rest.remove_prefix(eol + 2);
    while (!rest.starts_with("\r\n")) {
        const size_t end = rest.find("\r\n");
        const std::string_view line = rest.substr(0, end);
        rest.remove_prefix(end + 2);
        // RFC 9112 §5.2: obs-fold is rejected; §2.2: so is whitespace before the first field.
        if (is_ows(line.front())) {
            detail_ = "obsolete line folding or leading whitespace in header section";
            return kBadRequest;
        }
        if (int status = parse_field(line); status != 0) {
            return status;
        }
    }
    return apply_framing_fields();
}

int RequestParser::parse_request_line(std::string_view line) noexcept {
    // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
        detail_ = "malformed request line";
        return kBadRequest;
    }
    method_ = line.substr(0, sp1);
    target_ = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method_)) {
        detail_ = "invalid method";
        return kBadRequest;
    }
    if (target_.empty()) {
        detail_ = "empty request target";
        return kBadRequest;
    }
    for (char c : target_) {
        if (c <= ' ' || c >= 0x7f) {
            detail_ = "invalid character in request target";
            return kBadRequest;
        }
    }
    // RFC 9112 §2.3: HTTP-version is case-sensitive "HTTP/" DIGIT "." DIGIT.
    if (version.size() != 8 || !version.starts_with("HTTP/") || version[5] < '0' ||
        version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
        detail_ = "malformed HTTP version";
        return kBadRequest;
    }
    if (version[5] != '1') {
        detail_ = "HTTP version not supported";
        return kVersionNotSupported;
    }
    version_minor_ = version[7] - '0';
    if (!is_known_method(method_)) {
        detail_ = "method not implemented";
        return kNotImplemented;
    }
    return 0;
}

int RequestParser::parse_field(std::string_view line) noexcept {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        detail_ = "header field without colon";
        return kBadRequest;
    }
    const std::string_view name = line.substr(0, colon);
    // RFC 9112 §5.1: whitespace between name and colon must be rejected (smuggling vector).
    if (!name.empty() && is_ows(name.back())) {
        detail_ = "whitespace before colon in header field";
        return kBadRequest;
    }
    if (!is_token(name)) {
        detail_ = "invalid header field name";
        return kBadRequest;
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
        detail_ = "invalid character in header field value";
        return kBadRequest;
    }
    if (header_count_ == kMaxHeaderFields) {
        detail_ = "too many header fields";
        return kHeadTooLarge;
    }
    headers_[header_count_++] = {name, value};
    return 0;
}

int RequestParser::apply_framing_fields() noexcept {
    bool has_te = false;
    bool unknown_coding = false;
    int chunked_count = 0;
    std::string_view last_coding;
    bool bad_length = false;
    bool keep_alive = false;
    int hosts = 0;
    for (size_t i = 0; i < header_count_; ++i) {
        const auto& [name, value] = headers_[i];
        if (iequals(name, "content-length")) {
            // RFC 9110 §8.6: a list of identical values may stand for one; any other is invalid.
            bool any = false;
            for_each_element(value, [&](std::string_view element) {
                const int64_t length = parse_length(element);
                any = true;
                if (length < 0 || (content_length_ >= 0 && length != content_length_)) {
                    bad_length = true;
                }
                content_length_ = length;
            });
            bad_length = bad_length || !any;
        } else if (iequals(name, "transfer-encoding")) {
            has_te = true;
            for_each_element(value, [&](std::string_view element) {
                last_coding = trim_ows(element.substr(0, element.find(';')));
                if (iequals(last_coding, "chunked")) {
                    ++chunked_count;
                } else {
                    unknown_coding = true;
                }
            });
        } else if (iequals(name, "connection")) {
            for_each_element(value, [&](std::string_view option) {
                connection_close_ = connection_close_ || iequals(option, "close");
                keep_alive = keep_alive || iequals(option, "keep-alive");
                connection_upgrade_ = connection_upgrade_ || iequals(option, "upgrade");
            });
        } else if (iequals(name, "host")) {
            ++hosts;
            if (!is_host(value)) {
                detail_ = "invalid Host";
                return kBadRequest;
            }
        }
    }
    // RFC 9112 §3.2: more than one Host is a 400 (a missing one is tolerated on the admin port).
    if (hosts > 1) {
        detail_ = "more than one Host";
        return kBadRequest;
    }
    if (bad_length) {
        detail_ = "invalid or conflicting Content-Length";
        return kBadRequest;
    }
    if (has_te) {
        // RFC 9112 §6.1-§6.3: TE is unknown to HTTP/1.0, must not be trusted next to
        // Content-Length, and chunked must be the final coding, applied once.
        if (version_minor_ == 0) {
            detail_ = "Transfer-Encoding in an HTTP/1.0 request";
            return kBadRequest;
        }
        if (content_length_ >= 0) {
            detail_ = "both Transfer-Encoding and Content-Length";
            return kBadRequest;
        }
        if (!iequals(last_coding, "chunked") || chunked_count > 1) {
            detail_ = "chunked is not the final transfer coding exactly once";
            return kBadRequest;
        }
        if (unknown_coding) {
            detail_ = "unsupported transfer coding";
            return kNotImplemented;
        }
        chunked_ = true;
    }
    // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    if (version_minor_ == 0 && !keep_alive) {
        connection_close_ = true;
    }
    return 0;
}

std::string_view RequestParser::path() const noexcept {
    return target_.substr(0, target_.find('?'));
}

std::string_view RequestParser::query() const noexcept {
    const size_t q = target_.find('?');
    return q == std::string_view::npos ? std::string_view() : target_.substr(q + 1);
}

std::optional<std::string_view> RequestParser::header(std::string_view name) const noexcept {
    for (size_t i = 0; i < header_count_; ++i) {
        if (iequals(headers_[i].name, name)) {
            return headers_[i].value;
        }
    }
    return std::nullopt;
}

}  // namespace ferry::proto::http1
