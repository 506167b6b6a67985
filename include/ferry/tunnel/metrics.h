// Per-shard counters of the tunnel mux: sessions' frames, streams, resets, RTT. Written by the
// shard, read by the admin endpoint from any thread (see base::Counter).
#pragma once

#include "ferry/base/counter.h"

namespace ferry::tunnel {

struct Metrics {
    base::Counter tunnel_protocol_errors;  // connections closed for a protocol error
    base::Counter frames_in;
    base::Counter frames_out;
    base::Gauge rtt_us;
    base::Counter streams_opened;
    base::Gauge streams_active;
    base::Counter streams_refused;
    base::Counter resets_sent;
    base::Counter resets_received;
};

// One peer's share of the traffic, summed over every connection to it (the initiator keeps one
// per --peer and shard): tunnel bytes each way, as the mux hands them to and takes them from the
// transport (TLS records and kTLS framing not counted), and the latest PING round trip.
struct PeerCounters {
    base::Counter bytes_out;
    base::Counter bytes_in;
    base::Gauge rtt_us;
};

}  // namespace ferry::tunnel
