// The hooks library of --hooks (include/ferry/hooks.h has the C ABI): loaded once per process,
// checked at load, and a per-shard view that calls it with ferry's types. Without a library
// every hook answers Pass, which is ferry's built-in behaviour.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "ferry/hooks.h"

namespace ferry::role {

class HooksLibrary final {
  public:
    // dlopen()s `path` and resolves its symbols; an error names the path and what is wrong (not
    // found, not a shared object, no ferry_hooks_abi_version, another ABI version).
    [[nodiscard]] static absl::StatusOr<std::unique_ptr<HooksLibrary>> load(
        const std::string& path);
    ~HooksLibrary();
    HooksLibrary(const HooksLibrary&) = delete;
    HooksLibrary& operator=(const HooksLibrary&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

  private:
    friend class ShardHooks;
    HooksLibrary() = default;

    using InitFn = void* (*)(uint32_t, const char*, const char*);
    using FiniFn = void (*)(void*);
    using MessageFn = int (*)(void*, ferry_bytes, const ferry_header*, size_t, ferry_bytes*);

    std::string path_;
    void* handle_ = nullptr;
    InitFn init_ = nullptr;
    FiniFn fini_ = nullptr;
    MessageFn on_trigger_ = nullptr;
    MessageFn on_receive_terminator_ = nullptr;
};

// One shard's hooks: its context is made on the shard's thread and freed with it.
class ShardHooks final {
  public:
    // `library` may be null (no --hooks) and outlives this.
    ShardHooks(const HooksLibrary* library, uint32_t shard, const char* role,
               const std::string& node_name) noexcept;
    ~ShardHooks();
    ShardHooks(const ShardHooks&) = delete;
    ShardHooks& operator=(const ShardHooks&) = delete;

    enum class Action : uint8_t { Pass, Replace, Drop };
    struct Outcome {
        Action action = Action::Pass;
        std::string_view replacement;  // Replace: the hook's bytes, valid until its next call
    };
    using Header = std::pair<std::string_view, std::string_view>;

    [[nodiscard]] bool has_on_trigger() const noexcept {
        return library_ != nullptr && library_->on_trigger_ != nullptr;
    }
    [[nodiscard]] bool has_on_receive_terminator() const noexcept {
        return library_ != nullptr && library_->on_receive_terminator_ != nullptr;
    }
    [[nodiscard]] Outcome on_trigger(std::string_view payload,
                                     std::span<const Header> headers) noexcept;
    [[nodiscard]] Outcome on_receive_terminator(std::string_view payload,
                                                std::span<const Header> headers) noexcept;

  private:
    Outcome call(HooksLibrary::MessageFn fn, const char* name, std::string_view payload,
                 std::span<const Header> headers) noexcept;

    const HooksLibrary* library_;
    void* context_ = nullptr;
    uint64_t bad_actions_ = 0;
};

}  // namespace ferry::role
