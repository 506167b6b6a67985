#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "ferry/admin/admin_server.h"

namespace ferry::admin {
namespace {

// Where a shard's cells live: the loop's own and its services'.
struct ShardCells {
    const loop::Metrics& loop;
    const role::ShardMetrics& svc;
};

// CPU time of thread `tid` of this process in microseconds, from /proc (-1 when unreadable):
// schedstat's first field is nanoseconds on a CPU; stat's utime + stime (clock ticks) otherwise.
int64_t thread_cpu_us(int64_t tid) {
    if (tid <= 0) {
        return -1;
    }
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/self/task/%lld/schedstat",
                  static_cast<long long>(tid));
    if (FILE* f = std::fopen(path, "re"); f != nullptr) {
        unsigned long long ns = 0;
        const int n = std::fscanf(f, "%llu", &ns);
        std::fclose(f);
        if (n == 1) {
            return static_cast<int64_t>(ns / 1000);
        }
    }
    std::snprintf(path, sizeof(path), "/proc/self/task/%lld/stat", static_cast<long long>(tid));
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
        return -1;
    }
    char buf[1024];
    const size_t len = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[len] = '\0';
    // Fields after the command name, which may hold spaces: from the last ')'.
    const char* p = std::strrchr(buf, ')');
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    if (p == nullptr || std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                    &utime, &stime) != 2) {
        return -1;
    }
    const long hz = sysconf(_SC_CLK_TCK);
    return static_cast<int64_t>((utime + stime) * 1'000'000ULL /
                                static_cast<unsigned long long>(hz > 0 ? hz : 100));
}

struct MetricDef {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*read)(const ShardCells&);
};

#define FERRY_COUNTER(where, field, help)                                                   \
    {                                                                                       \
        "ferry_" #field "_total", "counter", help,                                          \
            [](const ShardCells& c) { return static_cast<int64_t>(c.where.field.value()); } \
    }
#define FERRY_GAUGE(where, field, help)                                                           \
    {                                                                                             \
        "ferry_" #field, "gauge", help, [](const ShardCells& c) { return c.where.field.value(); } \
    }

// One table drives the whole exposition, so a metric added to a module's Metrics needs one line
// here. Names are stable: dashboards and tests read them.
const MetricDef kMetrics[] = {
    FERRY_GAUGE(svc.role, ready, "1 when this shard can carry traffic"),
    FERRY_COUNTER(svc.role, connections_accepted,
                  "Local TCP connections accepted (clients or upstreams opened)"),
    FERRY_COUNTER(svc.role, connections_rejected,
                  "Connections refused: limit reached or no tunnel"),
    FERRY_GAUGE(svc.role, connections_active, "Local TCP connections open"),
    FERRY_COUNTER(svc.role, upstream_connect_errors, "Upstream connects that failed"),
    FERRY_COUNTER(svc.role, bytes_from_local, "Bytes read from local sockets"),
    FERRY_COUNTER(svc.role, bytes_to_local, "Bytes written to local sockets"),
    FERRY_GAUGE(svc.role, tunnel_up, "Established tunnel connections"),
    FERRY_COUNTER(svc.role, tunnel_connects, "Tunnel connections made or accepted"),
    FERRY_COUNTER(svc.role, tunnel_connect_failures,
                  "Tunnel connections that failed before HELLO (connect, handshake, timeout)"),
    FERRY_COUNTER(svc.role, tunnel_disconnects, "Established tunnel connections closed"),
    FERRY_GAUGE(svc.role, tunnel_pending,
                "Tunnel connections whose TLS handshake and HELLO are not done yet"),
    FERRY_COUNTER(svc.role, handshake_timeouts,
                  "Tunnel connections closed for not finishing the handshake in time"),
    FERRY_COUNTER(svc.role, pending_evicted,
                  "Unauthenticated tunnel connections closed to make room for new ones"),
    FERRY_COUNTER(svc.role, tunnels_refused, "Tunnel connections refused: --max-tunnels reached"),
    FERRY_COUNTER(svc.role, tunnel_handoffs_out,
                  "Tunnel connections accepted on this shard and handed to another (placement)"),
    FERRY_COUNTER(svc.role, tunnel_handoffs_in,
                  "Tunnel connections handed to this shard by another (placement)"),
    FERRY_GAUGE(svc.role, upstream_connects_in_flight, "Upstream connects in flight"),
    FERRY_COUNTER(svc.role, upstream_connects_refused,
                  "Streams refused because too many upstream connects were in flight"),
    FERRY_COUNTER(svc.tunnel, tunnel_protocol_errors,
                  "Tunnel connections closed for a protocol error"),
    FERRY_COUNTER(svc.transport, tunnel_bytes_in, "Bytes received on tunnel connections"),
    FERRY_COUNTER(svc.transport, tunnel_bytes_out, "Bytes sent on tunnel connections"),
    FERRY_COUNTER(svc.tunnel, frames_in, "Tunnel frames received"),
    FERRY_COUNTER(svc.tunnel, frames_out, "Tunnel frames sent"),
    FERRY_GAUGE(svc.tunnel, rtt_us, "Last tunnel PING round-trip time in microseconds"),
    FERRY_COUNTER(svc.tunnel, streams_opened, "Streams opened"),
    FERRY_GAUGE(svc.tunnel, streams_active, "Streams open"),
    FERRY_COUNTER(svc.tunnel, streams_refused, "Streams refused (limit or no handler)"),
    FERRY_COUNTER(svc.tunnel, resets_sent, "RESET frames sent"),
    FERRY_COUNTER(svc.tunnel, resets_received, "RESET frames received"),
    FERRY_COUNTER(svc.role, flow_paused, "Times a local reader paused for lack of credit"),
    FERRY_COUNTER(svc.transport, tls_handshakes, "Tunnel TLS handshakes completed"),
    FERRY_COUNTER(svc.transport, tls_handshake_failures, "Tunnel TLS handshakes refused or failed"),
    FERRY_GAUGE(svc.transport, tunnel_ktls,
                "Tunnel connections whose TLS records the kernel protects (kTLS)"),
    FERRY_COUNTER(svc.transport, key_updates_sent,
                  "Key rotations by TLS 1.3 KeyUpdate of our sending key"),
    FERRY_COUNTER(svc.transport, key_updates_received, "TLS 1.3 KeyUpdates received from the peer"),
    FERRY_COUNTER(svc.transport, rotations_reconnect,
                  "Key rotations by make-before-break reconnect"),
    FERRY_GAUGE(svc.transport, key_bytes, "Bytes sent under the current sending key"),
    FERRY_GAUGE(svc.transport, key_age_ms, "Age of the current sending key in milliseconds"),
    FERRY_COUNTER(svc.transport, bytes_copied,
                  "Payload bytes copied in user space by the data path"),
    {"ferry_client_tls_handshakes_total", "counter",
     "TLS handshakes completed with clients of wss:// listeners",
     [](const ShardCells& c) {
         return static_cast<int64_t>(c.svc.client_transport.tls_handshakes.value());
     }},
    {"ferry_client_tls_handshake_failures_total", "counter",
     "TLS handshakes with clients of wss:// listeners that failed",
     [](const ShardCells& c) {
         return static_cast<int64_t>(c.svc.client_transport.tls_handshake_failures.value());
     }},
    {"ferry_client_ktls", "gauge",
     "Client TLS connections whose records the kernel protects (kTLS)",
     [](const ShardCells& c) { return c.svc.client_transport.tunnel_ktls.value(); }},
    FERRY_COUNTER(loop.socket, send_zc, "Zero-copy sends issued"),
    FERRY_COUNTER(loop.socket, send_zc_copied,
                  "Sockets that fell back from SEND_ZC because the kernel copied (local delivery)"),
    FERRY_COUNTER(loop.socket, recv_no_buffers, "Receives that found the buffer ring empty"),
    FERRY_COUNTER(svc.transport, tls_buffer_waits,
                  "Times TLS sealing or record gathering waited for a free buffer"),
    FERRY_COUNTER(svc.transport, ws_upgrades,
                  "Tunnel WebSocket upgrades completed (--tunnel-transport=ws)"),
    FERRY_COUNTER(svc.transport, ws_upgrade_failures,
                  "Tunnel WebSocket upgrades refused or failed (--tunnel-transport=ws)"),
    FERRY_COUNTER(svc.transport, grpc_tunnel_streams,
                  "Tunnel gRPC calls opened (--tunnel-transport=grpc)"),
    FERRY_COUNTER(svc.transport, grpc_tunnel_failures,
                  "Tunnel gRPC calls refused or failed (--tunnel-transport=grpc)"),
    {"ferry_shard_cpu_microseconds_total", "counter",
     "CPU time of this shard's thread, user and system (io_uring submissions included)",
     [](const ShardCells& c) { return thread_cpu_us(c.loop.thread_id.value()); }},
    FERRY_GAUGE(loop, buffers_in_use,
                "Local-socket pool buffers held (lent to the kernel or holding data)"),
    FERRY_GAUGE(loop, tunnel_buffers_in_use,
                "Tunnel pool buffers held (lent to the kernel or holding data)"),
};

#undef FERRY_COUNTER
#undef FERRY_GAUGE

struct PeerMetricDef {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*read)(const role::PeerMetrics&);
};

const PeerMetricDef kPeerMetrics[] = {
    {"ferry_peer_streams_total", "counter", "Streams opened towards this terminator (initiator)",
     [](const role::PeerMetrics& p) { return static_cast<int64_t>(p.streams.value()); }},
    {"ferry_peer_streams_active", "gauge",
     "Streams open on this terminator's usable tunnel connections (initiator)",
     [](const role::PeerMetrics& p) { return p.streams_open.value(); }},
    {"ferry_peer_up", "gauge",
     "Usable tunnel connections to this terminator; 0 means its keys go to their runner-up",
     [](const role::PeerMetrics& p) { return p.up.value(); }},
    {"ferry_peer_tunnel_bytes_out_total", "counter",
     "Tunnel bytes sent to this terminator, over all its connections (initiator)",
     [](const role::PeerMetrics& p) { return static_cast<int64_t>(p.tunnel.bytes_out.value()); }},
    {"ferry_peer_tunnel_bytes_in_total", "counter",
     "Tunnel bytes received from this terminator, over all its connections (initiator)",
     [](const role::PeerMetrics& p) { return static_cast<int64_t>(p.tunnel.bytes_in.value()); }},
    {"ferry_peer_rtt_us", "gauge",
     "The latest PING round trip to this terminator, in microseconds (initiator)",
     [](const role::PeerMetrics& p) { return p.tunnel.rtt_us.value(); }},
};

// Per --peer metrics of an initiator, labelled by shard and peer (every shard has the same
// peers, in the same order).
void render_peer_metrics(std::span<const role::ShardMetrics* const> shards, std::string* out) {
    bool any = false;
    for (const role::ShardMetrics* s : shards) {
        std::lock_guard<std::mutex> lock(s->peers_mu);
        any = any || !s->peers.empty();
    }
    if (!any) {
        return;
    }
    for (const PeerMetricDef& def : kPeerMetrics) {
        absl::StrAppendFormat(out, "# HELP %s %s\n# TYPE %s %s\n", def.name, def.help, def.name,
                              def.type);
        for (size_t i = 0; i < shards.size(); ++i) {
            std::lock_guard<std::mutex> lock(shards[i]->peers_mu);
            for (const role::PeerMetrics& p : shards[i]->peers) {
                absl::StrAppendFormat(out, "%s{shard=\"%u\",peer=\"%s\"} %d\n", def.name, i, p.id,
                                      def.read(p));
            }
        }
    }
}

// gRPC calls by side, summed over the shards: code x side x duration bucket is already ~60
// series, and a shard label would multiply it for no question a dashboard asks. A side appears
// in the role that serves it.
void render_grpc_metrics(std::span<const role::ShardMetrics* const> shards, std::string_view role,
                         std::string* out) {
    struct Side {
        const char* name;
        role::GrpcMetrics role::Metrics::*cells;
    };
    constexpr Side kInitiator[] = {{"listener", &role::Metrics::grpc_listener}};
    constexpr Side kTerminator[] = {{"sink", &role::Metrics::grpc_sink},
                                    {"upstream", &role::Metrics::grpc_upstream}};
    const std::span<const Side> sides = role == "initiator" ? std::span<const Side>(kInitiator)
                                                            : std::span<const Side>(kTerminator);
    const auto sum = [&](const Side& side, auto read) {
        int64_t total = 0;
        for (const role::ShardMetrics* m : shards) {
            total += static_cast<int64_t>(read(m->role.*side.cells));
        }
        return total;
    };
    using proto::grpc::StatusCode;
    out->append(
        "# HELP ferry_grpc_calls_total gRPC calls ended, by side (listener: the initiator's "
        "clients; sink, upstream: the terminator) and grpc-status\n"
        "# TYPE ferry_grpc_calls_total counter\n");
    for (const Side& side : sides) {
        for (size_t code = 0; code < role::GrpcMetrics::kCodes; ++code) {
            absl::StrAppendFormat(
                out, "ferry_grpc_calls_total{side=\"%s\",code=\"%s\"} %d\n", side.name,
                proto::grpc::status_name(static_cast<StatusCode>(code)),
                sum(side, [code](const role::GrpcMetrics& g) { return g.calls[code].value(); }));
        }
    }
    out->append(
        "# HELP ferry_grpc_calls_active gRPC calls started and not ended\n"
        "# TYPE ferry_grpc_calls_active gauge\n");
    for (const Side& side : sides) {
        absl::StrAppendFormat(
            out, "ferry_grpc_calls_active{side=\"%s\"} %d\n", side.name,
            sum(side, [](const role::GrpcMetrics& g) { return g.active.value(); }));
    }
    out->append(
        "# HELP ferry_grpc_messages_total gRPC messages of calls: in = requests from the caller, "
        "out = responses to it\n"
        "# TYPE ferry_grpc_messages_total counter\n");
    for (const Side& side : sides) {
        absl::StrAppendFormat(
            out, "ferry_grpc_messages_total{side=\"%s\",direction=\"in\"} %d\n", side.name,
            sum(side, [](const role::GrpcMetrics& g) { return g.messages_in.value(); }));
        absl::StrAppendFormat(
            out, "ferry_grpc_messages_total{side=\"%s\",direction=\"out\"} %d\n", side.name,
            sum(side, [](const role::GrpcMetrics& g) { return g.messages_out.value(); }));
    }
    out->append(
        "# HELP ferry_grpc_call_duration_seconds gRPC calls from their request head to their "
        "status\n"
        "# TYPE ferry_grpc_call_duration_seconds histogram\n");
    for (const Side& side : sides) {
        int64_t cumulative = 0;
        for (size_t b = 0; b <= role::GrpcMetrics::kDurationBoundsUs.size(); ++b) {
            cumulative += sum(
                side, [b](const role::GrpcMetrics& g) { return g.duration_buckets[b].value(); });
            if (b < role::GrpcMetrics::kDurationBoundsUs.size()) {
                absl::StrAppendFormat(
                    out, "ferry_grpc_call_duration_seconds_bucket{side=\"%s\",le=\"%g\"} %d\n",
                    side.name, static_cast<double>(role::GrpcMetrics::kDurationBoundsUs[b]) / 1e6,
                    cumulative);
            } else {
                absl::StrAppendFormat(
                    out, "ferry_grpc_call_duration_seconds_bucket{side=\"%s\",le=\"+Inf\"} %d\n",
                    side.name, cumulative);
            }
        }
        const int64_t sum_us =
            sum(side, [](const role::GrpcMetrics& g) { return g.duration_us.value(); });
        absl::StrAppendFormat(out, "ferry_grpc_call_duration_seconds_sum{side=\"%s\"} %.6f\n",
                              side.name, static_cast<double>(sum_us) / 1e6);
        absl::StrAppendFormat(out, "ferry_grpc_call_duration_seconds_count{side=\"%s\"} %d\n",
                              side.name, cumulative);
    }
}

}  // namespace

std::string render_metrics(std::span<const loop::Metrics* const> loop_metrics,
                           std::span<const role::ShardMetrics* const> shard_metrics,
                           std::string_view role, std::string_view node_name) {
    const size_t shards = std::min(loop_metrics.size(), shard_metrics.size());
    std::string out;
    out.reserve(16384);
    absl::StrAppendFormat(&out,
                          "# HELP ferry_info Build and role of this process\n"
                          "# TYPE ferry_info gauge\n"
                          "ferry_info{role=\"%s\",node=\"%s\",shards=\"%u\"} 1\n",
                          role, node_name, shards);
    for (const MetricDef& def : kMetrics) {
        absl::StrAppendFormat(&out, "# HELP %s %s\n# TYPE %s %s\n", def.name, def.help, def.name,
                              def.type);
        for (size_t i = 0; i < shards; ++i) {
            const ShardCells cells{*loop_metrics[i], *shard_metrics[i]};
            absl::StrAppendFormat(&out, "%s{shard=\"%u\"} %d\n", def.name, i, def.read(cells));
        }
    }
    render_peer_metrics(shard_metrics.first(shards), &out);
    render_grpc_metrics(shard_metrics.first(shards), role, &out);
    return out;
}

void render_node_metrics(const io::NodeCheck& node, bool ktls_usable, std::string* out) {
    absl::StrAppendFormat(
        out,
        "# HELP ferry_node_io_uring_disabled The node's kernel.io_uring_disabled (0 allowed, 1 "
        "root and io_uring_group only, 2 off; -1 the kernel has no such switch)\n"
        "# TYPE ferry_node_io_uring_disabled gauge\n"
        "ferry_node_io_uring_disabled %d\n"
        "# HELP ferry_node_tls_module The kernel's tls module: loaded (or built in), available "
        "(installed, loaded on first use) or absent\n"
        "# TYPE ferry_node_tls_module gauge\n",
        node.io_uring_disabled);
    for (io::TlsModule m :
         {io::TlsModule::Loaded, io::TlsModule::Available, io::TlsModule::Absent}) {
        absl::StrAppendFormat(out, "ferry_node_tls_module{state=\"%s\"} %d\n",
                              io::tls_module_name(m), node.tls_module == m ? 1 : 0);
    }
    absl::StrAppendFormat(out,
                          "# HELP ferry_node_ktls_usable Whether kernel TLS offload works here\n"
                          "# TYPE ferry_node_ktls_usable gauge\n"
                          "ferry_node_ktls_usable %d\n",
                          ktls_usable ? 1 : 0);
}

}  // namespace ferry::admin
