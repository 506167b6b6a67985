// HTTP field syntax (RFC 9110 §5) for the WebSocket handshake: tokens, lists, case-insensitive
// comparison. Private to proto/ws; proto/http1 keeps its own copy inside its parser.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace ferry::proto::ws::internal {

// RFC 9110 §5.6.2: tchar.
constexpr std::array<bool, 256> kTchar = [] {
    std::array<bool, 256> table{};
    for (size_t c = '0'; c <= '9'; ++c) {
        table[c] = true;
    }
    for (size_t c = 'a'; c <= 'z'; ++c) {
        table[c] = true;
        table[c - 'a' + 'A'] = true;
    }
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
        table[static_cast<unsigned char>(c)] = true;
    }
    return table;
}();

[[nodiscard]] inline bool is_token(std::string_view s) noexcept {
    for (char c : s) {
        if (!kTchar[static_cast<unsigned char>(c)]) {
            return false;
        }
    }
    return !s.empty();
}

// RFC 9110 §5.5: no CR, LF, NUL or other controls but HTAB, so a value cannot end its line.
[[nodiscard]] inline bool is_field_value(std::string_view s) noexcept {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

[[nodiscard]] inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c;
}

// ASCII case-insensitive equality (RFC 6455 §4: "ASCII case-insensitive match").
[[nodiscard]] inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

// Calls fn(element) for each non-empty element of a comma-separated list (RFC 9110 §5.6.1:
// empty elements are allowed and ignored); stops early when fn returns false.
template <typename Fn>
bool for_each_element(std::string_view list, Fn&& fn) noexcept {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view element = trim_ows(list.substr(0, comma));
        if (!element.empty() && !fn(element)) {
            return false;
        }
        list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    return true;
}

}  // namespace ferry::proto::ws::internal
