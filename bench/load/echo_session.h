// A protocol peer of `ferry-load serve` without I/O (ws-echo, grpc-echo): the bytes a client sent
// go in, the bytes to answer with come out. ServerConn (server.cc) moves the bytes, one read at a
// time; tests drive a session in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ferry::bench {

class EchoSession {
  public:
    virtual ~EchoSession() = default;

    enum class Next : uint8_t {
        Continue,  // send output() (if any), clear it, read more
        Close,     // send output() (if any), then close the connection
    };

    // Takes every byte of `input` (which it may modify in place) and appends what to answer to
    // output().
    [[nodiscard]] virtual Next feed(std::span<std::byte> input) noexcept = 0;
    // What to send, in order. The caller sends it all and then calls clear_output() before the
    // next feed(); feed() appends, so the storage may move during feed() only.
    [[nodiscard]] virtual std::span<const std::byte> output() const noexcept = 0;
    virtual void clear_output() noexcept = 0;
};

}  // namespace ferry::bench
