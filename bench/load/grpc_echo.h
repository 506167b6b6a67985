// The gRPC peer of `ferry-load serve --mode grpc-echo`: an HTTP/2 server (h2c, prior knowledge;
// nghttp2 does the framing and HPACK) that answers every call on any path with its request
// messages, byte for byte, then grpc-status 0. Unary, streaming and bidi calls alike: the body is
// echoed as it arrives (DATA frames answer DATA frames), so a bidi call's messages come back one
// by one. Fast enough to stand behind the proxies the gRPC bench compares (bench/grpc.sh), and
// the same server for all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "echo_session.h"

struct nghttp2_session;

namespace ferry::bench {

class GrpcEchoSession final : public EchoSession {
  public:
    GrpcEchoSession() noexcept;
    ~GrpcEchoSession() override;
    GrpcEchoSession(const GrpcEchoSession&) = delete;
    GrpcEchoSession& operator=(const GrpcEchoSession&) = delete;

    [[nodiscard]] Next feed(std::span<std::byte> input) noexcept override;
    [[nodiscard]] std::span<const std::byte> output() const noexcept override { return out_; }
    void clear_output() noexcept override { out_.clear(); }

    // Calls answered so far (grpc-status 0 sent).
    [[nodiscard]] uint64_t calls_answered() const noexcept { return answered_; }

    // nghttp2 callbacks
    struct Call;
    int on_begin_headers(int32_t id) noexcept;
    int on_data(int32_t id, const uint8_t* data, size_t len) noexcept;
    int on_frame(uint8_t type, uint8_t flags, int32_t id) noexcept;
    int on_close(int32_t id) noexcept;
    ssize_t read_body(Call& call, uint8_t* buf, size_t len, uint32_t* flags) noexcept;

  private:
    Next drain() noexcept;

    nghttp2_session* session_ = nullptr;
    std::unordered_map<int32_t, std::unique_ptr<Call>> calls_;
    std::vector<std::byte> out_;
    uint64_t answered_ = 0;
    bool failed_ = false;
};

}  // namespace ferry::bench
