// OpenSSL callbacks that OpenSSL only takes per SSL_CTX (keylog, ClientHello, verify) while their
// state lives in the Handshake that owns each SSL: TlsContext installs them, handshake.cc defines
// them. Also the OpenSSL error-queue helpers shared by the module's boundaries.
#pragma once

#include <openssl/types.h>

#include <string>

namespace ferry::tls::internal {

// SSL_CTX_set_keylog_callback: captures the application traffic secrets (OpenSSL 3.0 has no
// getter).
void on_keylog_line(const SSL* ssl, const char* line);
// SSL_CTX_set_client_hello_cb: records the highest version the client offered, for the error text.
int on_client_hello(SSL* ssl, int* alert, void* arg);
// SSL_CTX_set_verify: enforces allowed_peer_names at depth 0 once the chain itself verified.
int on_verify(int preverify_ok, X509_STORE_CTX* store);

// Drains the thread's OpenSSL error queue into "reason (library); reason (library)", or
// `fallback` when the queue is empty.
std::string drain_openssl_errors(const char* fallback);

}  // namespace ferry::tls::internal
