#include "ferry/proto/grpc/wire.h"

namespace ferry::proto::grpc {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool plain_byte(unsigned char c) noexcept { return c >= 0x20 && c <= 0x7e && c != '%'; }

int hex_value(char c) noexcept {
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

}  // namespace

void write_prefix(std::span<std::byte, kPrefixSize> out, bool compressed,
                  uint32_t length) noexcept {
    out[0] = std::byte{compressed ? uint8_t{1} : uint8_t{0}};
    out[1] = static_cast<std::byte>(length >> 24);
    out[2] = static_cast<std::byte>(length >> 16);
    out[3] = static_cast<std::byte>(length >> 8);
    out[4] = static_cast<std::byte>(length);
}

std::optional<uint64_t> parse_timeout(std::string_view text) noexcept {
    if (text.size() < 2 || text.size() > 9) {
        return std::nullopt;
    }
    uint64_t value = 0;
    for (size_t i = 0; i + 1 < text.size(); ++i) {
        const char c = text[i];
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    uint64_t unit_ns = 0;
    switch (text.back()) {
        case 'H':
            unit_ns = 3'600'000'000'000;
            break;
        case 'M':
            unit_ns = 60'000'000'000;
            break;
        case 'S':
            unit_ns = 1'000'000'000;
            break;
        case 'm':
            unit_ns = 1'000'000;
            break;
        case 'u':
            unit_ns = 1'000;
            break;
        case 'n':
            unit_ns = 1;
            break;
        default:
            return std::nullopt;
    }
    if (value != 0 && unit_ns > UINT64_MAX / value) {
        return UINT64_MAX;
    }
    return value * unit_ns;
}

size_t format_timeout(uint64_t ns, std::span<char, kMaxTimeoutText> out) noexcept {
    struct Unit {
        uint64_t ns;
        char name;
    };
    static constexpr Unit kUnits[] = {{1, 'n'},
                                      {1'000, 'u'},
                                      {1'000'000, 'm'},
                                      {1'000'000'000, 'S'},
                                      {60'000'000'000, 'M'},
                                      {3'600'000'000'000, 'H'}};
    constexpr uint64_t kMaxDigits = 99'999'999;
    uint64_t value = kMaxDigits;
    char unit = 'H';
    for (const Unit& u : kUnits) {
        const uint64_t v = ns / u.ns + (ns % u.ns != 0 ? 1 : 0);  // rounded up
        if (v <= kMaxDigits) {
            value = v;
            unit = u.name;
            break;
        }
    }
    char digits[8];
    size_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (size_t i = 0; i < n; ++i) {
        out[i] = digits[n - 1 - i];
    }
    out[n] = unit;
    return n + 1;
}

bool is_grpc_content_type(std::string_view value) noexcept {
    constexpr std::string_view kBase = "application/grpc";
    if (value.size() < kBase.size()) {
        return false;
    }
    for (size_t i = 0; i < kBase.size(); ++i) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != kBase[i]) {
            return false;
        }
    }
    return value.size() == kBase.size() || value[kBase.size()] == '+' || value[kBase.size()] == ';';
}

size_t percent_encoded_size(std::string_view text) noexcept {
    size_t n = 0;
    for (const char c : text) {
        n += plain_byte(static_cast<unsigned char>(c)) ? size_t{1} : size_t{3};
    }
    return n;
}

size_t percent_encode(std::string_view text, std::span<char> out) noexcept {
    size_t n = 0;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (plain_byte(u)) {
            out[n++] = c;
        } else {
            out[n++] = '%';
            out[n++] = kHex[u >> 4];
            out[n++] = kHex[u & 0xf];
        }
    }
    return n;
}

size_t percent_decode(std::string_view text, std::span<char> out) noexcept {
    size_t n = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[n++] = static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out[n++] = text[i];
    }
    return n;
}

}  // namespace ferry::proto::grpc
