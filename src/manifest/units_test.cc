#include "manifest/units.h"

#include <gtest/gtest.h>

#include "manifest/yaml_reader.h"

namespace hafab::manifest {
namespace {

TEST(ByteSizeTest, ParsesDecimalAndBinaryUnits) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("500M"), 500'000'000u);
  EXPECT_EQ(*ParseByteSize("1G"), 1'000'000'000u);
  EXPECT_EQ(*ParseByteSize("2k"), 2000u);
  EXPECT_EQ(*ParseByteSize("2K"), 2000u);
  EXPECT_EQ(*ParseByteSize("256Mi"), 256u << 20);
  EXPECT_EQ(*ParseByteSize("1Gi"), 1u << 30);
  EXPECT_EQ(*ParseByteSize("3Ki"), 3u * 1024);
  EXPECT_EQ(*ParseByteSize("1Ti"), 1ULL << 40);
}

TEST(ByteSizeTest, RejectsWithReason) {
  EXPECT_EQ(ParseByteSize("256MB").status().message(),
            "invalid size \"256MB\": unknown unit \"MB\" (write bytes, or a whole number with K, "
            "M, G, T (1000s) or Ki, Mi, Gi, Ti (1024s), e.g. 256Mi)");
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("Mi").ok());
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_FALSE(ParseByteSize("1.5Gi").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("20000000Ti").ok());  // overflows 64 bits
}

TEST(ByteSizeTest, FormatsShortestExactForm) {
  EXPECT_EQ(FormatByteSize(0), "0");
  EXPECT_EQ(FormatByteSize(256u << 20), "256Mi");
  EXPECT_EQ(FormatByteSize(500'000'000), "500M");
  EXPECT_EQ(FormatByteSize(1000), "1K");
  EXPECT_EQ(FormatByteSize(1023), "1023");
  for (uint64_t b : {1ULL, 1024ULL, 1536ULL, 999ULL, 3ULL << 40, 123456789ULL}) {
    EXPECT_EQ(*ParseByteSize(FormatByteSize(b)), b) << b;
  }
}

TEST(HostPortTest, Splits) {
  auto hp = ParseHostPort("127.0.0.1:7000", 1);
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 7000);
  auto v6 = ParseHostPort("[::1]:80", 1);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(ParseHostPort("localhost:0", 0).ok());
  EXPECT_TRUE(ParseHostPort("db-1.example.com:5432", 1).ok());
}

TEST(HostPortTest, SaysWhatIsWrong) {
  EXPECT_EQ(ParseHostPort("7000", 1).status().message(),
            "\"7000\" is not host:port: missing \":port\"");
  EXPECT_EQ(ParseHostPort(":7000", 1).status().message(),
            "\":7000\" is not host:port: missing host (e.g. 127.0.0.1 or 0.0.0.0)");
  EXPECT_EQ(ParseHostPort("127.0.0.1:0", 1).status().message(),
            "\"127.0.0.1:0\" is not host:port: the port must be in 1..65535");
  EXPECT_EQ(ParseHostPort("127.0.0.1:http", 1).status().message(),
            "\"127.0.0.1:http\" is not host:port: the port must be a number");
  EXPECT_EQ(ParseHostPort("::1:80", 1).status().message(),
            "\"::1:80\" is not host:port: write IPv6 addresses in brackets, e.g. [::1]:7000");
  EXPECT_FALSE(ParseHostPort("[::1]80", 1).ok());
  EXPECT_FALSE(ParseHostPort("[zz]:80", 1).ok());
  EXPECT_FALSE(ParseHostPort("a b:80", 1).ok());
  EXPECT_FALSE(ParseHostPort("h:65536", 1).ok());
}

TEST(CidrTest, AcceptsAddressesAndPrefixes) {
  for (const char* ok : {"127.0.0.0/8", "10.1.2.3", "0.0.0.0/0", "::1", "fd00::/8", "::/128"}) {
    EXPECT_TRUE(IsIpOrCidr(ok)) << ok;
  }
  for (const char* bad : {"10.0.0.0/33", "10.0.0/8", "web", "10.0.0.0/", "10.0.0.0/8/8", "::/129",
                          "1.2.3.4/-1", ""}) {
    EXPECT_FALSE(IsIpOrCidr(bad)) << bad;
  }
}

TEST(NameTest, FollowsTheRule) {
  EXPECT_TRUE(IsValidName("kvd"));
  EXPECT_TRUE(IsValidName("kvd-data_2"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("1kvd"));
  EXPECT_FALSE(IsValidName("my role"));
  EXPECT_FALSE(IsValidName("a/b"));
  EXPECT_FALSE(IsValidName(std::string(64, 'a')));
  EXPECT_TRUE(IsValidName(std::string(63, 'a')));
}

TEST(ClosestKeyTest, SuggestsOnlyLikelyTypos) {
  constexpr std::string_view kKeys[] = {"name", "instances", "fault_domain", "mode", "max"};
  EXPECT_EQ(ClosestKey("instnaces", kKeys), "instances");  // a swap is one edit
  EXPECT_EQ(ClosestKey("instance", kKeys), "instances");
  EXPECT_EQ(ClosestKey("Name", kKeys), "name");
  EXPECT_EQ(ClosestKey("fault-domain", kKeys), "fault_domain");
  EXPECT_EQ(ClosestKey("faultDomain", kKeys), "fault_domain");
  EXPECT_EQ(ClosestKey("mdoe", kKeys), "mode");
  EXPECT_EQ(ClosestKey("replicas", kKeys), "");
  EXPECT_EQ(ClosestKey("xyz", kKeys), "");
}

}  // namespace
}  // namespace hafab::manifest
