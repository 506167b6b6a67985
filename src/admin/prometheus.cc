#include <string>

#include "absl/strings/str_format.h"
#include "ferry/admin/admin_server.h"

namespace ferry::admin {
namespace {

struct MetricDef {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*read)(const tunnel::Metrics&);
};

#define FERRY_COUNTER(field, help)                                                         \
    {                                                                                      \
        "ferry_" #field "_total", "counter", help,                                         \
            [](const tunnel::Metrics& m) { return static_cast<int64_t>(m.field.value()); } \
    }
#define FERRY_GAUGE(field, help)                                                                 \
    {                                                                                            \
        "ferry_" #field, "gauge", help, [](const tunnel::Metrics& m) { return m.field.value(); } \
    }

// One table drives the whole exposition, so a metric added to Metrics needs one line here.
const MetricDef kMetrics[] = {
    FERRY_GAUGE(ready, "1 when this shard can carry traffic"),
    FERRY_COUNTER(connections_accepted,
                  "Local TCP connections accepted (clients or upstreams opened)"),
    FERRY_COUNTER(connections_rejected, "Connections refused: limit reached or no tunnel"),
    FERRY_GAUGE(connections_active, "Local TCP connections open"),
    FERRY_COUNTER(upstream_connect_errors, "Upstream connects that failed"),
    FERRY_COUNTER(bytes_from_local, "Bytes read from local sockets"),
    FERRY_COUNTER(bytes_to_local, "Bytes written to local sockets"),
    FERRY_GAUGE(tunnel_up, "Established tunnel connections"),
    FERRY_COUNTER(tunnel_connects, "Tunnel connections made or accepted"),
    FERRY_COUNTER(tunnel_connect_failures, "Tunnel connect attempts that failed"),
    FERRY_COUNTER(tunnel_disconnects, "Tunnel connections closed"),
    FERRY_COUNTER(tunnel_protocol_errors, "Tunnel connections closed for a protocol error"),
    FERRY_COUNTER(tunnel_bytes_in, "Bytes received on tunnel connections"),
    FERRY_COUNTER(tunnel_bytes_out, "Bytes sent on tunnel connections"),
    FERRY_COUNTER(frames_in, "Tunnel frames received"),
    FERRY_COUNTER(frames_out, "Tunnel frames sent"),
    FERRY_GAUGE(rtt_us, "Last tunnel PING round-trip time in microseconds"),
    FERRY_COUNTER(streams_opened, "Streams opened"),
    FERRY_GAUGE(streams_active, "Streams open"),
    FERRY_COUNTER(streams_refused, "Streams refused (limit or no handler)"),
    FERRY_COUNTER(resets_sent, "RESET frames sent"),
    FERRY_COUNTER(resets_received, "RESET frames received"),
    FERRY_COUNTER(flow_paused, "Times a local reader paused for lack of credit"),
    FERRY_COUNTER(tls_handshakes, "Tunnel TLS handshakes completed"),
    FERRY_COUNTER(tls_handshake_failures, "Tunnel TLS handshakes refused or failed"),
    FERRY_GAUGE(tunnel_ktls, "Tunnel connections whose TLS records the kernel protects (kTLS)"),
    FERRY_COUNTER(key_updates_sent, "Key rotations by TLS 1.3 KeyUpdate of our sending key"),
    FERRY_COUNTER(key_updates_received, "TLS 1.3 KeyUpdates received from the peer"),
    FERRY_COUNTER(rotations_reconnect, "Key rotations by make-before-break reconnect"),
    FERRY_GAUGE(key_bytes, "Bytes sent under the current sending key"),
    FERRY_GAUGE(key_age_ms, "Age of the current sending key in milliseconds"),
    FERRY_COUNTER(bytes_copied, "Payload bytes copied in user space by the data path"),
    FERRY_COUNTER(send_zc, "Zero-copy sends issued"),
    FERRY_COUNTER(send_zc_copied,
                  "Sockets that fell back from SEND_ZC because the kernel copied (local delivery)"),
    FERRY_COUNTER(recv_no_buffers, "Receives that found the buffer ring empty"),
    FERRY_COUNTER(tls_buffer_waits,
                  "Times TLS sealing or record gathering waited for a free buffer"),
    FERRY_GAUGE(buffers_in_use,
                "Local-socket pool buffers held (lent to the kernel or holding data)"),
    FERRY_GAUGE(tunnel_buffers_in_use,
                "Tunnel pool buffers held (lent to the kernel or holding data)"),
};

#undef FERRY_COUNTER
#undef FERRY_GAUGE

}  // namespace

std::string render_metrics(const shard::Runtime& runtime, std::string_view role,
                           std::string_view node_name) {
    std::string out;
    out.reserve(16384);
    absl::StrAppendFormat(&out,
                          "# HELP ferry_info Build and role of this process\n"
                          "# TYPE ferry_info gauge\n"
                          "ferry_info{role=\"%s\",node=\"%s\",shards=\"%u\"} 1\n",
                          role, node_name, runtime.shard_count());
    for (const MetricDef& def : kMetrics) {
        absl::StrAppendFormat(&out, "# HELP %s %s\n# TYPE %s %s\n", def.name, def.help, def.name,
                              def.type);
        for (size_t i = 0; i < runtime.shard_count(); ++i) {
            absl::StrAppendFormat(&out, "%s{shard=\"%u\"} %d\n", def.name, i,
                                  def.read(runtime.metrics(i)));
        }
    }
    return out;
}

}  // namespace ferry::admin
