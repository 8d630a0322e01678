#include "kv_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace hafab::apps {
namespace {

class KvLogTest : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/kv_log_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/kvd.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void AppendRaw(const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out << bytes;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(KvLogTest, ReplaysTheLastValueOfEachKey) {
  {
    KvLog::Replay replay;
    auto log = KvLog::Open(path_, &replay);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_EQ(replay.records, 0u);
    ASSERT_TRUE((*log)->Append("a", "1").ok());
    ASSERT_TRUE((*log)->Append("b", std::string("bin\0ary", 7)).ok());
    ASSERT_TRUE((*log)->Append("a", "2").ok());
    ASSERT_TRUE((*log)->Append("empty", "").ok());
  }
  KvLog::Replay replay;
  auto log = KvLog::Open(path_, &replay);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(replay.records, 4u);
  EXPECT_EQ(replay.torn_bytes, 0u);
  EXPECT_EQ(replay.entries, (std::map<std::string, std::string>{
                                {"a", "2"}, {"b", std::string("bin\0ary", 7)}, {"empty", ""}}));
}

TEST_F(KvLogTest, CompactKeepsOneRecordPerKeyAndTheSameState) {
  {
    auto log = KvLog::Open(path_, nullptr);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE((*log)->Append("k" + std::to_string(i % 3), std::to_string(i)).ok());
    }
  }
  const auto before = std::filesystem::file_size(path_);
  KvLog::Replay replay;
  ASSERT_TRUE(KvLog::Open(path_, &replay).ok());
  ASSERT_EQ(replay.records, 100u);
  ASSERT_TRUE(KvLog::Compact(path_, replay.entries).ok());
  EXPECT_LT(std::filesystem::file_size(path_), before / 10);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".compact"));
  KvLog::Replay after;
  auto log = KvLog::Open(path_, &after);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(after.records, 3u);
  EXPECT_EQ(after.entries, replay.entries);
  EXPECT_EQ(after.entries.at("k0"), "99");
  // The compacted log takes appends as before.
  ASSERT_TRUE((*log)->Append("k1", "new").ok());
  log->reset();
  ASSERT_TRUE(KvLog::Open(path_, &after).ok());
  EXPECT_EQ(after.entries.at("k1"), "new");
}

TEST_F(KvLogTest, CompactIntoAMissingDirectoryFailsAndNamesTheFile) {
  Status st = KvLog::Compact(dir_ + "/missing/kvd.log", {{"a", "1"}});
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("missing/kvd.log.compact"), std::string::npos) << st.ToString();
}

TEST_F(KvLogTest, ABatchIsReplayedLikeSingleAppends) {
  {
    auto log = KvLog::Open(path_, nullptr);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->AppendBatch({{"x", "1"}, {"y", "2"}, {"x", "3"}}).ok());
    ASSERT_TRUE((*log)->Append("z", "4").ok());
  }
  KvLog::Replay replay;
  auto log = KvLog::Open(path_, &replay);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(replay.records, 4u);
  EXPECT_EQ(replay.entries,
            (std::map<std::string, std::string>{{"x", "3"}, {"y", "2"}, {"z", "4"}}));
}

// A crash can cut the last record anywhere: in its header, in its payload, or leave
// its full length with garbage inside. Each is truncated and the log stays appendable.
TEST_F(KvLogTest, TruncatesATornLastRecordWhereverItWasCut) {
  std::string record = EncodeKvRecord("torn-key", "torn-value-0123456789");
  std::string garbled = record;
  garbled[garbled.size() - 3] ^= 0x5a;
  for (std::string tail : {record.substr(0, 5), record.substr(0, 16), record.substr(0, 25),
                           record.substr(0, record.size() - 1), garbled}) {
    std::filesystem::remove(path_);
    {
      auto log = KvLog::Open(path_, nullptr);
      ASSERT_TRUE(log.ok());
      ASSERT_TRUE((*log)->Append("kept", "yes").ok());
    }
    AppendRaw(tail);
    KvLog::Replay replay;
    {
      auto log = KvLog::Open(path_, &replay);
      ASSERT_TRUE(log.ok()) << log.status().ToString();
      EXPECT_EQ(replay.torn_bytes, tail.size());
      EXPECT_EQ(replay.entries, (std::map<std::string, std::string>{{"kept", "yes"}}));
      ASSERT_TRUE((*log)->Append("after", "crash").ok());
    }
    auto log = KvLog::Open(path_, &replay);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_EQ(replay.torn_bytes, 0u);
    EXPECT_EQ(replay.entries,
              (std::map<std::string, std::string>{{"kept", "yes"}, {"after", "crash"}}));
  }
}

TEST_F(KvLogTest, RefusesACorruptRecordThatIsNotTheLast) {
  std::string first = EncodeKvRecord("a", "1");
  first[first.size() - 1] ^= 1;
  AppendRaw(first + EncodeKvRecord("b", "2"));
  auto log = KvLog::Open(path_, nullptr);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInternal);
  EXPECT_NE(log.status().message().find("corrupt record at offset 0 of " + path_),
            std::string::npos)
      << log.status().message();
}

TEST_F(KvLogTest, OpenNamesThePathWhenTheDirectoryIsMissing) {
  std::string missing = dir_ + "/no/such/dir/kvd.log";
  auto log = KvLog::Open(missing, nullptr);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(missing), std::string::npos) << log.status().message();
}

}  // namespace
}  // namespace hafab::apps
