#include "gateway/route_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace hafab::gateway {
namespace {

constexpr const char* kExample = R"({"version": 17, "endpoints": [
  {"role": "kvd", "mode": "active-passive", "listen": "127.0.0.1:7000",
   "allow": ["127.0.0.0/8"], "epoch": 3,
   "backends": [{"instance": "kvd-0", "node": "n1", "address": "127.0.0.1", "port": 7101,
                 "epoch": 2, "ready": true, "busy": false},
                {"instance": "kvd-1", "node": "n2", "address": "127.0.0.1", "port": 7102,
                 "epoch": 3, "ready": true, "busy": false}]},
  {"role": "web", "mode": "load-balanced", "listen": "[::1]:8080",
   "backends": [{"instance": "web-0", "address": "::1", "port": 9000, "ready": true},
                {"instance": "web-1", "address": "127.0.0.1", "port": 9001, "ready": true,
                 "busy": true}]}]})";

TEST(RouteTableTest, ParsesTheProtocolExample) {
  auto t = RouteTable::Parse(kExample);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const RouteTable& table = **t;
  EXPECT_EQ(table.version(), 17u);
  ASSERT_EQ(table.endpoints().size(), 2u);
  const Endpoint& kvd = *table.endpoints()[0];
  EXPECT_EQ(kvd.role, "kvd");
  EXPECT_EQ(kvd.mode, RoutingMode::kActivePassive);
  EXPECT_EQ(kvd.listen_address.ToString(), "127.0.0.1:7000");
  EXPECT_EQ(kvd.epoch, 3u);
  ASSERT_EQ(kvd.allow.entries().size(), 1u);
  EXPECT_EQ(kvd.allow.entries()[0].ToString(), "127.0.0.0/8");
  ASSERT_EQ(kvd.backends.size(), 2u);
  EXPECT_EQ(kvd.backends[1].instance, "kvd-1");
  EXPECT_EQ(kvd.backends[1].node, "n2");
  EXPECT_EQ(kvd.backends[1].address.ToString(), "127.0.0.1:7102");
  // The primary is the ready backend of the endpoint's epoch, not the first one.
  EXPECT_EQ(kvd.PrimaryIndex(), 1);

  const Endpoint& web = *table.endpoints()[1];
  EXPECT_EQ(web.mode, RoutingMode::kLoadBalanced);
  EXPECT_EQ(web.listen_address.ToString(), "[::1]:8080");
  EXPECT_TRUE(web.allow.allow_all());
  EXPECT_TRUE(web.Routable(0));
  EXPECT_FALSE(web.Routable(1));  // busy
  EXPECT_EQ(table.FindByListen("[::1]:8080"), &web);
  EXPECT_EQ(table.FindByListen("1.2.3.4:1"), nullptr);
  EXPECT_EQ(table.FindByRole("web"), &web);
  EXPECT_EQ(table.FindByRole("kvd"), &kvd);
  EXPECT_EQ(table.FindByRole("other"), nullptr);
}

// A table compiled beside the one before shares the endpoints whose role, listen and revision
// it already has and compiles the others anew.
TEST(RouteTableTest, KeepsWhatItCompiledForAnUnchangedRevision) {
  auto endpoint = [](std::string role, int port, int64_t revision, bool ready) {
    wire::RouteEndpoint e;
    e.role = std::move(role);
    e.mode = RoutingMode::kLoadBalanced;
    e.listen = "127.0.0.1:" + std::to_string(port);
    e.revision = revision;
    e.backends.push_back({"x-0", "n1", "127.0.0.1", 9000 + port, 0, ready, false, false});
    return e;
  };
  wire::Routes v1{10,
                  {endpoint("a", 1, 5, true), endpoint("b", 2, 7, true), endpoint("c", 3, 0, true),
                   endpoint("d", 4, 9, true)}};
  auto t1 = RouteTable::Compile(v1);
  ASSERT_TRUE(t1.ok()) << t1.status().ToString();

  // b changed (a new revision), c says no revision, d moved to another listen, e is new.
  wire::Routes v2{
      11,
      {endpoint("a", 1, 5, true), endpoint("b", 2, 11, false), endpoint("c", 3, 0, true),
       endpoint("d", 5, 9, true), endpoint("e", 6, 11, true)}};
  auto t2 = RouteTable::Compile(v2, t1->get());
  ASSERT_TRUE(t2.ok()) << t2.status().ToString();
  const auto& before = (*t1)->endpoints();
  const auto& after = (*t2)->endpoints();
  ASSERT_EQ(after.size(), 5u);
  EXPECT_EQ(after[0], before[0]);
  EXPECT_NE(after[1], before[1]);
  EXPECT_FALSE(after[1]->Routable(0));
  EXPECT_NE(after[2], before[2]);
  EXPECT_NE(after[3], before[3]);
  EXPECT_EQ(after[3]->listen, "127.0.0.1:5");
  EXPECT_EQ(after[4]->role, "e");
  EXPECT_EQ((*t1)->compiled(), (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_EQ((*t2)->compiled(), (std::vector<size_t>{1, 2, 3, 4}));

  // A shared endpoint still counts for the listen check.
  wire::Routes v3{12, {endpoint("a", 1, 5, true), endpoint("z", 1, 12, true)}};
  auto t3 = RouteTable::Compile(v3, t2->get());
  ASSERT_FALSE(t3.ok());
  EXPECT_NE(t3.status().message().find("endpoints[1].listen"), std::string::npos);

  // A listen given up (d moved from :4 in v2) may be taken again, not twice; the others stay.
  wire::Routes v4{
      13, {endpoint("a", 1, 5, true), endpoint("f", 4, 13, true), endpoint("g", 7, 13, true)}};
  auto t4 = RouteTable::Compile(v4, t2->get());
  ASSERT_TRUE(t4.ok()) << t4.status().ToString();
  EXPECT_EQ((*t4)->endpoints()[0], after[0]);
  auto taken = [&](wire::Routes routes, const std::string& listen) {
    auto t = RouteTable::Compile(routes, t4->get());
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().message(),
              "endpoints[2].listen: \"" + listen + "\" is used by another endpoint");
  };
  taken({14, {endpoint("a", 1, 5, true), endpoint("f", 4, 13, true), endpoint("g", 4, 14, true)}},
        "127.0.0.1:4");
  taken({15, {endpoint("a", 1, 5, true), endpoint("f", 4, 13, true), endpoint("g", 1, 15, true)}},
        "127.0.0.1:1");
  // f compiled again on the listen it had keeps it: a newcomer on it is the one refused,
  // wherever it stands.
  taken({16, {endpoint("a", 1, 5, true), endpoint("f", 4, 16, false), endpoint("g", 4, 16, true)}},
        "127.0.0.1:4");
  auto before_f = RouteTable::Compile(
      {17, {endpoint("a", 1, 5, true), endpoint("e", 4, 17, true), endpoint("f", 4, 17, false)}},
      t4->get());
  ASSERT_FALSE(before_f.ok());
  EXPECT_EQ(before_f.status().message(),
            "endpoints[1].listen: \"127.0.0.1:4\" is used by another endpoint");
  // Only readiness changed: compiled again, the listens as they were.
  auto t5 = RouteTable::Compile(
      {18, {endpoint("a", 1, 5, true), endpoint("f", 4, 18, false), endpoint("g", 7, 13, true)}},
      t4->get());
  ASSERT_TRUE(t5.ok()) << t5.status().ToString();
  EXPECT_EQ((*t5)->compiled(), (std::vector<size_t>{1}));
  EXPECT_FALSE((*t5)->endpoints()[1]->Routable(0));
  EXPECT_EQ((*t5)->FindByListen("127.0.0.1:7"), (*t4)->endpoints()[2].get());
}

// An allow list the controller resolved to nothing (its roles have no node yet) admits
// nobody; only an absent one admits everybody.
TEST(RouteTableTest, AnEmptyAllowListAdmitsNobody) {
  auto t = RouteTable::Parse(R"({"version": 1, "endpoints": [
    {"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1", "allow": []},
    {"role": "b", "mode": "load-balanced", "listen": "127.0.0.1:2"}]})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_FALSE((*t)->endpoints()[0]->allow.Allows(reinterpret_cast<sockaddr*>(&addr)));
  EXPECT_TRUE((*t)->endpoints()[1]->allow.Allows(reinterpret_cast<sockaddr*>(&addr)));
}

TEST(RouteTableTest, NoPrimaryWhenEpochHasNoReadyBackend) {
  auto t = RouteTable::Parse(R"({"version": 1, "endpoints": [
    {"role": "kvd", "mode": "active-passive", "listen": "127.0.0.1:0", "epoch": 4,
     "backends": [{"instance": "a", "address": "127.0.0.1", "port": 1, "epoch": 3, "ready": true},
                  {"instance": "b", "address": "127.0.0.1", "port": 2, "epoch": 4,
                   "ready": false}]}]})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->endpoints()[0]->PrimaryIndex(), -1);
}

TEST(RouteTableTest, EmptyTable) {
  auto t = RouteTable::Parse(R"({"version": 0, "endpoints": []})");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE((*t)->endpoints().empty());
}

struct BadCase {
  const char* json;
  const char* error;  // substring of the message
};

TEST(RouteTableTest, ErrorsNameTheField) {
  const BadCase cases[] = {
      {"not json", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"endpoints": []})", "version: required"},
      {R"({"version": -1})", "version: must be between 0"},
      {R"({"version": 1, "endpoints": {}})", "endpoints: must be an array"},
      {R"({"version": 1, "endpoints": [{"mode": "load-balanced", "listen": "127.0.0.1:1"}]})",
       "endpoints[0].role: required"},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "primary", "listen": "127.0.0.1:1"}]})",
       "endpoints[0].mode: 'primary' is not one of active-passive, load-balanced"},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "x:1"}]})",
       "endpoints[0].listen: bad address \"x:1\""},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:70000"}]})",
       "endpoints[0].listen"},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1",
           "allow": ["10.0.0.0/8", "web"]}]})",
       "endpoints[0].allow[1]: bad CIDR \"web\""},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1",
           "backends": [{"instance": "a-0", "address": "127.0.0.1", "port": 0}]}]})",
       "endpoints[0].backends[0].port: must be between 1 and 65535"},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1",
           "backends": [{"instance": "a-0", "address": "db.local", "port": 5}]}]})",
       "endpoints[0].backends[0].address"},
      {R"({"version": 1, "endpoints": [{"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1",
           "backends": [{"instance": "a-0", "address": "127.0.0.1", "port": 5, "ready": "yes"}]}]})",
       "endpoints[0].backends[0].ready: must be true or false"},
      {R"({"version": 1, "endpoints": [
           {"role": "a", "mode": "load-balanced", "listen": "127.0.0.1:1"},
           {"role": "b", "mode": "load-balanced", "listen": "127.0.0.1:1"}]})",
       "endpoints[1].listen: \"127.0.0.1:1\" is used by another endpoint"},
  };
  for (const auto& c : cases) {
    auto t = RouteTable::Parse(c.json);
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.error), std::string::npos)
        << "got: " << t.status().message() << "\nwanted: " << c.error;
  }
}

TEST(SocketAddressTest, ParsesAndFormats) {
  auto a = SocketAddress::Parse("[::1]:80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->ToString(), "[::1]:80");
  EXPECT_FALSE(SocketAddress::Parse("::1:80").ok());
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1").ok());
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1:").ok());
  EXPECT_TRUE(SocketAddress::Parse("0.0.0.0:0").ok());
}

}  // namespace
}  // namespace hafab::gateway
