// RFC 6455 conformance of the initiator's WebSocket server side, in the spirit of the Autobahn
// testsuite (cases 1-7 and 9): ws_conformance.py sends hand-built frames (valid and invalid) over
// raw sockets and checks every answer against the RFC, one connection per case. The terminator's
// built-in sink answers each message, so no upstream server is needed.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string source_dir() {
    const char* src = std::getenv("FERRY_SOURCE_DIR");
    return src != nullptr ? src : ".";
}

// A handshake on a fresh connection still gets its 101: the server survived what came before.
bool handshake_works(uint16_t port) {
    int fd = testlib::connect_to(port);
    if (fd < 0) {
        return false;
    }
    const std::string upgrade =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (!testlib::write_all(fd, upgrade.data(), upgrade.size())) {
        close(fd);
        return false;
    }
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string head;
    char c = 0;
    while (head.find("\r\n\r\n") == std::string::npos && read(fd, &c, 1) == 1) {
        head.push_back(c);
    }
    close(fd);
    return head.rfind("HTTP/1.1 101", 0) == 0 &&
           head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos;
}

class WsConformanceE2e : public E2e {};

TEST_F(WsConformanceE2e, ConformanceCasesOfAutobahn1To7And9AllPass) {
    // One pair with the default limits, and one whose initiator takes messages of 1 MiB at most
    // (the 1009 cases).
    Tunnel t(dir_, testlib::free_port(), 1, {}, {}, 0, {}, "/");
    const std::string limited_dir = dir_ + "/limited";
    ASSERT_EQ(std::system(("mkdir -p " + limited_dir).c_str()), 0);
    Tunnel limited(limited_dir, testlib::free_port(), 1, {"--ws-max-message", "1MiB"}, {}, 0, {},
                   "/");
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(limited.ready());

    Process client({kPython, source_dir() + "/tests/integration/ws_conformance.py", "--port",
                    std::to_string(t.listen_port_), "--limited-port",
                    std::to_string(limited.listen_port_), "--limited-size", "1048576",
                    // Slack for a loaded machine and a debug build.
                    "--timeout-scale", "3"},
                   dir_ + "/ws_conformance.log");
    const int rc = client.wait(300000).value_or(-1);
    const std::string log = client.log();
    EXPECT_EQ(rc, 0) << log;
    if (rc == 0) {
        // The summary line, for the record.
        const size_t last = log.rfind('\n', log.size() >= 2 ? log.size() - 2 : 0);
        std::fprintf(stderr, "%s", log.substr(last == std::string::npos ? 0 : last + 1).c_str());
    }

    // Bad input on other connections must not have hurt the listeners.
    EXPECT_TRUE(handshake_works(t.listen_port_));
    EXPECT_TRUE(handshake_works(limited.listen_port_));
    EXPECT_TRUE(t.initiator->running());
    EXPECT_TRUE(t.terminator->running());
}

// The same cases over wss:// (TLS 1.3 to the listener): the answers must not change.
TEST_F(WsConformanceE2e, TheSameCasesPassOverWss) {
    const std::string pki = make_pki(dir_);
    Tunnel t(
        dir_, testlib::free_port(), 1,
        {"--listen-tls-cert", pki + "/terminator.crt", "--listen-tls-key", pki + "/terminator.key"},
        pki, 0, {}, "wss:/");
    ASSERT_TRUE(t.ready());
    Process client(
        {kPython, source_dir() + "/tests/integration/ws_conformance.py", "--port",
         std::to_string(t.listen_port_), "--tls-ca", pki + "/ca.crt", "--timeout-scale", "3"},
        dir_ + "/ws_conformance.log");
    const int rc = client.wait(300000).value_or(-1);
    const std::string log = client.log();
    EXPECT_EQ(rc, 0) << log;
    EXPECT_NE(log.find(" 0 failed"), std::string::npos) << log;
    EXPECT_TRUE(t.initiator->running());
    EXPECT_TRUE(t.terminator->running());
}

}  // namespace
}  // namespace ferry::e2e
