// Per-shard counters of the data path. Written only by the owning shard, read by the admin
// endpoint from any shard (see base::Counter); rendered as Prometheus text with a shard label.
#pragma once

#include "ferry/base/counter.h"

namespace ferry::tunnel {

struct Metrics {
    // 1 once this shard's service can carry traffic (/ready).
    base::Gauge ready;
    // Local sockets (clients at the initiator, upstreams at the terminator).
    base::Counter connections_accepted;
    base::Counter connections_rejected;  // over --max-connections or no tunnel
    base::Gauge connections_active;
    base::Counter upstream_connect_errors;
    base::Counter bytes_from_local;
    base::Counter bytes_to_local;
    // Tunnel connections.
    base::Gauge tunnel_up;  // established sessions on this shard
    base::Counter tunnel_connects;
    base::Counter tunnel_connect_failures;
    base::Counter tunnel_disconnects;
    base::Counter tunnel_protocol_errors;
    base::Counter tunnel_bytes_in;
    base::Counter tunnel_bytes_out;
    base::Counter frames_in;
    base::Counter frames_out;
    base::Gauge rtt_us;
    // Streams.
    base::Counter streams_opened;
    base::Gauge streams_active;
    base::Counter streams_refused;
    base::Counter resets_sent;
    base::Counter resets_received;
    base::Counter flow_paused;  // times a local reader was paused for lack of credit
    // Armored tunnel.
    base::Counter tls_handshakes;
    base::Counter tls_handshake_failures;
    base::Gauge tunnel_ktls;         // established tunnel connections whose crypto is in the kernel
    base::Counter key_updates_sent;  // TLS 1.3 KeyUpdate rotations of our TX key
    base::Counter key_updates_received;
    base::Counter rotations_reconnect;  // rotations by make-before-break reconnect
    base::Gauge key_bytes;              // bytes sent under the current TX key (last link to report)
    base::Gauge key_age_ms;             // age of the current TX key
    // Buffers and copies.
    base::Counter bytes_copied;     // payload bytes the data path copied in user space
    base::Counter send_zc;          // zero-copy sends issued
    base::Counter send_zc_copied;   // sockets that stopped SEND_ZC because the kernel copied anyway
    base::Counter recv_no_buffers;  // multishot recv ended because the buffer ring ran dry
    base::Counter tls_buffer_waits;  // TLS sealing or record gathering waited for a free buffer
    base::Gauge buffers_in_use;
    base::Gauge tunnel_buffers_in_use;
};

}  // namespace ferry::tunnel
