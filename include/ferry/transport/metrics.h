// Per-shard counters of the tunnel's transports: bytes on the wire, TLS handshakes, kTLS, key
// rotation, user-space copies. Written by the shard, read by the admin endpoint (base::Counter).
#pragma once

#include "ferry/base/counter.h"

namespace ferry::transport {

struct Metrics {
    base::Counter tunnel_bytes_in;  // bytes received on tunnel connections
    base::Counter tunnel_bytes_out;
    base::Counter tls_handshakes;
    base::Counter tls_handshake_failures;
    base::Gauge tunnel_ktls;         // established tunnel connections whose crypto is in the kernel
    base::Counter key_updates_sent;  // TLS 1.3 KeyUpdate rotations of our TX key
    base::Counter key_updates_received;
    base::Counter rotations_reconnect;  // rotations by make-before-break reconnect
    base::Gauge key_bytes;              // bytes sent under the current TX key (last link to report)
    base::Gauge key_age_ms;             // age of the current TX key
    base::Counter bytes_copied;         // payload bytes copied in user space (split TLS records,
                                        // masked ws client frames,
                                        // gRPC pieces outside the receive buffer)
    base::Counter tls_buffer_waits;     // TLS sealing or record gathering waited for a free buffer
    base::Counter ws_upgrades;          // tunnel WebSocket upgrades completed (either end)
    base::Counter ws_upgrade_failures;  // tunnel WebSocket upgrades refused or failed
    base::Counter grpc_tunnel_streams;  // tunnel gRPC calls opened (either end)
    base::Counter grpc_tunnel_failures;  // tunnel gRPC calls refused or failed
};

}  // namespace ferry::transport
