// HTTP field syntax (RFC 9110 §5): tokens, field values, optional whitespace, case-insensitive
// comparison and comma-separated lists. Shared by the request-head parser and the WebSocket
// handshake (proto/ws); pure and allocation-free.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace ferry::proto::http1 {

// RFC 9110 §5.6.2: tchar.
inline constexpr std::array<bool, 256> kTchar = [] {
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

// 1*tchar.
[[nodiscard]] inline bool is_token(std::string_view s) noexcept {
    for (char c : s) {
        if (!kTchar[static_cast<unsigned char>(c)]) {
            return false;
        }
    }
    return !s.empty();
}

// RFC 9110 §5.5: field-vchar, SP, HTAB and obs-text; NUL, other controls and DEL are invalid, so a
// value cannot end its line.
[[nodiscard]] inline bool is_field_value(std::string_view s) noexcept {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

[[nodiscard]] constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

[[nodiscard]] inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && is_ows(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_ows(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c;
}

// ASCII case-insensitive equality (field names, tokens; RFC 6455 §4 "ASCII case-insensitive").
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

// Calls fn(element) for each non-empty element of a comma-separated list (RFC 9110 §5.6.1: empty
// elements are allowed and ignored). An fn that returns bool stops the walk by returning false;
// then this returns false.
template <typename Fn>
bool for_each_element(std::string_view list, Fn&& fn) noexcept {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view element = trim_ows(list.substr(0, comma));
        if (!element.empty()) {
            if constexpr (std::is_same_v<std::invoke_result_t<Fn&, std::string_view>, bool>) {
                if (!fn(element)) {
                    return false;
                }
            } else {
                fn(element);
            }
        }
        list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    return true;
}

}  // namespace ferry::proto::http1
