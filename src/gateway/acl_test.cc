#include "gateway/acl.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace hafab::gateway {
namespace {

sockaddr_storage V4(const char* ip) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
  return s;
}

sockaddr_storage V6(const char* ip) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&s);
  a->sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &a->sin6_addr);
  return s;
}

bool Contains(const Cidr& c, const sockaddr_storage& s) {
  return c.Contains(reinterpret_cast<const sockaddr*>(&s));
}

TEST(CidrTest, ParsesIpv4PrefixesAndMatches) {
  auto c = Cidr::Parse("10.1.0.0/16");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(Contains(*c, V4("10.1.2.3")));
  EXPECT_TRUE(Contains(*c, V4("10.1.255.255")));
  EXPECT_FALSE(Contains(*c, V4("10.2.0.1")));
  EXPECT_FALSE(Contains(*c, V6("::1")));
  EXPECT_EQ(c->ToString(), "10.1.0.0/16");
}

// fuzz/corpus/fuzz_acl/mapped: a CIDR written in IPv4-mapped form names IPv4 clients.
TEST(CidrTest, MappedCidrMatchesAsIpv4) {
  auto host = Cidr::Parse("::ffff:10.1.2.3");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->ToString(), "10.1.2.3/32");
  auto v4 = V4("10.1.2.3"), mapped = V6("::ffff:10.1.2.3");
  EXPECT_TRUE(host->Contains(reinterpret_cast<const sockaddr*>(&v4)));
  EXPECT_TRUE(host->Contains(reinterpret_cast<const sockaddr*>(&mapped)));
  auto net = Cidr::Parse("::ffff:10.0.0.0/104");
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->ToString(), "10.0.0.0/8");
}

TEST(CidrTest, NonByteAlignedPrefix) {
  auto c = Cidr::Parse("192.168.1.64/27");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(Contains(*c, V4("192.168.1.64")));
  EXPECT_TRUE(Contains(*c, V4("192.168.1.95")));
  EXPECT_FALSE(Contains(*c, V4("192.168.1.96")));
  EXPECT_FALSE(Contains(*c, V4("192.168.1.63")));
}

TEST(CidrTest, HostBitsAreCleared) {
  auto c = Cidr::Parse("10.1.2.3/8");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ToString(), "10.0.0.0/8");
  EXPECT_TRUE(Contains(*c, V4("10.200.0.1")));
}

TEST(CidrTest, BareAddressIsHostRoute) {
  auto c = Cidr::Parse("127.0.0.1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ToString(), "127.0.0.1/32");
  EXPECT_TRUE(Contains(*c, V4("127.0.0.1")));
  EXPECT_FALSE(Contains(*c, V4("127.0.0.2")));
  auto c6 = Cidr::Parse("::1");
  ASSERT_TRUE(c6.ok());
  EXPECT_EQ(c6->ToString(), "::1/128");
  EXPECT_TRUE(Contains(*c6, V6("::1")));
}

TEST(CidrTest, ZeroPrefixMatchesWholeFamily) {
  auto c = Cidr::Parse("0.0.0.0/0");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(Contains(*c, V4("8.8.8.8")));
  EXPECT_FALSE(Contains(*c, V6("2001:db8::1")));
}

TEST(CidrTest, Ipv6Prefixes) {
  auto c = Cidr::Parse("2001:db8:abcd::/48");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(Contains(*c, V6("2001:db8:abcd:1::5")));
  EXPECT_FALSE(Contains(*c, V6("2001:db8:abce::1")));
  EXPECT_FALSE(Contains(*c, V4("10.0.0.1")));
}

TEST(CidrTest, V4MappedV6ClientMatchesV4Cidr) {
  auto c = Cidr::Parse("127.0.0.0/8");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(Contains(*c, V6("::ffff:127.0.0.9")));
  EXPECT_FALSE(Contains(*c, V6("::ffff:10.0.0.9")));
}

TEST(CidrTest, RejectsBadInput) {
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "kvd", "10.0.0.0/x",
                          "10.0.0.0/-1", "1.2.3.4/8/9"}) {
    auto c = Cidr::Parse(bad);
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(c.status().message().find("bad CIDR"), std::string::npos);
    }
  }
}

TEST(AclTest, EmptyAllowsAll) {
  Acl acl;
  auto a = V4("203.0.113.9");
  EXPECT_TRUE(acl.allow_all());
  EXPECT_TRUE(acl.Allows(reinterpret_cast<sockaddr*>(&a)));
}

TEST(AclTest, AnyEntryAllows) {
  auto acl = Acl::Parse({"10.0.0.0/8", "192.168.0.7", "fd00::/8"});
  ASSERT_TRUE(acl.ok());
  auto in1 = V4("10.9.9.9"), in2 = V4("192.168.0.7"), in3 = V6("fd12::1");
  auto out1 = V4("192.168.0.8"), out2 = V6("fe80::1");
  EXPECT_TRUE(acl->Allows(reinterpret_cast<sockaddr*>(&in1)));
  EXPECT_TRUE(acl->Allows(reinterpret_cast<sockaddr*>(&in2)));
  EXPECT_TRUE(acl->Allows(reinterpret_cast<sockaddr*>(&in3)));
  EXPECT_FALSE(acl->Allows(reinterpret_cast<sockaddr*>(&out1)));
  EXPECT_FALSE(acl->Allows(reinterpret_cast<sockaddr*>(&out2)));
}

TEST(AclTest, ParseNamesTheBadEntry) {
  auto acl = Acl::Parse({"10.0.0.0/8", "web"});
  ASSERT_FALSE(acl.ok());
  EXPECT_NE(acl.status().message().find("\"web\""), std::string::npos);
}

}  // namespace
}  // namespace hafab::gateway
