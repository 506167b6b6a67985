// ByteSize: a byte count as people write it on a command line — "1048576", "64k", "1MiB",
// "4g" (binary multiples; a trailing "b" and any case are accepted). An Abseil flag type, shared
// by ferry's flags and ferry-load's.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ferry::base {

struct ByteSize {
    uint64_t bytes = 0;
};

// False (with `error` set) for anything but a count with an optional k/m/g/KiB/MiB/GiB unit, or
// a value beyond 2^64-1 bytes.
[[nodiscard]] bool AbslParseFlag(absl::string_view text, ByteSize* out, std::string* error);
// The shortest exact form: "1GiB", "64KiB", "1500".
[[nodiscard]] std::string AbslUnparseFlag(ByteSize size);

}  // namespace ferry::base
