#include "ferry/io/node_check.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_format.h"

namespace ferry::io {
namespace {

bool exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

// The integer in a one-line sysctl file; `fallback` when it is absent or not a number.
int read_int(const std::string& path, int fallback) {
    FILE* f = std::fopen(path.c_str(), "re");
    if (f == nullptr) {
        return fallback;
    }
    int value = fallback;
    if (std::fscanf(f, "%d", &value) != 1) {
        value = fallback;
    }
    std::fclose(f);
    return value;
}

}  // namespace

NodeCheck check_node(std::string_view proc, std::string_view sys, std::string_view modules,
                     std::string_view release) {
    NodeCheck check;
    check.io_uring_disabled = read_int(std::string(proc) + "/sys/kernel/io_uring_disabled", -1);
    std::string rel(release);
    if (rel.empty()) {
        utsname uts{};
        if (uname(&uts) == 0) {
            rel = uts.release;
        }
    }
    // Loaded or built in: /sys/module/tls. Otherwise the first TCP_ULP "tls" loads it on demand,
    // provided the module file is installed.
    if (exists(std::string(sys) + "/module/tls")) {
        check.tls_module = TlsModule::Loaded;
    } else if (!rel.empty()) {
        const std::string ko = std::string(modules) + "/" + rel + "/kernel/net/tls/tls.ko";
        if (exists(ko) || exists(ko + ".xz") || exists(ko + ".zst")) {
            check.tls_module = TlsModule::Available;
        }
    }
    return check;
}

const char* tls_module_name(TlsModule m) noexcept {
    switch (m) {
        case TlsModule::Loaded:
            return "loaded";
        case TlsModule::Available:
            return "available";
        case TlsModule::Absent:
            return "absent";
    }
    return "absent";
}

std::string describe(const NodeCheck& check, bool ktls_usable) {
    const char* uring = check.io_uring_disabled < 0    ? "no such sysctl (io_uring allowed)"
                        : check.io_uring_disabled == 0 ? "0 (io_uring allowed)"
                        : check.io_uring_disabled == 1
                            ? "1 (io_uring for root and kernel.io_uring_group only)"
                            : "2 (io_uring disabled)";
    const char* ktls = ktls_usable ? "kTLS usable"
                       : check.tls_module == TlsModule::Absent
                           ? "kTLS unavailable: TLS runs in user space (install the tls module)"
                           : "kTLS unavailable: TLS runs in user space";
    return absl::StrFormat("node check: kernel.io_uring_disabled=%s, tls module %s, %s", uring,
                           tls_module_name(check.tls_module), ktls);
}

}  // namespace ferry::io
