#include "ferry/role/metrics.h"

namespace ferry::role {

void GrpcCallMeter::end(proto::grpc::StatusCode code, uint64_t now_ns) noexcept {
    if (metrics_ == nullptr) {
        return;
    }
    auto index = static_cast<size_t>(code);
    if (index >= GrpcMetrics::kCodes) {
        index = static_cast<size_t>(proto::grpc::StatusCode::Unknown);
    }
    metrics_->calls[index].add();
    metrics_->active.add(-1);
    const uint64_t us = now_ns > start_ns_ ? (now_ns - start_ns_) / 1000 : 0;
    size_t bucket = 0;
    while (bucket < GrpcMetrics::kDurationBoundsUs.size() &&
           us > GrpcMetrics::kDurationBoundsUs[bucket]) {
        ++bucket;
    }
    metrics_->duration_buckets[bucket].add();
    metrics_->duration_us.add(us);
    metrics_ = nullptr;
}

}  // namespace ferry::role
