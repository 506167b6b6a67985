#include "ferry/role/h2_output.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "ferry/proto/grpc/wire.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace grpc = proto::grpc;

namespace {

// GrpcOutbox node tags: bytes that return no tunnel credit when they leave (a rebuilt prefix, or
// a piece credited when it arrived).
constexpr uint8_t kTagNoCredit = 1;

}  // namespace

// ---- H2Output ---------------------------------------------------------------------------------

bool H2Output::reserve(size_t need) noexcept {
    if (!staging_.empty() && staging_.size() - staging_end_ >= need) {
        return true;
    }
    seal();
    staging_ = ctx_.local_pool.try_alloc();
    staging_start_ = staging_end_ = 0;
    return !staging_.empty();
}

void H2Output::seal() noexcept {
    if (!staging_.empty() && staging_end_ > staging_start_) {
        out_.push(ctx_.nodes, staging_.share(staging_start_, staging_end_ - staging_start_));
        staging_start_ = staging_end_;
    }
}

ssize_t H2Output::copy_frame(const uint8_t* data, size_t len) noexcept {
    if (out_.bytes() > kMaxPending) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    size_t done = 0;
    while (done < len) {
        if (!reserve(1)) {
            return done > 0 ? static_cast<ssize_t>(done) : ssize_t{NGHTTP2_ERR_WOULDBLOCK};
        }
        const size_t n = std::min<size_t>(len - done, staging_.size() - staging_end_);
        std::memcpy(staging_.data() + staging_end_, data + done, n);
        staging_end_ += static_cast<uint32_t>(n);
        done += n;
    }
    return static_cast<ssize_t>(done);
}

bool H2Output::data_header(const uint8_t* framehd) noexcept {
    if (out_.bytes() > kMaxPending || !reserve(9)) {
        return false;
    }
    std::memcpy(staging_.data() + staging_end_, framehd, 9);
    staging_end_ += 9;
    seal();
    return true;
}

buf::Chunk H2Output::carve(size_t n) noexcept {
    seal();
    if (!reserve(n)) {
        return {};
    }
    buf::Chunk c = staging_.share(staging_end_, static_cast<uint32_t>(n));
    staging_end_ += static_cast<uint32_t>(n);
    staging_start_ = staging_end_;
    return c;
}

bool H2Output::write_to(transport::Transport& transport) noexcept {
    if (sending_) {
        return true;
    }
    seal();
    if (out_.empty()) {
        return false;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (buf::ChunkNode* node = out_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        iov_[n].iov_base = node->chunk.data();
        iov_[n].iov_len = node->chunk.size();
        bytes += node->chunk.size();
        ++n;
    }
    sending_ = true;
    sending_nodes_ = n;
    transport.write(iov_, n, bytes);
    return true;
}

bool H2Output::written() noexcept {
    sending_ = false;
    for (uint32_t i = 0; i < sending_nodes_ && !out_.empty(); ++i) {
        (void)out_.pop(ctx_.nodes);
    }
    sending_nodes_ = 0;
    return !out_.empty();
}

void H2Output::clear() noexcept {
    out_.clear(ctx_.nodes);
    staging_.reset();
    staging_start_ = staging_end_ = 0;
}

void H2Output::release_idle() noexcept {
    if (out_.empty() && !sending_) {
        staging_.reset();
        staging_start_ = staging_end_ = 0;
    }
}

// ---- GrpcOutbox -------------------------------------------------------------------------------

GrpcOutbox::Refusal GrpcOutbox::push(loop::Context& ctx, H2Output& out, tunnel::Stream& stream,
                                     buf::Chunk&& data, pt::DataFlags flags,
                                     uint32_t max_message) noexcept {
    if (flags.kind() != pt::MessageKind::Binary && flags.kind() != pt::MessageKind::Compressed) {
        return {grpc::StatusCode::Internal, "the far side sent a message of a kind gRPC has not"};
    }
    const uint32_t size = data.size();
    if (partial_.bytes() + size > max_message) {
        return {grpc::StatusCode::ResourceExhausted,
                "message larger than the maximum message size"};
    }
    if (!flags.end_message()) {
        stream.consumed(size);
        if (size > 0) {
            partial_.push(ctx.nodes, std::move(data), kTagNoCredit);
        }
        return {};
    }
    const auto length = static_cast<uint32_t>(partial_.bytes() + size);
    buf::Chunk prefix = out.carve(grpc::kPrefixSize);
    if (prefix.empty()) {
        return {grpc::StatusCode::ResourceExhausted, "no free buffer for a message"};
    }
    grpc::write_prefix(std::span<std::byte, grpc::kPrefixSize>(prefix.data(), grpc::kPrefixSize),
                       flags.kind() == pt::MessageKind::Compressed, length);
    ready_.push(ctx.nodes, std::move(prefix), kTagNoCredit);
    while (!partial_.empty()) {
        const uint8_t tag = partial_.head()->tag;
        ready_.push(ctx.nodes, partial_.pop(ctx.nodes), tag);
    }
    if (size > 0) {
        ready_.push(ctx.nodes, std::move(data), 0);
    }
    return {};
}

bool GrpcOutbox::take(loop::Context& ctx, H2Output& out, size_t len, uint64_t* credit) noexcept {
    *credit = 0;
    while (len > 0 && !ready_.empty()) {
        buf::ChunkNode* head = ready_.head();
        const uint32_t size = head->chunk.size();
        const bool credits = head->tag == 0;
        buf::Chunk piece;
        if (size <= len) {
            piece = ready_.pop(ctx.nodes);
        } else {
            piece = head->chunk.share(0, static_cast<uint32_t>(len));
            ready_.consume(ctx.nodes, len);
        }
        len -= piece.size();
        if (credits) {
            *credit += piece.size();
        }
        out.push(std::move(piece));
    }
    return len == 0;
}

buf::Chunk slice_of_input(loop::Context& ctx, buf::Chunk* reading,
                          std::span<const std::byte> piece) noexcept {
    if (piece.empty()) {
        return {};
    }
    if (reading != nullptr && piece.data() >= reading->data() &&
        piece.data() + piece.size() <= reading->data() + reading->size()) {
        const auto offset = static_cast<uint32_t>(piece.data() - reading->data());
        return reading->share(offset, static_cast<uint32_t>(piece.size()));
    }
    buf::Chunk copy = ctx.local_pool.try_alloc();
    if (copy.empty() || copy.size() < piece.size()) {
        return {};
    }
    std::memcpy(copy.data(), piece.data(), piece.size());
    return copy.share(0, static_cast<uint32_t>(piece.size()));
}

}  // namespace ferry::role
