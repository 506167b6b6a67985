#include "process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <thread>

extern char** environ;

namespace ferry::testlib {

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) {
        pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
}

Process::~Process() {
    if (pid_ > 0 && !status_) {
        kill(pid_, SIGKILL);
        int st = 0;
        waitpid(pid_, &st, 0);
    }
}

void Process::signal(int sig) const {
    if (pid_ > 0) {
        kill(pid_, sig);
    }
}

std::optional<int> Process::wait(int timeout_ms) {
    if (status_) {
        return status_;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool Process::running() { return !wait(0).has_value(); }

std::string Process::log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

uint16_t free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

int connect_to(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

const char* read_end_name(ReadEnd end) {
    switch (end) {
        case ReadEnd::Eof:
            return "Eof";
        case ReadEnd::Reset:
            return "Reset";
        case ReadEnd::Error:
            return "Error";
        case ReadEnd::Timeout:
            return "Timeout";
    }
    return "?";
}

void PrintTo(ReadEnd end, std::ostream* os) { *os << read_end_name(end); }

ReadResult read_all(int fd, int timeout_ms) {
    ReadResult r;
    char buf[65536];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            r.end = ReadEnd::Timeout;
            return r;
        }
        pollfd p{fd, POLLIN, 0};
        int ready = poll(&p, 1, static_cast<int>(left));
        if (ready == 0 || (ready < 0 && errno == EINTR)) {
            continue;  // the deadline check above decides
        }
        if (ready < 0) {
            r.end = ReadEnd::Error;
            r.error = errno;
            return r;
        }
        // POLLHUP and POLLERR are read too: read() tells EOF from a reset.
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            r.bytes.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            r.end = ReadEnd::Eof;
            return r;
        }
        if (errno == EINTR || errno == EAGAIN) {
            continue;
        }
        r.error = errno;
        r.end = errno == ECONNRESET ? ReadEnd::Reset : ReadEnd::Error;
        return r;
    }
}

bool write_all(int fd, const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

HttpReply http_get(uint16_t port, const std::string& path) {
    HttpReply reply;
    int fd = connect_to(port);
    if (fd < 0) {
        return reply;
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (!write_all(fd, req.data(), req.size())) {
        close(fd);
        return reply;
    }
    // A reply cut short by a timeout or a reset is still parsed: the caller checks the status.
    std::string resp = read_all(fd, 5000).bytes;
    close(fd);
    if (resp.size() > 12 && resp.compare(0, 5, "HTTP/") == 0) {
        reply.status = std::atoi(resp.c_str() + 9);
        size_t body = resp.find("\r\n\r\n");
        if (body != std::string::npos) {
            reply.body = resp.substr(body + 4);
        }
    }
    return reply;
}

bool wait_until(const std::function<bool()>& done, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
}

int64_t metric_sum(const std::string& body, const std::string& name) {
    int64_t sum = 0;
    bool found = false;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) {
            size_t sp = line.rfind(' ');
            sum += std::atoll(line.c_str() + sp + 1);
            found = true;
        }
    }
    return found ? sum : -1;
}

int64_t metric_of_shard(const std::string& body, const std::string& name, int shard) {
    const std::string prefix = name + "{shard=\"" + std::to_string(shard) + "\"} ";
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) == 0) {
            return std::atoll(line.c_str() + prefix.size());
        }
    }
    return -1;
}

std::string make_temp_dir() {
    char tmpl[] = "/tmp/ferry-test-XXXXXX";
    char* d = mkdtemp(tmpl);
    return d == nullptr ? std::string("/tmp") : std::string(d);
}

void remove_tree(const std::string& dir) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

}  // namespace ferry::testlib
