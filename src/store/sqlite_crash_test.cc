// Crash safety of SqliteStore: a writer process is SIGKILLed in the middle of a stream of
// transactions; the reopened file must hold every acknowledged transaction and no half of
// any transaction.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "core/random.h"
#include "store/sqlite_store.h"
#include "testing/fake_clock.h"

namespace hafab::store {
namespace {

std::string TxnKey(int64_t i, const char* half) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "txn/%010" PRId64 "/%s", i, half);
  return buf;
}

// The child: commits transactions first, first+1, ... forever, each writing the same value
// to four keys (two new ones, two overwritten), and reports each acknowledged commit on
// `ack_fd` as an int64 (one write of 8 bytes, atomic on a pipe). Never returns.
[[noreturn]] void RunWriter(const std::string& path, int64_t first, int ack_fd) {
  hafab::testing::FakeClock clock;
  auto store = SqliteStore::Open(path, clock);
  if (!store.ok()) {
    std::fprintf(stderr, "writer: %s\n", store.status().ToString().c_str());
    _exit(2);
  }
  for (int64_t i = first;; ++i) {
    std::string value = std::to_string(i);
    Txn txn;
    txn.success = {Op::Put(TxnKey(i, "a"), value), Op::Put("last/a", value),
                   Op::Put(TxnKey(i, "b"), value), Op::Put("last/b", value)};
    auto r = (*store)->Commit(txn);
    if (!r.ok()) {
      std::fprintf(stderr, "writer: commit %" PRId64 ": %s\n", i, r.status().ToString().c_str());
      _exit(3);
    }
    if (write(ack_fd, &i, sizeof i) != sizeof i) _exit(4);
  }
}

// Reads one ack; false at end of stream.
bool ReadAck(int fd, int64_t* ack) {
  size_t got = 0;
  char* out = reinterpret_cast<char*>(ack);
  while (got < sizeof *ack) {
    ssize_t n = read(fd, out + got, sizeof *ack - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

uint64_t SeedFromEnv(uint64_t fallback) {
  const char* text = std::getenv("HAFAB_SEED");
  return text ? std::strtoull(text, nullptr, 10) : fallback;
}

TEST(SqliteCrashTest, SigkillMidStreamKeepsEveryAckedTxnAndNoHalfTxn) {
  uint64_t seed = SeedFromEnv(20261123);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with HAFAB_SEED=" + std::to_string(seed) +
               ")");
  Random random(seed);
  std::string pattern = (std::filesystem::temp_directory_path() / "hafab-crash-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  std::filesystem::path dir(pattern);
  std::string path = (dir / "store.db").string();
  hafab::testing::FakeClock clock;

  constexpr int kRounds = 5;
  int64_t next_txn = 0;  // each round's writer continues where the file left off
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunWriter(path, next_txn, fds[1]);
    }
    close(fds[1]);

    // Kill after a random number of acknowledged commits: the writer is then somewhere in
    // its next transaction (or between commit and ack).
    uint64_t kill_after = 1 + random.Uniform(120);
    int64_t max_acked = next_txn - 1;
    uint64_t acks = 0;
    int64_t ack;
    while (acks < kill_after && ReadAck(fds[0], &ack)) {
      EXPECT_EQ(ack, max_acked + 1) << "acks arrive in order";
      max_acked = ack;
      ++acks;
    }
    kill(pid, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the writer ended by itself (status " << wstatus << ") after " << acks << " acks";
    // Acks written before the kill are acknowledged commits too.
    while (ReadAck(fds[0], &ack)) max_acked = ack;
    close(fds[0]);
    ASSERT_EQ(acks, kill_after);

    auto opened = SqliteStore::Open(path, clock);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    SqliteStore& store = **opened;
    auto range = store.Range("txn/");
    ASSERT_TRUE(range.ok()) << range.status().ToString();
    std::map<int64_t, std::map<std::string, KeyValue>> txns;
    for (const KeyValue& kv : range->kvs) {
      int64_t i = std::stoll(kv.key.substr(4, 10));
      txns[i][kv.key.substr(15)] = kv;
    }
    int64_t last = -1;
    for (const auto& [i, halves] : txns) {
      EXPECT_EQ(i, last + 1) << "committed transactions form a prefix of the stream";
      last = i;
      ASSERT_EQ(halves.size(), 2u) << "transaction " << i << " is half there";
      const KeyValue& a = halves.at("a");
      const KeyValue& b = halves.at("b");
      EXPECT_EQ(a.value, std::to_string(i));
      EXPECT_EQ(b.value, a.value);
      // A fresh file: transaction i is revision i + 1.
      EXPECT_EQ(a.mod_revision, i + 1);
      EXPECT_EQ(b.mod_revision, i + 1);
      EXPECT_EQ(a.create_revision, i + 1);
      EXPECT_EQ(a.version, 1);
    }
    EXPECT_GE(last, max_acked) << "an acknowledged transaction was lost";
    EXPECT_LE(last, max_acked + 1) << "at most the one in flight commits without its ack";
    EXPECT_EQ(range->revision, last + 1);
    auto last_a = store.Get("last/a");
    auto last_b = store.Get("last/b");
    ASSERT_TRUE(last_a.ok() && last_b.ok());
    EXPECT_EQ(last_a->value, std::to_string(last));
    EXPECT_EQ(last_b->value, std::to_string(last));
    EXPECT_EQ(last_a->version, last + 1);
    EXPECT_EQ(last_a->mod_revision, last + 1);
    // The history agrees: four put events per transaction, one revision each.
    auto watcher = store.Watch("", 1);
    ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();
    auto history = (*watcher)->Next(std::chrono::seconds(5));
    ASSERT_TRUE(history.ok()) << history.status().ToString();
    ASSERT_EQ(history->events.size(), static_cast<size_t>(4 * (last + 1)));
    for (size_t e = 0; e < history->events.size(); ++e) {
      const KeyValue& kv = history->events[e].kv;
      ASSERT_EQ(kv.mod_revision, static_cast<Revision>(e / 4) + 1) << kv.key;
      ASSERT_EQ(kv.value, std::to_string(e / 4)) << kv.key;
    }
    std::printf("round %d: killed after %" PRIu64 " acks; last acked %" PRId64
                ", last committed %" PRId64 "\n",
                round, acks, max_acked, last);
    next_txn = last + 1;
    if (::testing::Test::HasFailure()) break;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace hafab::store
