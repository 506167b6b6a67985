// libFuzzer target: arbitrary bytes from a "client" into a server-side Handshake. It must never
// crash, hang or leak, whatever the bytes; failures are expected and fine.
//
// Input: byte 0 picks how the rest is split into feed() calls (0: all at once, n: chunks of n
// bytes), so one corpus entry also explores the incremental paths. The server's certificate,
// key and CA are fixed test-only PEMs (valid until 2126) written to a temp dir at first use.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>

#include "ferry/tls/handshake.h"
#include "ferry/tls/tls_context.h"

namespace {

constexpr const char kCaPem[] = R"PEM(-----BEGIN CERTIFICATE-----
MIIBdzCCARygAwIBAgIUbfDGpcnWXy3+gI96/9RqvaU47oAwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZmVycnkgZnV6eiBDQTAgFw0yNjExMjEwNjM4NTJaGA8yMTI2
MTAyODA2Mzg1MlowGDEWMBQGA1UEAwwNZmVycnkgZnV6eiBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABE17QB75aTqJ2Pn5shH3NWZ2nDOvNPL6ejmObiKzvKab
l+hdf7wm6MUEjtCXcAEIpLvyfZgo0H6RKxGu4s4YgMOjQjBAMA8GA1UdEwEB/wQF
MAMBAf8wDgYDVR0PAQH/BAQDAgIEMB0GA1UdDgQWBBT45LuzcIKnlKKpyKLMkkGj
9dVc0TAKBggqhkjOPQQDAgNJADBGAiEA8ynB1vwaDL0QgTacVkewvtWipITWK6l0
21ZrRIG1CSECIQDTC7ead9Mij9DvmB8vWWVWbPbrWbvGAj7tvjlrpTuCYA==
-----END CERTIFICATE-----
)PEM";

constexpr const char kServerCertPem[] = R"PEM(-----BEGIN CERTIFICATE-----
MIIBuTCCAV6gAwIBAgIBAjAKBggqhkjOPQQDAjAYMRYwFAYDVQQDDA1mZXJyeSBm
dXp6IENBMCAXDTI2MTEyMTA2Mzg1MloYDzIxMjYxMDI4MDYzODUyWjAbMRkwFwYD
VQQDDBBmZXJyeS10ZXJtaW5hdG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
7Isv9KOAjEaCGx1mNcDXyynHiO74zXPiZ+bn8twrmuRLtNcawmbTbsK+aEAmcLBl
1J85nN4G3UApxXDoFPZte6OBkzCBkDAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQE
AwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAbBgNVHREEFDASghBmZXJyeS10ZXJt
aW5hdG9yMB0GA1UdDgQWBBT0e9u1H9hYa9h/kGF1v4KnHWr1ojAfBgNVHSMEGDAW
gBT45LuzcIKnlKKpyKLMkkGj9dVc0TAKBggqhkjOPQQDAgNJADBGAiEA9/AjTO2w
nRq2Z+Z5vjRn6TsbqJyfoteTX2fzWe5Gv8UCIQDUCElHntRMw5e1Fw4eAxaEJwM+
pwVD/QRT0hTWMwOv4g==
-----END CERTIFICATE-----
)PEM";

constexpr const char kServerKeyPem[] = R"PEM(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOPSooGkEHFYQ4AQB
vvH5R5ZgsWLR2tmZlnADUUV4twuhRANCAATsiy/0o4CMRoIbHWY1wNfLKceI7vjN
c+Jn5ufy3Cua5Eu01xrCZtNuwr5oQCZwsGXUnzmc3gbdQCnFcOgU9m17
-----END PRIVATE KEY-----
)PEM";

std::string write_file(const std::string& dir, const char* name, const char* text) {
    const std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr || std::fputs(text, f) < 0 || std::fclose(f) != 0) {
        std::perror(path.c_str());
        std::abort();
    }
    return path;
}

ferry::tls::TlsContext& server_context() {
    static ferry::tls::TlsContext* const ctx = [] {
        char tmpl[] = "/tmp/ferry-handshake-fuzz-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) {
            std::perror("mkdtemp");
            std::abort();
        }
        ferry::tls::TlsConfig config;
        config.is_server = true;
        config.ca_file = write_file(tmpl, "ca.crt", kCaPem);
        config.cert_file = write_file(tmpl, "server.crt", kServerCertPem);
        config.key_file = write_file(tmpl, "server.key", kServerKeyPem);
        auto created = ferry::tls::TlsContext::create(config);
        // Loaded once into memory; the files are not needed afterwards.
        unlink(config.ca_file.c_str());
        unlink(config.cert_file.c_str());
        unlink(config.key_file.c_str());
        rmdir(tmpl);
        if (!created.ok()) {
            std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
            std::abort();
        }
        return created->release();
    }();
    return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const size_t chunk = data[0] == 0 ? size : data[0];
    std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data) + 1, size - 1);

    ferry::tls::Handshake hs(server_context());
    std::byte sink[4096];
    ferry::tls::HandshakeStep step = hs.step();
    while (!input.empty() && step == ferry::tls::HandshakeStep::WantIo) {
        const size_t n = chunk < input.size() ? chunk : input.size();
        hs.feed(input.first(n));
        input = input.subspan(n);
        step = hs.step();
        while (hs.pending_output() > 0) {
            (void)hs.take_output(sink);
        }
    }
    if (step == ferry::tls::HandshakeStep::Failed && hs.failure_reason().empty()) {
        std::abort();  // every failure must say why
    }
    if (step == ferry::tls::HandshakeStep::Done) {
        (void)hs.keys();
        (void)hs.leftover_input();
    }
    return 0;
}
