#include "core/name_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hafab {
namespace {

std::vector<std::string> Keys(const NameMap<int>& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

TEST(NameMapTest, IteratesInNameOrderAndFindsByName) {
  NameMap<int> m;
  m["n2"] = 2;
  m.try_emplace("n10", 10);
  m["n1"] = 1;
  m["n1"] = 11;
  EXPECT_EQ(Keys(m), (std::vector<std::string>{"n1", "n10", "n2"}));
  ASSERT_NE(m.find("n10"), m.end());
  EXPECT_EQ(m.find("n10")->second, 10);
  EXPECT_EQ(m.at("n1"), 11);
  EXPECT_EQ(m.find("n3"), m.end());
  EXPECT_EQ(m.count("n2"), 1u);
  EXPECT_THROW(m.at("n3"), std::out_of_range);
  EXPECT_FALSE(m.try_emplace("n2", 5).second);
  EXPECT_EQ(m.at("n2"), 2);
}

TEST(NameMapTest, ErasedNamesAreNotFound) {
  NameMap<int> m;
  for (int i = 0; i < 100; ++i) m["n" + std::to_string(i)] = i;
  EXPECT_EQ(m.erase("n5"), 1u);
  EXPECT_EQ(m.erase("n5"), 0u);
  for (auto it = m.begin(); it != m.end();) it = it->second % 2 ? m.erase(it) : std::next(it);
  EXPECT_EQ(m.size(), 50u);  // the even ones
  EXPECT_EQ(m.find("n7"), m.end());
  ASSERT_NE(m.find("n8"), m.end());
  EXPECT_EQ(m.find("n8")->second, 8);
  m.clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find("n8"), m.end());
}

TEST(NameMapTest, CopiesMovesAndSwapsKeepTheirOwnIndex) {
  NameMap<int> a;
  a["x"] = 1;
  a["y"] = 2;
  NameMap<int> b = a;  // a copy finds in its own nodes
  b["x"] = 10;
  EXPECT_EQ(a.at("x"), 1);
  EXPECT_EQ(b.at("x"), 10);
  NameMap<int> c = std::move(b);
  EXPECT_EQ(c.at("x"), 10);
  c.erase("y");
  EXPECT_EQ(a.at("y"), 2);
  NameMap<int> d;
  d["z"] = 3;
  d.swap(a);
  EXPECT_EQ(d.at("y"), 2);
  EXPECT_EQ(a.find("y"), a.end());
  EXPECT_EQ(a.at("z"), 3);
  a = d;
  EXPECT_EQ(a.at("x"), 1);
  EXPECT_EQ(a.find("z"), a.end());
  EXPECT_EQ(a.map(), d.map());
}

// Inserts and erases in a fixed pseudo-random order over a few hundred names (tables grown
// several times, probe runs that wrap around the end): every name is found exactly when a
// std::map holds it.
TEST(NameMapTest, FindsWhatAMapHoldsThroughManyInsertsAndErases) {
  NameMap<int> m;
  std::map<std::string, int> want;
  uint64_t x = 88172645463325252ull;
  for (int step = 0; step < 20000; ++step) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::string k = "node-" + std::to_string(x % 300);
    if (x % 3 == 0) {
      EXPECT_EQ(m.erase(k), want.erase(k)) << k;
    } else {
      m[k] = step;
      want[k] = step;
    }
    if (step % 97 == 0) {
      for (int i = 0; i < 300; ++i) {
        const std::string n = "node-" + std::to_string(i);
        auto w = want.find(n);
        auto it = m.find(n);
        ASSERT_EQ(it == m.end(), w == want.end()) << n << " at step " << step;
        if (it != m.end()) {
          EXPECT_EQ(it->second, w->second);
        }
      }
      ASSERT_EQ(m.map(), want);
    }
  }
}

}  // namespace
}  // namespace hafab
