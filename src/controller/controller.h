// Controller: the fabric controller's logic, with no network and no threads. Desired state
// (applied roles, instances, nodes, operations) lives in the Store and is mirrored in
// memory; observed state (heartbeats) and leases live only in memory (DESIGN: "Heartbeats
// never go through the store"). Driven by explicit inputs (heartbeats, API calls) and by
// Tick() on a timer, on an injected Clock, so unit tests drive it on a FakeClock with fake
// agents and gateways, and the HTTP layer (api.h) only moves bytes.
//
// The implementation is split by concern: controller.cc (state, persistence, heartbeats,
// operator calls), reconciler.cc (instances, placement, assignments, routes), ops.cc
// (operations: it starts them and is the journal's store, the write set and the view the
// procedures read), rollout.cc (spec changes that start a rollout), gc.cc (sweeper), views.cc
// (status JSON). Long operations are not the Controller's: the journal (op_journal.h) runs
// them, and their steps are standalone procedures (failover_procedure.h,
// rollout_procedure.h) that read an OpView and write into an OpWrites, both implemented here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/autoscaler.h"
#include "controller/availability.h"
#include "controller/failover_procedure.h"
#include "controller/leases.h"
#include "controller/observed.h"
#include "controller/op_journal.h"
#include "controller/op_view.h"
#include "controller/placement.h"
#include "controller/procedure.h"
#include "controller/reconfigure_procedure.h"
#include "controller/records.h"
#include "controller/ring.h"
#include "controller/ring_arbiter.h"
#include "controller/rollout_procedure.h"
#include "core/clock.h"
#include "core/name_map.h"
#include "core/prometheus.h"
#include "core/result.h"
#include "manifest/model.h"
#include "provider/provider.h"
#include "store/store.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"
#include "wire/gateway_heartbeat.h"
#include "wire/routes.h"

namespace hafab::controller {

struct ControllerOptions {
  Duration lease_ttl = std::chrono::milliseconds(1500);
  // Added to a silent node's lease before its volume may be force-detached: by then its
  // agent has stopped its primaries itself.
  Duration fence_margin = std::chrono::milliseconds(500);
  // A node declared by a manifest but never heard from gets this long to show up before
  // it is declared down (its agent is usually started right after the apply).
  Duration first_contact_grace = std::chrono::seconds(5);
  // The reconcile pass runs at most this often while records or observations change, and at
  // once after a node expired...
  Duration reconcile_interval = std::chrono::milliseconds(100);
  // ...and this often when nothing has changed: a net for what only time changes (a replica's
  // rebuild_after, a restart window, a scale-down's drain deadline). A steady cluster of
  // 1 000 nodes spent 1-3 % of a core in passes that found nothing to do.
  Duration reconcile_idle_interval = std::chrono::seconds(1);
  Duration gc_interval = std::chrono::seconds(1);
  // The most volumes a GC pass asks the provider about (each a cloud API call or CLI run):
  // with more volume roles, a pass goes on where the last one stopped.
  size_t gc_describes_per_pass = 100;
  // Tests and the fault harness: stop right after recording the start of this step.
  std::string crash_at_step;
  // true: _exit(137) at crash_at_step (the process test); false: the object goes inert,
  // persisting nothing more (the in-process "crash" of unit tests).
  bool crash_exits = true;
  // false: operations move only through RunStepOnce (step-by-step idempotence tests).
  bool drive_ops = true;
  // How often autoscaled roles are evaluated (controller_autoscale.cc).
  Duration autoscale_interval = std::chrono::seconds(1);
  // Compares added to every transaction: a replica's claim on leadership (leader.h). When
  // they fail, leadership was lost: the controller goes inert (deposed()) at once.
  std::vector<store::Compare> write_guard;
  // Said in the controller-started event, e.g. "as leader (elected at revision 12)".
  std::string started_as;
  // Added to the first lease of every node and gateway this controller has not heard yet:
  // a term won by LeaderElection::TakeOver, whose predecessor may still renew leases from
  // memory for this long (leader.h). Nodes the store holds down need none.
  Duration takeover_grace{};
  // TEST ONLY (hafab-sim --break stop-wait): failover's stop step does not wait for the old
  // primary to stop or fence itself, so two primaries may run; proves the simulator sees it.
  bool unsafe_skip_stop_wait = false;
  // Failure detection (docs/architecture.md, "Ring failure detection"). false: the star — every
  // agent heartbeats every heartbeat_interval and a node is down when its lease runs out.
  // true: the ring — agents watch their ring neighbours (ring_k on each side), the
  // RingArbiter decides, and a node with no active-passive instance keeps alive only every
  // nodes / keepalives_per_second (so the controller handles about that many, whatever the
  // size), with a lease of 3 keep-alives plus lease_ttl. A node with one keeps the
  // heartbeat_interval and lease_ttl: fencing is unchanged.
  bool ring_detector = false;
  int ring_k = 2;
  // The key agents sign their ring datagrams with (agent/ring_datagram.h), handed out with the
  // assignments: the daemon derives it from the cluster key (tokens.h, RingKey).
  std::string ring_key;
  ArbiterOptions arbiter;
  Duration heartbeat_interval = std::chrono::milliseconds(200);  // the agents'
  double keepalives_per_second = 500;
};

// Callbacks for long-polls; run on the caller's thread at the end of the call that made
// the change.
struct ControllerListener {
  std::function<void(const std::string& node)> assignments_changed;
  // Ring detection: ask the node's agent to heartbeat now (the arbiter's check).
  std::function<void(const std::string& node)> check_node;
  std::function<void()> routes_changed;
  std::function<void()> event_added;
};

// Not thread-safe: one event-loop thread calls everything.
class Controller : private JournalStore, private OpView {
 public:
  // `store` and `clock` (and `provider`, which may be null: then detach completion is
  // judged from agents' reports only) must outlive the controller.
  Controller(store::Store& store, Clock& clock, provider::Provider* provider,
             ControllerOptions opts);

  // Loads the store, gives every known node and gateway one full lease TTL, adopts the
  // running operations of a previous incarnation. Errors: the store's.
  Status Start();
  void SetListener(ControllerListener l) { listener_ = std::move(l); }

  // Applies a parsed, validated manifest in one store transaction: its roles become the
  // desired roles (roles absent from it are removed), its nodes are registered.
  // InvalidArgument ("file:line:col: error: roles[i].field: ...") for a change the running
  // cluster cannot take; nothing is applied then. Unavailable: the store's error.
  Result<nlohmann::json> Apply(const manifest::Manifest& m);

  // An agent's heartbeat (wire/agent_heartbeat.h; its `node` member is not read): renews
  // the node's lease and records what it observes.
  Result<wire::HeartbeatAnswer> AgentHeartbeat(const std::string& node,
                                               const wire::AgentHeartbeat& heartbeat);
  // {"generation": G, "assignments": [...]} for the node (wire::ToJson(wire::AssignmentList);
  // empty for an unknown node).
  // Unavailable while the store cannot be read back after a failed commit: memory is then
  // ahead of the store and is not shown.
  // With `held`, the generation the node's agent holds (a brief long poll whose wait ended,
  // api.h): when it is still the node's, {"generation": G, "unchanged": true} instead.
  Result<nlohmann::json> Assignments(const std::string& node,
                                     std::optional<int64_t> held = std::nullopt);
  // The same list as a struct (the simulator's agents take it so).
  Result<wire::AssignmentList> AssignmentListFor(const std::string& node);
  int64_t AssignmentsGeneration(const std::string& node);
  // The list the node's agent runs: its generation (from an earlier controller) and
  // wire::ContentDigest. While this controller has not yet sent the node a list, it keeps
  // that generation as the node's when the list it would send has the same content: the
  // agent neither fetches the list again nor applies it, and its report stays current. A
  // full report (AgentHeartbeat) and the agent's assignments request (api.cc) call it. True
  // when kept. An agent that later names another generation than the one kept gets a new one.
  bool AdoptGeneration(const std::string& node, uint64_t generation, uint64_t digest);

  // A gateway's heartbeat (wire/gateway_heartbeat.h): records its acknowledgement of a routes
  // version and the connections it holds, and renews its lease, up to one lease TTL after the
  // first routes version newer than the acknowledged one was published (a gateway that stops
  // taking routes loses its say in fencing as one that stops heartbeating does). The answer's
  // `lease` is what is left of its lease now (0: none).
  Result<wire::HeartbeatAnswer> GatewayHeartbeat(const std::string& id,
                                                 const wire::GatewayHeartbeat& heartbeat);
  const wire::Routes& Routes() const { return routes_; }
  int64_t RoutesVersion() const override { return routes_version_; }

  // A planned switchover: of an active-passive role to a standby (on node `to`, "" = any), of
  // a replicated one to the replica `to` ("" = its most advanced secondary). `accept_data_loss`
  // (replicated roles only): promote even without a quorum. NotFound (role, node, replica),
  // InvalidArgument (another mode, no standby or secondary to move to), Conflict (an operation
  // is already running for the role).
  Result<nlohmann::json> RequestFailover(const std::string& role, const std::string& to,
                                         bool accept_data_loss = false);
  // NotFound; InvalidArgument "instances: ..." beyond manifest/limits.h (per role, in all).
  Result<nlohmann::json> Scale(const std::string& role, int instances);
  // Drains (or, with drain=false, returns to service) a node. NotFound for an unknown node.
  Result<nlohmann::json> Drain(const std::string& node, bool drain);
  // Rolling upgrade of a load-balanced role (rollout.h): `set` changes its runtime spec
  // (ApplyUpgradeSet); with `rollback`, a running rollout turns back, or a finished one is
  // undone. {"operation", "role", "rollback"}. NotFound; InvalidArgument (active-passive,
  // bad or empty set, nothing to roll back to); Conflict (an operation is running).
  Result<nlohmann::json> Upgrade(const std::string& role, const nlohmann::json& set, bool rollback);
  // Availability of a role with an endpoint over the last `window` (availability.h):
  // {role, window_ms, observed_ms, unavailable_ms, availability, routable, outages[]}.
  // NotFound; InvalidArgument (no endpoint, window <= 0).
  Result<nlohmann::json> Sla(const std::string& role, Duration window);

  // Lease expiry, reconciliation, operations, GC. Call every ~20ms.
  void Tick();

  nlohmann::json StatusJson() const;
  nlohmann::json RolesJson() const;
  nlohmann::json NodesJson() const;
  nlohmann::json VolumesJson() const;
  nlohmann::json OpsJson() const;
  nlohmann::json GatewaysJson() const;
  // GET /metrics: Prometheus text (controller_metrics.cc).
  std::string MetricsText() const;
  // Events with id > after, oldest first, at most `limit`.
  std::vector<Event> EventsAfter(int64_t after, size_t limit = 500) const;
  int64_t LastEventId() const { return events_.empty() ? 0 : events_.back().id; }

  // For tests and views.
  const std::map<std::string, RoleRecord>& roles() const { return roles_.map(); }
  const std::map<std::string, InstanceRecord>& instances() const { return instances_.map(); }
  const std::map<std::string, NodeRecord>& nodes() const { return nodes_.map(); }
  const std::map<std::string, Operation>& ops() const { return ops_; }
  const std::string& id() const { return id_; }
  bool crashed() const { return crashed_; }
  // A transaction's write_guard failed: another replica leads; this one persists and
  // publishes nothing more (as crashed()). The replica discards it.
  bool deposed() const { return deposed_; }
  // Re-reads the desired state (roles, instances, nodes, operations, events) from the
  // store, writing nothing: a follower replica's read-only view for GETs. Errors: the
  // store's. REQUIRES: Start() was not called on this object.
  Status Reload();
  bool NodeLive(const std::string& node) const override { return node_leases_.Live(node); }
  // The running operation of a role, or nullptr.
  const Operation* ActiveOp(const std::string& role) const;
  // Runs the current step of operation `id` once (idempotence tests); when it is done and
  // `complete`, records its completion and moves to the next step. Returns "done", "wait",
  // "abort", "crashed" (the test crash, or the step's start was not committed) or "none"
  // (no such running operation).
  std::string RunStepOnce(const std::string& id, bool complete);
  // Drives operations now (also done by Tick and heartbeats).
  void AdvanceOps();

 private:
  struct RestartTrack {
    int last_seen = -1;
    std::deque<TimePoint> times;
  };

  // --- state and persistence (controller.cc)
  Status Load();
  // After a failed commit (reload_needed_), reads the store again and re-arms the leases
  // of nodes whose expiry was lost. Called first by every entry point. Errors: the store's.
  Status ReloadIfNeeded();
  // Memory differs from the store only at unsure_keys_: each is read again and put back as
  // the store has it, through the Put and Delete that keep the indexes. Nothing changes when
  // a read fails or a record cannot be parsed.
  Status ReloadUnsureKeys();
  // Unsure keys are read one by one up to this many; more (a failed commit of a whole load's
  // publish) are read in one range by a full load.
  static constexpr size_t kReloadKeysAtMost = 1000;
  // A commit took these: the store now has them (stored_down_, stored_fenced_,
  // stored_gateways_).
  void Committed(const std::map<std::string, bool>& down,
                 const std::map<std::string, std::string>& fenced,
                 const std::vector<std::string>& gateways);
  // A node or an operation the store does not have (put in memory by a failed commit).
  void ForgetNode(const std::string& name);
  void ForgetOp(const std::string& id);
  int64_t NextSeq();
  // The write set (OpWrites, JournalStore): into memory and the pending transaction.
  bool PutRole(const RoleRecord& r) override;
  void DeleteRole(const std::string& name);
  bool PutInstance(const InstanceRecord& r) override;
  void DeleteInstance(const std::string& name);
  void PutNode(const NodeRecord& r);
  void PutOp(const Operation& op) override;
  void Emit(const std::string& type, const std::string& message,
            std::map<std::string, std::string> fields = {}) override;
  void ForgetRestarts(const std::string& instance) override { restarts_.erase(instance); }
  // Commits the pending writes in one transaction. On failure drops them, marks memory
  // for a reload from the store at the next entry point (references stay valid until
  // then), refuses every commit and publication until that reload, and returns the error.
  Status Commit() override;
  // Nothing is driven: crashed or deposed, or memory ahead of the store (reload_needed_).
  bool Halted() const override { return crashed_ || reload_needed_; }
  void Crash() override { crashed_ = true; }  // the journal's in-process test crash
  // Recomputes dirty assignments and the routing table; bumps generations and versions
  // that changed and tells the listener.
  void Publish() override;
  void MarkRoleDirty(const std::string& role);
  InstanceRecord* FindInstance(const std::string& name);
  // The view (OpView) the procedures read, over the maps below.
  const RoleRecord* Role(const std::string& name) const override;
  const InstanceRecord* Instance(const std::string& name) const override;
  std::vector<const InstanceRecord*> InstancesOf(const std::string& role) const override;
  const NodeRecord* Node(const std::string& name) const override;
  const ObservedInstance* Observed(const InstanceRecord& inst) const override;
  const NodeObservation* Observation(const std::string& node) const override;
  std::vector<std::pair<std::string, ObservedVolume>> VolumeReports(
      const std::string& volume) const override;
  bool NodeDown(const std::string& node) const override;
  bool NodeDeclaredDown(const std::string& node) const override;
  // The node has been silent for lease_ttl + fence_margin: its agent has fenced itself. For a
  // node this controller never heard, silence counts from its start, or — for a node the
  // store recorded down (down_at_start_) — its lease had already ended then.
  bool SilentPastMargin(const std::string& node) const override;
  Duration StepElapsed(const Operation& op) const override { return journal_.StepElapsed(op); }
  // The end of the lease a gateway that acknowledged routes `acked` may get: a lease TTL after
  // the first newer version was published (TimePoint::max() when `acked` is the newest).
  TimePoint AckDeadline(int64_t acked) const;
  void OnNodeExpired(const std::string& node);
  // node_leases_.Renew, and Gc looks at a node that was not live.
  void RenewNodeLease(const std::string& node, TimePoint deadline);
  // --- ring detection (controller.cc)
  // The ring rebuilt from the nodes up and not drained; nodes whose neighbours changed get
  // them in new assignments. O(n) when the membership changed, else nothing.
  void RebuildRing();
  // The arbiter's verdicts acted on; true when a node went down.
  bool ArbitrateRing();
  std::vector<wire::RingPeer> RingPeersOf(const std::string& node) const;
  // A node with an instance of an active-passive role, primary or standby (a standby may be
  // promoted): it keeps the short lease, which fencing waits for.
  bool NeedsShortLease(const std::string& node) const;
  // The lease granted to `node` and its keep-alive (nullopt: the star's, its own interval).
  std::pair<Duration, std::optional<Duration>> LeaseFor(const std::string& node) const;
  // The end of the lease a node this controller has not heard yet is given at its start.
  TimePoint FirstLeaseEnd(const std::string& node) const {
    return started_at_ + LeaseFor(node).first + opts_.takeover_grace;
  }
  // A heartbeat the store could not record: its lease is renewed in memory when the store
  // agrees the node may hold one; else `error`.
  Result<wire::HeartbeatAnswer> LeaseFromMemory(const std::string& node, const Status& error);
  void Depose();  // a write_guard failed

  // --- reconciler.cc
  // A pass checks the roles and instances marked since they were last checked (Recheck), not
  // all of them: only what changed can have anything to act on. What it could not do yet stays
  // marked: a role short of instances (CountSteady), an instance it may still act on (MayAct).
  // A load marks them all.
  void Reconcile();
  void Recheck(const std::string& role, const std::string& instance);
  void RecheckRole(const std::string& role);  // and its instances
  void RecheckNode(const std::string& node);  // its instances
  void EnsureCount(RoleRecord& role, const std::set<std::string>& current);
  // Whether `role` has as many instances as it wants, all in the rotation, and an
  // active-passive or replicated role its primary: EnsureCount has nothing to do.
  bool CountSteady(const RoleRecord& role, const std::set<std::string>& current) const;
  // A load-balanced instance chosen for a scale-down: out of the rotation (first call), then
  // true once every live gateway routes without it and holds no connection to it, or after
  // the role's stop_grace.
  bool ScaleDownDrained(const RoleRecord& role, const std::string& name);
  void CheckHealth(RoleRecord& role, InstanceRecord& inst);
  // Whether CheckHealth may act on `inst` (its node down or drained, it failed, a replica): it
  // stays marked for the next pass.
  bool MayAct(const RoleRecord& role, const InstanceRecord& inst) const;
  // `crash_loop`: it moves for crashing; the restarts counted here go with it.
  bool Relocate(const RoleRecord& role, InstanceRecord& inst, const std::string& why,
                bool crash_loop = false);
  // The restarts a crash-looping instance carries from the nodes it left, 0 once the role's
  // restart window has passed since its last move.
  int CarriedRestarts(const RoleRecord& role, const InstanceRecord& inst) const;
  std::optional<std::string> Place(const std::string& role, const std::string& moving,
                                   const std::set<std::string>& exclude) const override;
  // The nodes an instance may go to: live, not down, not drained, not excluded, with their
  // loads (not counting `moving`).
  std::vector<NodeCandidate> LiveCandidates(const std::string& moving,
                                            const std::set<std::string>& exclude) const;
  // An instance came to (+1) or left (-1) `node` during a reconcile pass (placement_pass_).
  void PassLoad(const std::string& node, int delta);
  nlohmann::json QuorumJson(const RoleRecord& role) const;
  nlohmann::json ReplicaJson(const RoleRecord& role, const InstanceRecord& inst,
                             const ObservedInstance* o) const;
  // A replicated role's replica given up with its node is rebuilt on another (CheckHealth).
  void Rebuild(RoleRecord& role, const InstanceRecord& inst, const std::string& why);
  // When `node` was last heard from (this controller's start, if never).
  TimePoint SilentSince(const std::string& node) const;
  // A replica's configuration as its assignment carries it (docs/replication.md).
  wire::ReplicaConfig ReplicaConfigFor(const RoleRecord& role, const InstanceRecord& inst) const;
  // Whether a replica says it is the primary of the role's epoch (then it is routed).
  bool ReplicaServes(const RoleRecord& role, const InstanceRecord& inst) const;
  int PortFor(const manifest::Role& spec, const std::string& node,
              const std::string& moving) const override;
  bool RestartsExceeded(const InstanceRecord& inst) const override;
  // A full report's instances, volumes and versions into `obs`, marking what changed for the
  // routes and the reconcile pass.
  void TakeReport(const std::string& node, const wire::AgentHeartbeat& hb, NodeObservation& obs);
  // Counts the restarts an agent reports and emits instance-restarted for each new one.
  void TrackRestarts(const std::string& instance, const std::string& node,
                     const ObservedInstance& o);
  bool InstanceReady(const RoleRecord& role, const InstanceRecord& inst, bool* busy) const;
  std::vector<wire::Assignment> BuildAssignments(const std::string& node) const;
  // The node's list with generation 0: its assignments, ring neighbours and ring key.
  wire::AssignmentList BuildList(const std::string& node) const;
  // Whether `primary` hands its connections over now: a planned switchover away from it is
  // at fence or stop (routes list it handing_over: no new connection, open ones kept).
  bool HandingOver(const RoleRecord& role, const InstanceRecord& primary) const;
  // The endpoint of `role` in the routing table; nullopt when it has none.
  std::optional<wire::RouteEndpoint> BuildEndpoint(const RoleRecord& role) const;
  // The routing table is rebuilt one role at a time: these mark what may have changed, and
  // Publish rebuilds only that (a controller of 10 000 roles does not rebuild them all for
  // each heartbeat that changes one instance).
  void RoutesDirty(const std::string& role);
  void RoutesDirtyOnNode(const std::string& node);  // the roles of the node's instances
  void AllRoutesDirty() { all_routes_dirty_ = true; }
  std::vector<std::string> ResolveAllow(const std::vector<std::string>& allow) const;

  // --- ops.cc: operations (the journal runs them: failover_procedure.h, rollout_procedure.h)
  Operation NewOperation(const RoleRecord& role, const std::string& reason, const char* first_step);
  void MovePrimary(const RoleRecord& role, bool planned, const std::string& to, FailoverOp* f);
  void BeginOperation(const Operation& op, JournalEvent started);
  void StartFailover(RoleRecord& role, const std::string& reason, bool planned,
                     const std::string& to);
  // A replicated role's primary moves (reconfigure_procedure.h); `to`: an instance.
  Result<nlohmann::json> RequestReconfiguration(RoleRecord& r, const std::string& to,
                                                bool accept_data_loss);
  void StartReconfiguration(const RoleRecord& role, const std::string& reason, bool planned,
                            const std::string& to, bool accept_data_loss);
  // The most advanced secondary of a replicated role on a live node; "" if none.
  std::string SwitchoverTarget(const std::string& role) const;
  Procedure& ProcedureFor(const Operation& op);
  void AdvanceOp(Operation& op);
  bool AssignmentsTaken(const std::string& node) const override;
  std::string GatewayBehind(int64_t version) const override;
  // Connections the live gateways report open to `instance` (drain, autoscaling).
  int64_t OpenConnections(const std::string& instance) const;

  // --- rollout.cc
  const manifest::Role& SpecFor(const RoleRecord& role, const InstanceRecord& inst) const;
  // Whether applying `next` over `old` is a rolling upgrade (load-balanced, placed, runtime
  // spec changed); PrepareSpecChange then keeps the old spec as `previous` in *rec.
  bool RollsOut(const RoleRecord& old, const manifest::Role& next) const;
  void PrepareSpecChange(const RoleRecord& old, RoleRecord* rec);
  std::string StartRollout(const std::string& role, const std::string& reason, bool rollback);

  // --- controller_availability.cc
  void TrackAvailability();

  // --- controller_autoscale.cc
  void Autoscale();
  std::vector<double> AutoscaleSamples(const RoleRecord& role) const;
  nlohmann::json AutoscaleJson(const std::string& role) const;

  // --- gc.cc
  void Gc();
  void DescribeVolumes();  // asks the provider where volumes are attached, a few per pass
  // The node of the role's instance that has its volume; "" when none has it.
  std::string VolumeHolder(const std::string& role) const;

  store::Store& store_;
  Clock& clock_;
  provider::Provider* provider_;
  ControllerOptions opts_;
  ControllerListener listener_;
  std::string id_;
  bool crashed_ = false;
  bool deposed_ = false;
  bool reload_needed_ = false;  // a commit failed: memory may be ahead of the store
  // Where: the keys of the failed commit and of the writes dropped since.
  std::set<std::string> unsure_keys_;
  int64_t failed_commits_ = 0;  // since start, with the last error (StatusJson "store")
  int64_t reloads_keys_ = 0;    // reloads of the unsure keys alone (/metrics)
  int64_t reloads_full_ = 0;    // and of the whole store
  Histogram commit_seconds_{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}};
  uint64_t agent_heartbeats_ = 0;       // handled since start (/metrics)
  uint64_t agent_keepalives_ = 0;       // of them keep-alives (wire/agent_heartbeat.h)
  uint64_t reports_requested_ = 0;      // keep-alives refused: the report they name is not held
  uint64_t assignment_lists_ = 0;       // assignment answers: whole lists
  uint64_t assignments_unchanged_ = 0;  // and "unchanged"
  uint64_t generations_adopted_ = 0;    // AdoptGeneration: the agent's list kept as it is
  uint64_t gc_volume_describes_ = 0;    // provider Describe calls of Gc (DescribeVolumes)
  uint64_t reconcile_passes_ = 0;       // since start (/metrics)
  uint64_t reconcile_role_checks_ = 0;  // roles and instances a pass checked (/metrics)
  uint64_t reconcile_instance_checks_ = 0;
  uint64_t gateway_heartbeats_ = 0;
  uint64_t node_leases_from_memory_ = 0;  // LeaseFromMemory (/metrics)
  uint64_t gateway_leases_from_memory_ = 0;
  std::string last_commit_error_;
  TimePoint started_at_{};
  // Nodes the store recorded down when this controller started. A node is declared down only
  // once its lease (which outlasts its agent's) has ended, and is renewed again only after its
  // node-up is committed: so the leases of these ended before this controller started.
  std::set<std::string> down_at_start_;

  // Desired state, mirrored from the store.
  // Name-ordered, looked up by hash (core/name_map.h): the ordered walks decide placements.
  NameMap<RoleRecord> roles_;
  NameMap<InstanceRecord> instances_;
  NameMap<std::set<std::string>> by_node_;                         // node -> instances
  NameMap<std::set<std::string>> by_role_;                         // role -> instances
  std::map<std::string, std::set<std::string>> nodes_at_address_;  // address -> nodes
  NameMap<NodeRecord> nodes_;
  std::set<std::string> gateways_;
  std::map<std::string, Operation> ops_;
  std::map<std::string, std::string> running_ops_;  // role -> id of its running operation
  std::deque<Event> events_;                        // the most recent, in memory
  std::deque<int64_t> stored_events_;               // ids of events in the store, for trimming
  std::vector<store::Op> pending_;
  // What the store holds about who may have a lease (LeaseFromMemory): nodes recorded down,
  // and the nodes running operations hold as fenced (op id -> node); with their changes in
  // the pending transaction, applied when it commits.
  std::set<std::string> stored_down_;
  std::map<std::string, std::string> stored_fenced_;
  std::map<std::string, bool> pending_down_;
  std::map<std::string, std::string> pending_fenced_;
  std::set<std::string> stored_gateways_;  // gateways the store knows (their leases likewise)
  std::vector<std::string> pending_gateways_;

  // Observed state, memory only.
  NameMap<NodeObservation> observed_;
  // volume -> the nodes whose last report lists it (in any state): what Gc and failover look
  // at without walking every node's report.
  std::map<std::string, std::set<std::string>> volume_reporters_;
  LeaseTable node_leases_;
  Ring ring_{opts_.ring_k};
  RingArbiter arbiter_{clock_, opts_.arbiter};
  bool ring_dirty_ = true;
  // The neighbours, with their addresses, of each ring member as last published.
  std::map<std::string, std::vector<wire::RingPeer>> ring_peers_;
  uint64_t ring_checks_ = 0;  // arbiter checks asked (/metrics)
  LeaseTable gateway_leases_;
  std::map<std::string, int64_t> gateway_acked_;
  NameMap<RestartTrack> restarts_;
  // gateway -> instance -> active connections it reported (drain, autoscaling).
  std::map<std::string, std::map<std::string, uint64_t>> gateway_active_;
  Autoscaler autoscaler_{clock_};
  std::map<std::string, AutoscaleDecision> autoscale_last_;  // role -> last evaluation
  TimePoint next_autoscale_{};
  std::map<std::string, AvailabilityLog> availability_;  // role -> outages
  int64_t availability_routes_version_ = 0;              // the routes last judged
  // The roles to judge at the next routes version: those whose endpoint changed since the
  // last judgement, or every role (after a start or a rebuild of the whole table).
  std::set<std::string> availability_dirty_;
  bool availability_all_ = true;
  // instance -> (when it left the rotation for a scale-down, the routes version without it)
  std::map<std::string, std::pair<TimePoint, int64_t>> scale_drain_;
  std::set<std::string> warned_;  // one-shot warnings (unplaceable, ...)

  // Derived and published.
  int64_t seq_ = 0;
  int64_t seq_floor_ = 0;
  NameMap<int64_t> node_generation_;
  NameMap<std::vector<wire::Assignment>> assignments_cache_;  // as published
  std::set<std::string> adopted_;  // nodes whose generation is an earlier controller's (Adopt...)
  std::set<std::string> dirty_nodes_;
  bool all_routes_dirty_ = true;
  std::set<std::string> dirty_routes_;  // roles whose endpoint may have changed
  // role -> the roles whose endpoint's allow: names it (their CIDRs follow its instances).
  std::map<std::string, std::set<std::string>> allow_referrers_;
  bool routes_window_passed_ = false;  // the first lease TTL since the start (BuildEndpoint)
  // The live nodes listed for a reconcile pass at its first placement (Place), kept for the
  // rest of it; empty outside one.
  struct PlacementPass {
    std::vector<NodeCandidate> candidates;
    std::map<std::string_view, size_t> index;  // node -> its candidate
  };
  mutable std::optional<PlacementPass> placement_pass_;
  bool in_pass_ = false;
  const PlacementPass& Pass() const;
  // To check at the next pass (Reconcile); all after a load.
  bool recheck_all_ = true;
  bool orphans_possible_ = true;  // a role went (or a load): its instances are removed
  // Nodes where Gc looks for instances no assignment wants: since its last look, a report
  // came, the instances assigned there changed, or the lease was renewed after it lapsed.
  std::set<std::string> gc_nodes_;
  bool gc_all_nodes_ = true;      // every node heard from (after a load)
  std::string gc_describe_from_;  // the role DescribeVolumes starts at; "" = the first
  std::set<std::string> recheck_roles_, recheck_;
  // Instances created and deleted during a pass: one created is checked from the next pass on,
  // as a pass checks those that were there when it began.
  std::set<std::string> created_in_pass_, deleted_in_pass_;
  bool in_health_pass_ = false;  // the pass checks instances (Reconcile)
  // host -> the ports gateway endpoints listen on there (PortFor); reset when roles change.
  mutable std::optional<std::map<std::string, std::set<int>>> listen_ports_;
  // A role spec's spec_hashes (BuildAssignments): its hashed text cut where the port's value
  // goes (spec_hash = StableHash(before + port + after), built once for all its instances'
  // ports), and the hashes made of it, by port.
  struct SpecHashes {
    std::string before, after;
    std::map<int, std::string> by_port;
  };
  // role -> the previous spec? -> its hashes; a role's entries go when its record changes.
  mutable std::map<std::string, std::map<bool, SpecHashes>> spec_hashes_;
  wire::Routes routes_;
  int64_t routes_version_ = 0;
  // When each routes version of the last lease TTL (and always the newest) was published, for
  // AckDeadline; versions up to routes_forgotten_ were published longer ago.
  std::map<int64_t, TimePoint> routes_published_;
  int64_t routes_forgotten_ = 0;
  TimePoint next_reconcile_{};
  TimePoint last_reconcile_{};
  // Set by whatever a pass may act on (a commit, an instance's state as reported, a
  // gateway's connection counts); cleared when a pass starts.
  bool changed_since_reconcile_ = true;
  TimePoint next_gc_{};

  // Operations: the journal and the procedures it runs.
  OpJournal journal_{clock_, *this, *this, {opts_.crash_at_step, opts_.crash_exits}};
  FailoverProcedure failover_{provider_, opts_.unsafe_skip_stop_wait};
  RolloutProcedure rollout_{clock_};
  // A replica that does not answer within a lease (plus the fence margin) is not coming soon;
  // a planned switchover's target has as long to catch up.
  ReconfigureProcedure reconfigure_{opts_.lease_ttl + opts_.fence_margin,
                                    opts_.lease_ttl + opts_.fence_margin};
};

// The value of `key` in `m`, or an empty one; no copy either way (the controller's indexes).
template <typename Map>
const typename Map::mapped_type& FoundOrEmpty(const Map& m, const typename Map::key_type& key) {
  static const typename Map::mapped_type empty;
  auto it = m.find(key);
  return it == m.end() ? empty : it->second;
}

// The first of `endpoints` (the controller's, sorted by role) whose role is not less than
// `role`: the role's endpoint when it has one.
template <typename Endpoints>
auto RouteOf(Endpoints& endpoints, const std::string& role) {
  return std::lower_bound(
      endpoints.begin(), endpoints.end(), role,
      [](const wire::RouteEndpoint& e, const std::string& r) { return e.role < r; });
}

// Fnv1a (core/fnv.h) of `text` in hex, for spec_hash.
std::string StableHash(const std::string& text);

}  // namespace hafab::controller
