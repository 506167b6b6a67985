#include "ferry/base/byte_size.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry::base {

bool AbslParseFlag(absl::string_view text, ByteSize* out, std::string* error) {
    const std::string lower = absl::AsciiStrToLower(text);
    absl::string_view digits = lower;
    uint64_t multiplier = 1;
    const struct {
        absl::string_view suffix;
        uint64_t multiplier;
    } units[] = {{"kib", 1ULL << 10},
                 {"mib", 1ULL << 20},
                 {"gib", 1ULL << 30},
                 {"k", 1ULL << 10},
                 {"m", 1ULL << 20},
                 {"g", 1ULL << 30},
                 {"b", 1}};
    for (const auto& unit : units) {
        if (digits.size() > unit.suffix.size() && absl::EndsWith(digits, unit.suffix)) {
            digits.remove_suffix(unit.suffix.size());
            multiplier = unit.multiplier;
            break;
        }
    }
    uint64_t value = 0;
    if (!absl::SimpleAtoi(digits, &value) || value > UINT64_MAX / multiplier) {
        *error = "expected a byte count such as 1048576, 64KiB, 1MiB or 1GiB";
        return false;
    }
    out->bytes = value * multiplier;
    return true;
}

std::string AbslUnparseFlag(ByteSize size) {
    const struct {
        const char* unit;
        uint64_t multiplier;
    } units[] = {{"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}};
    for (const auto& u : units) {
        if (size.bytes != 0 && size.bytes % u.multiplier == 0) {
            return absl::StrCat(size.bytes / u.multiplier, u.unit);
        }
    }
    return absl::StrCat(size.bytes);
}

}  // namespace ferry::base
