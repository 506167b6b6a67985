#include "ferry/shard/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/base/check.h"

namespace ferry::shard {

Mailbox::Mailbox() {
    eventfd_ = eventfd(0, EFD_CLOEXEC);
    FERRY_CHECK(eventfd_ >= 0);
}

Mailbox::~Mailbox() { ::close(eventfd_); }

void Mailbox::attach(io::Ring* ring, io::Op* on_mail) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    owner_ring_ = ring;
    owner_ring_fd_ = ring->fd();
    on_mail_ = on_mail;
    io_uring_prep_read(ring->sqe(on_mail), eventfd_, &eventfd_value_, sizeof(eventfd_value_), 0);
}

void Mailbox::rearm() noexcept {
    io_uring_prep_read(owner_ring_->sqe(on_mail_), eventfd_, &eventfd_value_,
                       sizeof(eventfd_value_), 0);
}

void Mailbox::post(Message m, io::Ring* from) noexcept {
    int target = -1;
    io::Op* op = nullptr;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (exited_) {
            return;  // nobody will read it; never ring a ring fd that may have been reused
        }
        queue_.push_back(m);
        target = owner_ring_fd_;
        op = on_mail_;
    }
    if (from != nullptr && target >= 0 && from->features().msg_ring) {
        // The CQE lands in the owner's ring with user_data = its mail Op and res = 0.
        io_uring_sqe* sqe = from->sqe();
        io_uring_prep_msg_ring(sqe, target, 0, reinterpret_cast<uint64_t>(op), 0);
        io_uring_sqe_set_data(sqe, nullptr);
        io_uring_submit(from->raw());
        return;
    }
    // Not attached yet: the eventfd keeps the count, and attach() arms the read that sees it.
    uint64_t one = 1;
    ssize_t n = write(eventfd_, &one, sizeof(one));
    (void)n;
}

void Mailbox::detach() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    owner_ring_ = nullptr;
    owner_ring_fd_ = -1;
    on_mail_ = nullptr;
    exited_ = true;
}

void Mailbox::take(std::vector<Message>* out) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    out->insert(out->end(), queue_.begin(), queue_.end());
    queue_.clear();
}

}  // namespace ferry::shard
