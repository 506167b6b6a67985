#include "ferry/proto/ws/response_head_parser.h"

#include "ferry/base/check.h"
#include "ferry/proto/http1/field_syntax.h"

namespace ferry::proto::ws {

using http1::iequals;

ResponseHeadParser::ResponseHeadParser(size_t max_head_size) noexcept
    : head_(std::make_unique_for_overwrite<char[]>(max_head_size)), max_head_size_(max_head_size) {
    FERRY_CHECK(max_head_size >= 64);
}

void ResponseHeadParser::reset() noexcept {
    size_ = 0;
    detail_ = nullptr;
    scan_ = Scan::Line;
    failed_ = false;
    version_minor_ = 1;
    status_code_ = 0;
    reason_ = {};
    header_count_ = 0;
}

HeadResult ResponseHeadParser::fail(size_t consumed, const char* detail) noexcept {
    failed_ = true;
    detail_ = detail;
    return {consumed, HeadStatus::Error, detail};
}

HeadResult ResponseHeadParser::feed(std::span<const std::byte> input) noexcept {
    if (failed_) {
        return {0, HeadStatus::Error, detail_};
    }
    if (scan_ == Scan::Done) {
        return {0, HeadStatus::Complete, nullptr};
    }
    const auto* in = reinterpret_cast<const char*>(input.data());
    for (size_t i = 0; i < input.size(); ++i) {
        const char c = in[i];
        // RFC 9112 §2.2: a bare CR is invalid; a bare LF is refused too, so that the head ends
        // where every other parser on the path thinks it does.
        if (scan_ == Scan::LineCr || scan_ == Scan::LineStartCr) {
            if (c != '\n') {
                return fail(i, "bare CR in response head");
            }
        } else if (c == '\n') {
            return fail(i, "bare LF in response head");
        }
        switch (scan_) {
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
            case Scan::Done:
                scan_ = Scan::Done;
                break;
        }
        if (size_ == max_head_size_) {
            return fail(i, "response head too large");
        }
        head_[size_++] = c;
        if (scan_ == Scan::Done) {
            if (const char* detail = parse_head(); detail != nullptr) {
                return fail(i + 1, detail);
            }
            return {i + 1, HeadStatus::Complete, nullptr};
        }
    }
    return {input.size(), HeadStatus::NeedMore, nullptr};
}

const char* ResponseHeadParser::parse_head() noexcept {
    // The scan guarantees every line ends in CRLF and the head ends in an empty line.
    std::string_view rest(head_.get(), size_);
    const size_t eol = rest.find("\r\n");
    if (const char* detail = parse_status_line(rest.substr(0, eol)); detail != nullptr) {
        return detail;
    }
    rest.remove_prefix(eol + 2);
    while (!rest.starts_with("\r\n")) {
        const size_t end = rest.find("\r\n");
        const std::string_view line = rest.substr(0, end);
        rest.remove_prefix(end + 2);
        // RFC 9112 §5.2: obs-fold is rejected (a user agent may also replace it; we do not).
        if (line.front() == ' ' || line.front() == '\t') {
            return "obsolete line folding in response head";
        }
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            return "header field without colon";
        }
        const std::string_view name = line.substr(0, colon);
        // RFC 9112 §5.1: whitespace between name and colon is rejected.
        if (!http1::is_token(name)) {
            return "invalid header field name";
        }
        const std::string_view value = http1::trim_ows(line.substr(colon + 1));
        if (!http1::is_field_value(value)) {
            return "invalid character in header field value";
        }
        if (header_count_ == kMaxResponseHeaderFields) {
            return "too many header fields";
        }
        headers_[header_count_++] = {name, value};
    }
    return nullptr;
}

const char* ResponseHeadParser::parse_status_line(std::string_view line) noexcept {
    // RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]. A missing SP after the code is
    // tolerated, since the reason phrase carries nothing a client may rely on.
    if (line.size() < 12 || !line.starts_with("HTTP/") || line[5] < '0' || line[5] > '9' ||
        line[6] != '.' || line[7] < '0' || line[7] > '9' || line[8] != ' ') {
        return "malformed status line";
    }
    if (line[5] != '1') {
        return "HTTP version not supported";
    }
    int code = 0;
    for (size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') {
            return "malformed status code";
        }
        code = code * 10 + (line[i] - '0');
    }
    if (code < 100) {
        return "malformed status code";
    }
    std::string_view reason = line.substr(12);
    if (!reason.empty()) {
        if (reason.front() != ' ') {
            return "malformed status line";
        }
        reason.remove_prefix(1);
    }
    if (!http1::is_field_value(reason)) {
        return "invalid character in reason phrase";
    }
    version_minor_ = line[7] - '0';
    status_code_ = code;
    reason_ = reason;
    return nullptr;
}

std::optional<std::string_view> ResponseHeadParser::header(std::string_view name) const noexcept {
    for (size_t i = 0; i < header_count_; ++i) {
        if (iequals(headers_[i].name, name)) {
            return headers_[i].value;
        }
    }
    return std::nullopt;
}

}  // namespace ferry::proto::ws
