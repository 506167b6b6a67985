// Test helpers for end-to-end tests: child processes that are always reaped (killed by PID in
// the destructor, even when an assertion fails), free loopback ports, tiny HTTP GET, and
// bounded polling.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace ferry::testlib {

class Process final {
  public:
    // Starts argv[0] with args; stdout+stderr go to `log_path`.
    Process(std::vector<std::string> argv, std::string log_path);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    void signal(int sig) const;
    // Waits up to `timeout_ms`; the exit code (or 128+signal), or nullopt if still running.
    [[nodiscard]] std::optional<int> wait(int timeout_ms);
    [[nodiscard]] bool running();
    [[nodiscard]] std::string log() const;

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string log_path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
[[nodiscard]] uint16_t free_port();
// GET http://127.0.0.1:port/path; returns {status, body} or status 0 on connection failure.
struct HttpReply {
    int status = 0;
    std::string body;
};
[[nodiscard]] HttpReply http_get(uint16_t port, const std::string& path);
// Polls `done` every few ms until true or `timeout_ms` passes.
[[nodiscard]] bool wait_until(const std::function<bool()>& done, int timeout_ms);
// Value of a metric summed over shards from a Prometheus text body; -1 if absent.
[[nodiscard]] int64_t metric_sum(const std::string& body, const std::string& name);
// The value of `name{shard="<shard>"}` in a /metrics body, or -1 when it is not there.
[[nodiscard]] int64_t metric_of_shard(const std::string& body, const std::string& name, int shard);
// A connected blocking TCP socket to 127.0.0.1:port, or -1.
[[nodiscard]] int connect_to(uint16_t port);
// How a read_all ended. A test that means "the peer closed the connection" must say which close
// it expects: a bare "returned" cannot tell a close from a hang that ran out the clock.
enum class ReadEnd {
    Eof,      // orderly close: the peer's FIN (read returned 0)
    Reset,    // the peer reset the connection (ECONNRESET)
    Error,    // any other read or poll error (errno in ReadResult::error)
    Timeout,  // neither within the time limit: the connection is still open
};
[[nodiscard]] const char* read_end_name(ReadEnd end);
// gtest prints a ReadEnd by name in a failed EXPECT_EQ.
void PrintTo(ReadEnd end, std::ostream* os);

struct ReadResult {
    std::string bytes;               // everything read before the end
    ReadEnd end = ReadEnd::Timeout;  // why reading stopped
    int error = 0;                   // errno for Reset and Error, else 0
};
// Reads from `fd` until EOF, a reset or error, or `timeout_ms` passes, whichever comes first.
[[nodiscard]] ReadResult read_all(int fd, int timeout_ms);
// Writes everything; false on error.
[[nodiscard]] bool write_all(int fd, const void* data, size_t len);
// A fresh temporary directory, removed with its contents by the caller (remove_tree).
[[nodiscard]] std::string make_temp_dir();
void remove_tree(const std::string& dir);

}  // namespace ferry::testlib
