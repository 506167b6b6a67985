#include "ferry/tls/alert.h"

#include <gtest/gtest.h>

namespace ferry::tls {
namespace {

TEST(Alert, NamesFollowRfc8446) {
    EXPECT_STREQ(alert_name(0), "close_notify");
    EXPECT_STREQ(alert_name(static_cast<uint8_t>(AlertDescription::CertificateRequired)),
                 "certificate_required");
    EXPECT_STREQ(alert_name(48), "unknown_ca");
    EXPECT_STREQ(alert_name(200), "unknown_alert");
}

TEST(Alert, PeerTextIsStaticAndNamesTheAlert) {
    const char* text = peer_alert_text(45);
    EXPECT_STREQ(text, "peer sent alert certificate_expired");
    EXPECT_EQ(text, peer_alert_text(45)) << "one static string per alert";
    EXPECT_STREQ(peer_alert_text(7), "peer sent alert unknown_alert");
}

}  // namespace
}  // namespace ferry::tls
