#include "ferry/role/hooks.h"

#include <dlfcn.h>

#include <array>

#include "absl/strings/str_format.h"
#include "ferry/base/log.h"

namespace ferry::role {

absl::StatusOr<std::unique_ptr<HooksLibrary>> HooksLibrary::load(const std::string& path) {
    // RTLD_NOW: a missing symbol of the library fails here, at start, not mid-traffic.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        return absl::InvalidArgumentError(
            absl::StrFormat("cannot load hooks library: %s", why != nullptr ? why : path));
    }
    std::unique_ptr<HooksLibrary> lib(new HooksLibrary());
    lib->path_ = path;
    lib->handle_ = handle;
    auto version = reinterpret_cast<uint32_t (*)()>(dlsym(handle, "ferry_hooks_abi_version"));
    if (version == nullptr) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s is not a ferry hooks library (no ferry_hooks_abi_version symbol)", path));
    }
    if (const uint32_t v = version(); v != FERRY_HOOKS_ABI_VERSION) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s speaks hooks ABI version %u; this ferry speaks %u", path, v,
                            FERRY_HOOKS_ABI_VERSION));
    }
    lib->init_ = reinterpret_cast<InitFn>(dlsym(handle, "ferry_hooks_shard_init"));
    lib->fini_ = reinterpret_cast<FiniFn>(dlsym(handle, "ferry_hooks_shard_fini"));
    lib->on_trigger_ = reinterpret_cast<MessageFn>(dlsym(handle, "ferry_on_trigger"));
    lib->on_receive_terminator_ =
        reinterpret_cast<MessageFn>(dlsym(handle, "ferry_on_receive_terminator"));
    return lib;
}

HooksLibrary::~HooksLibrary() {
    if (handle_ != nullptr) {
        dlclose(handle_);
    }
}

ShardHooks::ShardHooks(const HooksLibrary* library, uint32_t shard, const char* role,
                       const std::string& node_name) noexcept
    : library_(library) {
    if (library_ != nullptr && library_->init_ != nullptr) {
        context_ = library_->init_(shard, role, node_name.c_str());
    }
}

ShardHooks::~ShardHooks() {
    if (library_ != nullptr && library_->fini_ != nullptr) {
        library_->fini_(context_);
    }
}

ShardHooks::Outcome ShardHooks::on_trigger(std::string_view payload,
                                           std::span<const Header> headers) noexcept {
    return call(library_ != nullptr ? library_->on_trigger_ : nullptr, "ferry_on_trigger", payload,
                headers);
}

ShardHooks::Outcome ShardHooks::on_receive_terminator(std::string_view payload,
                                                      std::span<const Header> headers) noexcept {
    return call(library_ != nullptr ? library_->on_receive_terminator_ : nullptr,
                "ferry_on_receive_terminator", payload, headers);
}

ShardHooks::Outcome ShardHooks::call(HooksLibrary::MessageFn fn, const char* name,
                                     std::string_view payload,
                                     std::span<const Header> headers) noexcept {
    if (fn == nullptr) {
        return {};
    }
    // Views of ferry's own bytes: no copy into the call.
    constexpr size_t kMaxHeaders = 32;
    std::array<ferry_header, kMaxHeaders> h{};
    const size_t n = std::min(headers.size(), kMaxHeaders);
    auto bytes = [](std::string_view s) {
        return ferry_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
    };
    for (size_t i = 0; i < n; ++i) {
        h[i] = {bytes(headers[i].first), bytes(headers[i].second)};
    }
    ferry_bytes out{nullptr, 0};
    const int action = fn(context_, bytes(payload), h.data(), n, &out);
    switch (action) {
        case FERRY_HOOK_PASS:
            return {};
        case FERRY_HOOK_DROP:
            return {Action::Drop, {}};
        case FERRY_HOOK_REPLACE:
            if (out.data != nullptr || out.len == 0) {
                return {
                    Action::Replace,
                    {reinterpret_cast<const char*>(out.data), out.data != nullptr ? out.len : 0}};
            }
            break;
        default:
            break;
    }
    // A broken library must not flood the log: the 1st, 2nd, 4th, 8th... time.
    ++bad_actions_;
    if ((bad_actions_ & (bad_actions_ - 1)) != 0) {
        return {};
    }
    FERRY_LOG(Warn,
              "hooks: %s returned action %d without a valid replacement; passing the message "
              "(%llu time(s) on this shard)",
              name, action, static_cast<unsigned long long>(bad_actions_));
    return {};
}

}  // namespace ferry::role
