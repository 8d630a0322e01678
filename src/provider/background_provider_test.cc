#include "provider/background_provider.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "testing/fake_clock.h"

namespace hafab::provider {
namespace {

using namespace std::chrono_literals;

// A provider whose ForceDetach blocks until released; Describe answers `attached_to`.
class GatedProvider : public Provider {
 public:
  Status Attach(const std::string&, const std::string&, const std::string&) override {
    return Status::Ok();
  }
  Status Detach(const std::string&, const std::string&) override { return Status::Ok(); }
  Status ForceDetach(const std::string&, const std::string& node) override {
    std::unique_lock lock(mu_);
    ++force_detaches_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    if (attached_to_ == node) attached_to_.clear();
    return Status::Ok();
  }
  Result<VolumeAttachment> Describe(const std::string&) override {
    std::lock_guard lock(mu_);
    ++describes_;
    return VolumeAttachment{attached_to_, "i"};
  }
  std::string MountPath(const std::string&, const std::string&) override { return ""; }
  Status AddEndpoint(const std::string&, const std::string&) override {
    return Status::Internal("no endpoint hook here");
  }
  Status RemoveEndpoint(const std::string&, const std::string&) override { return Status::Ok(); }

  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void WaitForceDetachStarted() {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, 5s, [&] { return force_detaches_ > 0; }));
  }
  int force_detaches() {
    std::lock_guard lock(mu_);
    return force_detaches_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::string attached_to_ = "n1";
  int force_detaches_ = 0;
  int describes_ = 0;
};

Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.ok() ? Status::Ok() : r.status();
}

// Polls `fn` until it returns a result that is not "in progress", within 5 s of real time.
template <typename F>
auto Settled(F fn) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    auto r = fn();
    if (StatusOf(r).code() != StatusCode::kUnavailable ||
        std::chrono::steady_clock::now() > deadline) {
      return r;
    }
    std::this_thread::sleep_for(1ms);
  }
}

class BackgroundProviderTest : public ::testing::Test {
 protected:
  BackgroundProviderTest() {
    auto inner = std::make_unique<GatedProvider>();
    gated_ = inner.get();
    bg_ = std::make_unique<BackgroundProvider>(std::move(inner), clock_);
  }
  ~BackgroundProviderTest() override {
    gated_->Open();  // let a blocked call finish so the worker can stop
  }

  testing::FakeClock clock_;
  GatedProvider* gated_;
  std::unique_ptr<BackgroundProvider> bg_;
};

TEST_F(BackgroundProviderTest, SlowForceDetachDoesNotBlockTheCaller) {
  Status first = bg_->ForceDetach("v", "n1");
  EXPECT_EQ(first.code(), StatusCode::kUnavailable);
  EXPECT_NE(first.message().find("started"), std::string::npos) << first.ToString();
  gated_->WaitForceDetachStarted();
  // Still running: every call answers at once, and none starts a second detach.
  Status again = bg_->ForceDetach("v", "n1");
  EXPECT_EQ(again.code(), StatusCode::kUnavailable);
  EXPECT_NE(again.message().find("in progress"), std::string::npos) << again.ToString();
  EXPECT_EQ(gated_->force_detaches(), 1);

  gated_->Open();
  Status done = Settled([&] { return bg_->ForceDetach("v", "n1"); });
  EXPECT_TRUE(done.ok()) << done.ToString();
  EXPECT_EQ(gated_->force_detaches(), 1);
  // The result was collected: the next call is a new detach.
  EXPECT_EQ(bg_->ForceDetach("v", "n1").code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Settled([&] { return bg_->ForceDetach("v", "n1"); }).ok());
  EXPECT_EQ(gated_->force_detaches(), 2);
}

TEST_F(BackgroundProviderTest, DescribeNeverShowsTheAttachmentFromBeforeACompletedDetach) {
  auto before = Settled([&] { return bg_->Describe("v"); });
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->node, "n1");

  ASSERT_EQ(bg_->ForceDetach("v", "n1").code(), StatusCode::kUnavailable);
  gated_->WaitForceDetachStarted();
  // A Describe queued behind the running detach; the old answer is still what is known.
  auto during = bg_->Describe("v");
  ASSERT_TRUE(during.ok());
  EXPECT_EQ(during->node, "n1");

  gated_->Open();
  ASSERT_TRUE(Settled([&] { return bg_->ForceDetach("v", "n1"); }).ok());
  // Once the detach is done, "n1" is never answered again.
  auto after = Settled([&] {
    auto r = bg_->Describe("v");
    if (r.ok() && r->node == "n1") return Result<VolumeAttachment>(Status::Internal("stale n1"));
    return r;
  });
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->node, "");
}

TEST_F(BackgroundProviderTest, DescribeAnswerGoesStale) {
  auto first = Settled([&] { return bg_->Describe("v"); });
  ASSERT_TRUE(first.ok());
  gated_->Open();
  ASSERT_EQ(bg_->ForceDetach("v", "n1").code(), StatusCode::kUnavailable);  // n1 -> nowhere
  ASSERT_TRUE(Settled([&] { return bg_->ForceDetach("v", "n1"); }).ok());
  auto now = Settled([&] { return bg_->Describe("v"); });
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->node, "");
  // Its answer ages: after 500 ms it is no answer, and the next look is a new one.
  clock_.Advance(600ms);
  EXPECT_EQ(bg_->Describe("v").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Settled([&] { return bg_->Describe("v"); }).ok());
}

TEST_F(BackgroundProviderTest, UncollectedResultExpires) {
  gated_->Open();
  ASSERT_EQ(bg_->ForceDetach("v", "n1").code(), StatusCode::kUnavailable);
  ASSERT_TRUE(Settled([&] {
                return Status(bg_->pending() == 0 ? Status::Ok() : Status::Unavailable("busy"));
              }).ok());
  clock_.Advance(2min);
  // A result a minute old is not taken as the answer to a new request.
  EXPECT_EQ(bg_->ForceDetach("v", "n1").code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Settled([&] { return bg_->ForceDetach("v", "n1"); }).ok());
  EXPECT_EQ(gated_->force_detaches(), 2);
}

TEST_F(BackgroundProviderTest, EndpointHooksAreQueuedAndAnswerAtOnce) {
  EXPECT_TRUE(bg_->AddEndpoint("r", "n1").ok());  // the inner failure is only logged
  EXPECT_TRUE(bg_->RemoveEndpoint("r", "n1").ok());
  EXPECT_TRUE(Settled([&] {
                return Status(bg_->pending() == 0 ? Status::Ok() : Status::Unavailable("busy"));
              }).ok());
}

}  // namespace
}  // namespace hafab::provider
