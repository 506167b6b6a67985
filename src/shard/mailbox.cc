#include "ferry/shard/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/base/check.h"

namespace ferry::shard {

Doorbell::Doorbell() {
    eventfd_ = eventfd(0, EFD_CLOEXEC);
    FERRY_CHECK(eventfd_ >= 0);
}

Doorbell::~Doorbell() { ::close(eventfd_); }

void Doorbell::attach(io::Ring* ring, io::Op* on_mail) noexcept {
    owner_ring_ = ring;
    owner_ring_fd_ = ring->fd();
    on_mail_ = on_mail;
    io_uring_prep_read(ring->sqe(on_mail), eventfd_, &eventfd_value_, sizeof(eventfd_value_), 0);
}

void Doorbell::rearm() noexcept {
    io_uring_prep_read(owner_ring_->sqe(on_mail_), eventfd_, &eventfd_value_,
                       sizeof(eventfd_value_), 0);
}

void Doorbell::detach() noexcept {
    owner_ring_ = nullptr;
    owner_ring_fd_ = -1;
    on_mail_ = nullptr;
}

void Doorbell::ring(Target t, io::Ring* from) noexcept {
    if (from != nullptr && t.ring_fd >= 0 && from->features().msg_ring) {
        // The CQE lands in the owner's ring with user_data = its mail Op and res = 0.
        io_uring_sqe* sqe = from->sqe();
        io_uring_prep_msg_ring(sqe, t.ring_fd, 0, reinterpret_cast<uint64_t>(t.op), 0);
        io_uring_sqe_set_data(sqe, nullptr);
        io_uring_submit(from->raw());
        return;
    }
    // Not attached yet: the eventfd keeps the count, and attach() arms the read that sees it.
    uint64_t one = 1;
    ssize_t n = write(eventfd_, &one, sizeof(one));
    (void)n;
}

}  // namespace ferry::shard
