// Rolling upgrade of a load-balanced role, one update domain at a time (DESIGN: "fault
// domain / update domain ... placement and rollout use them").
//
// A role's runtime spec (what its instances run: command, args, env, probes, restart,
// resources, stop_grace, version) changes through `hafab upgrade` or a re-applied manifest.
// The role record then keeps the new spec (`revision`) and the old one (`previous`,
// `previous_revision`); every instance names the revision it runs, so nothing restarts until
// the rollout reaches it. The rollout is a journaled operation (kind "rollout",
// rollout_procedure.h) whose
// steps run once per wave of `update.max_unavailable_domains` domains:
//   drain  the wave's instances leave the rotation (routes: ready false); done when every
//          live gateway has acknowledged that table and reports no connection left to them
//          (or stop_grace has passed: the app's own SIGTERM handling finishes the rest);
//   stop   run: false; done when their agents report them stopped;
//   start  the new revision, run: true; done when they are ready. A failed instance, or
//          one not ready within `update.ready_timeout` (monotonic, from the step's start in this
//          controller: a resumed step counts afresh), rolls the whole rollout back;
//   route  back in rotation; the next wave starts with drain.
// A rollback is the same procedure towards the old spec: the role's spec and previous swap
// (runtime fields only); the wave under way is redone first (its instances are out of
// rotation, some maybe still on the old spec), then every domain not at the old revision. A
// controller restarted mid-way resumes at the recorded step of the recorded wave (every step is
// idempotent).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "manifest/model.h"

namespace hafab::controller {

// Whether two specs run the same thing (the fields above). Instance count, endpoint,
// autoscale and update policy are not part of it: changing them restarts nothing.
bool SameRuntime(const manifest::Role& a, const manifest::Role& b);

// A role's version for messages: "(no version)" when it has none.
std::string VersionName(const std::string& version);

// Copies the runtime fields of `from` into `to`, leaving the others.
void CopyRuntime(const manifest::Role& from, manifest::Role* to);

// Applies an upgrade's `set` object to `spec`: {"command": "prog", "args": ["a", "b"],
// "env": {"K": "V"} (merged; a null value removes K), "version": "2"}.
// InvalidArgument names the field ("set.args: must be an array of strings").
Status ApplyUpgradeSet(const nlohmann::json& set, manifest::Role* spec);

}  // namespace hafab::controller
