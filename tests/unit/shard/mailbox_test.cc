#include "ferry/shard/mailbox.h"

#include <gtest/gtest.h>
#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/io/op.h"
#include "ferry/io/ring.h"

namespace ferry::shard {
namespace {

// The owner's mail op, as Shard::on_mail does it: re-arm after a doorbell, then take.
class MailOp final : public io::Op {
  public:
    explicit MailOp(Mailbox& mailbox) : mailbox_(mailbox) {}
    void complete(int32_t res, uint32_t) noexcept override {
        results.push_back(res);
        if (res == sizeof(uint64_t)) {
            mailbox_.rearm();
        }
        mailbox_.take(&messages);
    }
    std::vector<int32_t> results;
    std::vector<Message> messages;

  private:
    Mailbox& mailbox_;
};

std::unique_ptr<io::Ring> make_ring() {
    io::RingOptions options;
    options.entries = 64;
    absl::StatusOr<std::unique_ptr<io::Ring>> ring = io::Ring::create(options);
    return ring.ok() ? *std::move(ring) : nullptr;
}

class MailboxTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ring_ = make_ring();
        if (ring_ == nullptr) {
            GTEST_SKIP() << "io_uring is not available";
        }
    }

    // The owner's loop: waits (bounded) for the mail op until `n` messages were taken.
    bool receive(size_t n) {
        const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
        for (int i = 0; i < 10000 && op_.messages.size() < n && base::mono_ns() < deadline; ++i) {
            __kernel_timespec ts{0, 50'000'000};
            io_uring_cqe* cqe = nullptr;
            (void)io_uring_submit_and_wait_timeout(ring_->raw(), &cqe, 1, &ts, nullptr);
            ring_->dispatch();
        }
        return op_.messages.size() >= n;
    }

    static std::vector<MessageType> types(const std::vector<Message>& messages) {
        std::vector<MessageType> out;
        for (const Message& m : messages) {
            out.push_back(m.type);
        }
        return out;
    }

    // Order matters: the ring goes first, so no read is pending into a dead mailbox.
    Mailbox mailbox_;
    MailOp op_{mailbox_};
    std::unique_ptr<io::Ring> ring_;
};

const std::vector<MessageType> kSequence = {
    MessageType::Drain, MessageType::Stop,  MessageType::Stop,
    MessageType::Drain, MessageType::Drain, MessageType::Stop,
};

TEST_F(MailboxTest, EventfdPostFromAnotherThreadWakesTheOwner) {
    mailbox_.attach(ring_.get(), &op_);
    std::thread producer([&] {
        for (MessageType t : kSequence) {
            mailbox_.post(Message{t}, nullptr);
        }
    });
    ASSERT_TRUE(receive(kSequence.size()));
    producer.join();
    EXPECT_EQ(types(op_.messages), kSequence);
    ASSERT_FALSE(op_.results.empty());
    EXPECT_EQ(op_.results[0], static_cast<int32_t>(sizeof(uint64_t)));
}

TEST_F(MailboxTest, TheEventfdDoorbellIsRearmedAfterEachWakeUp) {
    mailbox_.attach(ring_.get(), &op_);
    for (size_t i = 0; i < 3; ++i) {
        std::thread producer([&] { mailbox_.post(Message{MessageType::Drain}, nullptr); });
        producer.join();
        ASSERT_TRUE(receive(i + 1)) << "wake-up " << i;
    }
    EXPECT_EQ(op_.results.size(), 3U);
}

TEST_F(MailboxTest, MsgRingPostFromAnotherRingWakesTheOwner) {
    if (!ring_->features().msg_ring) {
        GTEST_SKIP() << "no IORING_OP_MSG_RING";
    }
    mailbox_.attach(ring_.get(), &op_);
    std::atomic<bool> sender_ok{true};
    std::thread producer([&] {
        // The sender's ring is created on its own thread (SINGLE_ISSUER).
        std::unique_ptr<io::Ring> mine = make_ring();
        if (mine == nullptr || !mine->features().msg_ring) {
            sender_ok = false;
            return;
        }
        for (MessageType t : kSequence) {
            mailbox_.post(Message{t}, mine.get());
        }
        // Reap the sender-side completions of the MSG_RING SQEs.
        unsigned seen = 0;
        for (int i = 0; i < 100 && seen < kSequence.size(); ++i) {
            __kernel_timespec ts{0, 50'000'000};
            io_uring_cqe* cqe = nullptr;
            (void)io_uring_submit_and_wait_timeout(mine->raw(), &cqe, 1, &ts, nullptr);
            seen += mine->dispatch();
        }
    });
    ASSERT_TRUE(receive(kSequence.size()));
    producer.join();
    ASSERT_TRUE(sender_ok.load());
    EXPECT_EQ(types(op_.messages), kSequence);
    for (int32_t res : op_.results) {
        EXPECT_EQ(res, 0) << "MSG_RING wake-ups carry res 0, never the doorbell's 8";
    }
}

TEST_F(MailboxTest, MessagesPostedBeforeAttachArriveOnceAttached) {
    mailbox_.post(Message{MessageType::Stop}, nullptr);
    mailbox_.post(Message{MessageType::Drain}, ring_.get());  // no owner yet: falls back
    mailbox_.attach(ring_.get(), &op_);
    ASSERT_TRUE(receive(2));
    EXPECT_EQ(types(op_.messages),
              (std::vector<MessageType>{MessageType::Stop, MessageType::Drain}));
}

TEST_F(MailboxTest, TakeEmptiesTheQueue) {
    mailbox_.post(Message{MessageType::Drain}, nullptr);
    std::vector<Message> out;
    mailbox_.take(&out);
    EXPECT_EQ(out.size(), 1U);
    mailbox_.take(&out);
    EXPECT_EQ(out.size(), 1U);
}

TEST_F(MailboxTest, ManyProducersLoseNothing) {
    mailbox_.attach(ring_.get(), &op_);
    constexpr int kThreads = 4;
    constexpr int kEach = 250;
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
        producers.emplace_back([&] {
            for (int i = 0; i < kEach; ++i) {
                mailbox_.post(Message{MessageType::Drain}, nullptr);
            }
        });
    }
    ASSERT_TRUE(receive(kThreads * kEach));
    for (std::thread& p : producers) {
        p.join();
    }
    EXPECT_EQ(op_.messages.size(), static_cast<size_t>(kThreads * kEach));
}

}  // namespace
}  // namespace ferry::shard
