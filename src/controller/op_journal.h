// OpJournal: runs operations (records.h Operation) through their Procedure (procedure.h),
// recording each step in the store before it acts and after it completes; resumes the ones a
// previous controller left at the recorded step. It owns the rules every procedure shares:
// one step at a time, each start committed before the step runs, a bounded pass, a wait noted
// once per distinct reason, the finish with its timeline, the test crash at a named step, and
// step durations on the monotonic clock. Plain class on Clock&: unit-tested with a scripted
// procedure (op_journal_test.cc), no cluster.
#pragma once

#include <map>
#include <string>

#include "controller/op_view.h"
#include "controller/op_writes.h"
#include "controller/procedure.h"
#include "controller/records.h"
#include "core/clock.h"
#include "core/prometheus.h"
#include "core/status.h"
#include "wire/states.h"

namespace hafab::controller {

// Where the journal writes: the controller's pending transaction and event log — the write set
// the procedures' steps write into too — and what it publishes.
class JournalStore : public OpWrites {
 public:
  // Commits the pending writes (the operation's with the others of the moment).
  virtual Status Commit() = 0;
  // Publishes what is committed: assignments and routes (a step's Step::Publish).
  virtual void Publish() = 0;
  // true: nothing may be driven now (crashed, deposed, or memory ahead of the store after a
  // failed commit).
  virtual bool Halted() const = 0;
  // The test crash at a step (JournalOptions::crash_exits false): persist nothing more.
  virtual void Crash() = 0;
};

struct JournalOptions {
  // Tests and the fault harness: stop right after recording the start of this step.
  std::string crash_at_step;
  // true: _exit(137) there (process tests); false: JournalStore::Crash().
  bool crash_exits = true;
};

// What the journal saw since the controller started, for /metrics.
struct OpMetrics {
  // (kind, state) -> operations that finished so (state: done or failed).
  std::map<std::pair<std::string, std::string>, uint64_t> finished;
  // (kind, step) -> how long the step took, as in the operation's timeline.
  std::map<std::pair<std::string, std::string>, Histogram> step_seconds;
  // (kind, state) -> from the operation's creation to its end, by the wall clock (a failover
  // resumed by the next controller counts the time between).
  std::map<std::pair<std::string, std::string>, Histogram> seconds;
};

// Not thread-safe: the controller's thread.
class OpJournal {
 public:
  // The procedures' steps read `view` and write into `store`.
  OpJournal(Clock& clock, JournalStore& store, const OpView& view, JournalOptions opts);

  // Runs `op`'s steps while they complete, at most StepsPerPass(op): stops at a wait
  // (committed: its note is kept), at an abort (finished failed) or at the end (finished
  // done). A step that asks for it (Step::Publish) has its writes committed and published and
  // runs again at once, before its result is acted on. Nothing while the store is Halted() or
  // `op` is not running.
  void Drive(Operation& op, Procedure& procedure);
  // Runs the current step once (step-by-step idempotence tests); when it is done and
  // `complete`, records its end and moves to the next step. "done", "wait", "abort",
  // "crashed", or "none" (op not running).
  std::string RunOnce(Operation& op, Procedure& procedure, bool complete);
  // Ends `op` in `state` (done or failed) with `error`, and emits the procedure's event.
  void Finish(Operation& op, Procedure& procedure, wire::OpState state, const std::string& error);
  // Records why the current step waits; once per distinct note.
  void Note(Operation& op, const std::string& note);
  // How long the current step has run, on the monotonic clock (the journal's times are wall
  // times, for people). A step resumed by a new controller counts from its resumption.
  Duration StepElapsed(const Operation& op) const;

  const OpMetrics& metrics() const { return metrics_; }

 private:
  // Records the start of op.step and commits it; false when the commit failed or the test
  // crash happened (the step must not run).
  bool BeginStep(Operation& op, Procedure& procedure);
  // Runs the current step; a kPublish is committed, published and run again (once: a step
  // that asks again waits).
  Step RunStep(Operation& op, Procedure& procedure);
  void CompleteStep(Operation& op, Procedure& procedure);

  Clock& clock_;
  JournalStore& store_;
  const OpView& view_;
  JournalOptions opts_;
  // op id -> its current step's start (a resumed step's: its first StepElapsed)
  mutable std::map<std::string, TimePoint> step_began_;
  OpMetrics metrics_;
};

}  // namespace hafab::controller
