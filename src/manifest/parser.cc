#include "manifest/parser.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <sstream>

#include "core/utf8.h"
#include "manifest/limits.h"
#include "manifest/validate.h"
#include "manifest/yaml_reader.h"

namespace hafab::manifest {
namespace {

constexpr std::string_view kTopKeys[] = {"cluster", "settings", "nodes", "roles"};
constexpr std::string_view kSettingsKeys[] = {"heartbeat_interval", "lease_ttl", "api_listen",
                                              "failure_detector"};
constexpr std::string_view kFailureDetectors[] = {"star", "ring"};  // FailureDetector's order
constexpr std::string_view kNodeKeys[] = {"name", "fault_domain", "update_domain", "address",
                                          "capacity"};
constexpr std::string_view kRoleKeys[] = {
    "name",       "mode",  "command",  "args",   "env",    "instances",  "min",       "max",
    "autoscale",  "port",  "endpoint", "volume", "probes", "restart",    "resources", "update",
    "stop_grace", "drain", "version",  "user",   "group",  "replication"};
constexpr std::string_view kDrainKeys[] = {"command", "timeout"};
constexpr std::string_view kAutoscaleKeys[] = {"metric", "target", "stabilization", "cooldown"};
constexpr std::string_view kEndpointKeys[] = {"listen", "allow"};
constexpr std::string_view kProbesKeys[] = {"liveness", "readiness"};
constexpr std::string_view kProbeKeys[] = {"kind",
                                           "path",
                                           "command",
                                           "interval",
                                           "timeout",
                                           "failure_threshold",
                                           "success_threshold",
                                           "failover_after"};
constexpr std::string_view kRestartKeys[] = {"policy", "max_restarts", "window", "backoff_initial",
                                             "backoff_max"};
constexpr std::string_view kResourcesKeys[] = {"cpu", "memory"};
constexpr std::string_view kUpdateKeys[] = {"max_unavailable_domains", "ready_timeout"};
constexpr std::string_view kReplicationKeys[] = {"quorum", "rebuild_after", "hook"};

// In enum order.
constexpr std::string_view kModes[] = {"active-passive", "load-balanced", "replicated"};
constexpr std::string_view kProbeKinds[] = {"tcp", "http", "exec"};
constexpr std::string_view kRestartPolicies[] = {"always", "on-failure", "never"};
constexpr std::string_view kMetrics[] = {"cpu", "connections"};

// Turns a yaml-cpp tree into a Manifest, field by field; cross-field checks are validate.cc's.
class ManifestReader {
 public:
  explicit ManifestReader(YamlReader& r) : r_(r) {}

  Manifest Read(const YAML::Node& root) {
    Manifest m;
    Field top{"", YAML::Node(), root, ""};
    bool has_roles = false;
    r_.ForEachField(top, kTopKeys, [&](const Field& f) {
      if (f.key == "cluster") {
        r_.ReadName(f, &m.cluster);
      } else if (f.key == "settings") {
        ReadSettings(f, &m.settings);
      } else if (f.key == "nodes") {
        ReadNodes(f, &m.nodes);
      } else if (f.key == "roles") {
        has_roles = true;
        if (f.value.IsSequence() && f.value.size() > static_cast<size_t>(kMaxRoles)) {
          r_.Error(f.path, r_.Pos(f),
                   "roles: " + std::to_string(f.value.size()) + " roles; at most " +
                       std::to_string(kMaxRoles) + " in one manifest");
        } else {
          r_.ForEachItem(f, [&](int, const Field& item) { m.roles.push_back(ReadRole(item)); });
        }
      }
    });
    if (root.IsMap() && !has_roles) {
      r_.Warning(r_.Pos(root), "no roles: this manifest runs nothing");
    }
    return m;
  }

 private:
  bool Has(const std::string& path) const { return r_.positions().count(path) > 0; }

  void Require(const Field& container, std::string_view key, std::string_view what) {
    std::string path = container.path + "." + std::string(key);
    if (!Has(path) && container.value.IsMap()) {
      r_.Error(
          path, r_.Pos(container),
          container.path + ": missing required key " + Quote(key) + " (" + std::string(what) + ")");
    }
  }

  void ReadSettings(const Field& f, Settings* s) {
    r_.ForEachField(f, kSettingsKeys, [&](const Field& g) {
      if (g.key == "heartbeat_interval") {
        r_.ReadDuration(g, false, &s->heartbeat_interval);
      } else if (g.key == "lease_ttl") {
        r_.ReadDuration(g, false, &s->lease_ttl);
      } else if (g.key == "api_listen") {
        r_.ReadString(g, &s->api_listen);
      } else if (g.key == "failure_detector") {
        size_t choice = 0;
        if (r_.ReadChoice(g, kFailureDetectors, &choice)) {
          s->failure_detector = static_cast<FailureDetector>(choice);
          s->failure_detector_pos = r_.Pos(g);
        }
      }
    });
  }

  void ReadNodes(const Field& f, std::vector<Node>* nodes) {
    if (f.value.IsScalar()) {
      int count = 0;
      if (!r_.ReadInt(f, 1, kMaxNodes, &count)) return;
      for (int i = 1; i <= count; ++i) {
        std::string n = std::to_string(i);
        nodes->push_back({"n" + n, "fd" + n, "ud" + n, "127.0.0.1", 0, r_.Pos(f)});
      }
      return;
    }
    if (!f.value.IsSequence()) {
      r_.Error(f.path, r_.Pos(f),
               "nodes: expected a count (nodes: 3) or a list of nodes, got " +
                   std::string(f.value.IsMap() ? "a map" : "nothing"));
      return;
    }
    if (f.value.size() > static_cast<size_t>(kMaxNodes)) {
      r_.Error(f.path, r_.Pos(f),
               "nodes: " + std::to_string(f.value.size()) + " nodes; at most " +
                   std::to_string(kMaxNodes));
      return;
    }
    r_.ForEachItem(f, [&](int, const Field& item) {
      Node node;
      node.pos = r_.Pos(item);
      bool has_fd = false, has_ud = false;
      r_.ForEachField(item, kNodeKeys, [&](const Field& g) {
        if (g.key == "name") {
          r_.ReadName(g, &node.name);
        } else if (g.key == "fault_domain") {
          has_fd = r_.ReadName(g, &node.fault_domain);
        } else if (g.key == "update_domain") {
          has_ud = r_.ReadName(g, &node.update_domain);
        } else if (g.key == "address") {
          if (r_.ReadString(g, &node.address) && node.address.empty()) {
            r_.Error(g.path, r_.Pos(g), g.path + ": must not be empty");
          }
        } else if (g.key == "capacity") {
          r_.ReadInt(g, 0, INT_MAX, &node.capacity);
        }
      });
      Require(item, "name", "the node's name, e.g. n1");
      // A node without labels is a domain of its own.
      if (!has_fd) node.fault_domain = node.name;
      if (!has_ud) node.update_domain = node.name;
      nodes->push_back(std::move(node));
    });
  }

  Role ReadRole(const Field& item) {
    Role role;
    role.pos = r_.Pos(item);
    Autoscale scale;
    r_.ForEachField(item, kRoleKeys, [&](const Field& f) {
      size_t choice = 0;
      if (f.key == "name") {
        r_.ReadName(f, &role.name);
      } else if (f.key == "mode") {
        if (r_.ReadChoice(f, kModes, &choice)) role.mode = static_cast<RoleMode>(choice);
      } else if (f.key == "command") {
        if (r_.ReadString(f, &role.command) && role.command.empty()) {
          r_.Error(f.path, r_.Pos(f), f.path + ": must not be empty");
        }
      } else if (f.key == "args") {
        r_.ReadStringList(f, &role.args);
      } else if (f.key == "env") {
        r_.ReadStringMap(f, &role.env);
      } else if (f.key == "instances") {
        r_.ReadInt(f, 1, kMaxInstancesPerRole, &role.instances);
      } else if (f.key == "min") {
        r_.ReadInt(f, 1, kMaxInstancesPerRole, &scale.min);
      } else if (f.key == "max") {
        r_.ReadInt(f, 1, kMaxInstancesPerRole, &scale.max);
      } else if (f.key == "autoscale") {
        ReadAutoscale(f, &scale);
      } else if (f.key == "port") {
        r_.ReadInt(f, 1, 65535, &role.port);
      } else if (f.key == "endpoint") {
        ReadEndpoint(f, &role.endpoint.emplace());
      } else if (f.key == "volume") {
        r_.ReadName(f, &role.volume);
      } else if (f.key == "probes") {
        r_.ForEachField(f, kProbesKeys, [&](const Field& g) {
          ReadProbe(g, g.key == "liveness" ? &role.probes.liveness.emplace()
                                           : &role.probes.readiness.emplace());
        });
      } else if (f.key == "restart") {
        ReadRestart(f, &role.restart);
      } else if (f.key == "resources") {
        r_.ForEachField(f, kResourcesKeys, [&](const Field& g) {
          if (g.key == "cpu") {
            r_.ReadNumber(g, 0, 4096, &role.resources.cpu);
          } else {
            r_.ReadByteSize(g, &role.resources.memory_bytes);
          }
        });
      } else if (f.key == "update") {
        r_.ForEachField(f, kUpdateKeys, [&](const Field& g) {
          if (g.key == "max_unavailable_domains") {
            r_.ReadInt(g, 1, INT_MAX, &role.update.max_unavailable_domains);
          } else {
            r_.ReadDuration(g, false, &role.update.ready_timeout);
          }
        });
      } else if (f.key == "replication") {
        r_.ForEachField(f, kReplicationKeys, [&](const Field& g) {
          if (g.key == "quorum") {
            r_.ReadInt(g, 1, INT_MAX, &role.replication.quorum);
          } else if (g.key == "rebuild_after") {
            r_.ReadDuration(g, false, &role.replication.rebuild_after);
          } else if (r_.ReadString(g, &role.replication.hook) && role.replication.hook.empty()) {
            r_.Error(g.path, r_.Pos(g), g.path + ": must not be empty (leave it out for HTTP)");
          }
        });
      } else if (f.key == "stop_grace") {
        r_.ReadDuration(f, true, &role.stop_grace);
      } else if (f.key == "drain") {
        ReadDrain(f, &role.drain.emplace());
      } else if (f.key == "version") {
        r_.ReadString(f, &role.version);
      } else if (f.key == "user" || f.key == "group") {
        ReadAccount(f, f.key == "user" ? &role.user : &role.group);
      }
    });
    Require(item, "name", "the role's name");
    Require(item, "command", "the program to run, found on PATH or an absolute path");
    ResolveScaling(item, &role, scale);
    return role;
  }

  // A user or group name as useradd accepts it. Whether it exists is each node's matter: the
  // agent reports an instance it cannot start for lack of it.
  void ReadAccount(const Field& f, std::string* out) {
    std::string s;
    if (!r_.ReadString(f, &s)) return;
    bool ok = !s.empty() && s.size() <= 32 &&
              (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_');
    for (char c : s) {
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    }
    if (!ok) {
      r_.Error(f.path, r_.Pos(f),
               f.path + ": \"" + s +
                   "\" is not a valid account name (a letter or '_', then letters, digits, "
                   "'_', '-' or '.', at most 32 characters)");
      return;
    }
    *out = std::move(s);
  }

  // instances, or min and max (+ autoscale) for an autoscaled role.
  void ResolveScaling(const Field& item, Role* role, const Autoscale& scale) {
    const std::string& p = item.path;
    bool has_min = Has(p + ".min"), has_max = Has(p + ".max");
    if (!has_min && !has_max) {
      if (Has(p + ".autoscale")) {
        r_.Error(p + ".autoscale", r_.positions().at(p + ".autoscale"),
                 p + ".autoscale: needs min and max on the role (min: 2, max: 10)");
      }
      return;
    }
    if (has_min != has_max) {
      std::string present = has_min ? "min" : "max", missing = has_min ? "max" : "min";
      r_.Error(p + "." + missing, r_.positions().at(p + "." + present),
               p + ": " + present + " without " + missing + "; autoscaling needs both");
      return;
    }
    if (Has(p + ".instances")) {
      r_.Error(p + ".instances", r_.positions().at(p + ".instances"),
               p + ": give either instances or min/max (autoscaling), not both");
      return;
    }
    role->autoscale = scale;
    role->instances = scale.min;
  }

  void ReadAutoscale(const Field& f, Autoscale* a) {
    r_.ForEachField(f, kAutoscaleKeys, [&](const Field& g) {
      size_t choice = 0;
      if (g.key == "metric") {
        if (r_.ReadChoice(g, kMetrics, &choice)) a->metric = std::string(kMetrics[choice]);
      } else if (g.key == "target") {
        r_.ReadNumber(g, 0, 1e9, &a->target);
      } else if (g.key == "stabilization") {
        r_.ReadDuration(g, true, &a->stabilization);
      } else if (g.key == "cooldown") {
        r_.ReadDuration(g, true, &a->cooldown);
      }
    });
  }

  void ReadEndpoint(const Field& f, Endpoint* e) {
    r_.ForEachField(f, kEndpointKeys, [&](const Field& g) {
      if (g.key == "listen") {
        r_.ReadString(g, &e->listen);
      } else {
        r_.ReadStringList(g, &e->allow);
      }
    });
    Require(f, "listen", "host:port on the gateway, e.g. 127.0.0.1:7000");
  }

  void ReadProbe(const Field& f, Probe* probe) {
    bool kind_ok = false;
    r_.ForEachField(f, kProbeKeys, [&](const Field& g) {
      size_t choice = 0;
      if (g.key == "kind") {
        kind_ok = r_.ReadChoice(g, kProbeKinds, &choice);
        if (kind_ok) probe->kind = static_cast<ProbeKind>(choice);
      } else if (g.key == "path") {
        if (r_.ReadString(g, &probe->path) && (probe->path.empty() || probe->path[0] != '/')) {
          r_.Error(g.path, r_.Pos(g), g.path + ": must start with '/' (e.g. /health)");
        }
      } else if (g.key == "command") {
        if (r_.ReadStringList(g, &probe->command) && probe->command.empty()) {
          r_.Error(g.path, r_.Pos(g), g.path + ": must not be empty");
        }
      } else if (g.key == "interval") {
        r_.ReadDuration(g, false, &probe->interval);
      } else if (g.key == "timeout") {
        r_.ReadDuration(g, false, &probe->timeout);
      } else if (g.key == "failure_threshold") {
        r_.ReadInt(g, 1, INT_MAX, &probe->failure_threshold);
      } else if (g.key == "success_threshold") {
        r_.ReadInt(g, 1, INT_MAX, &probe->success_threshold);
      } else if (g.key == "failover_after") {
        r_.ReadDuration(g, true, &probe->failover_after);
      }
    });
    if (f.key == "liveness" && Has(f.path + ".failover_after")) {
      r_.Error(f.path + ".failover_after", r_.positions().at(f.path + ".failover_after"),
               f.path +
                   ".failover_after: only readiness probes have failover_after (a failed "
                   "liveness probe restarts the instance at once)");
    }
    if (!Has(f.path + ".failover_after")) {
      probe->failover_after = probe->DefaultFailoverAfter();
    }
    Require(f, "kind", "one of tcp, http, exec");
    if (!kind_ok) return;
    std::string kind(ProbeKindName(probe->kind));
    if (Has(f.path + ".path") && probe->kind != ProbeKind::kHttp) {
      r_.Error(f.path + ".path", r_.positions().at(f.path + ".path"),
               f.path + ".path: only http probes have a path (kind is " + kind + ")");
    }
    if (Has(f.path + ".command") && probe->kind != ProbeKind::kExec) {
      r_.Error(f.path + ".command", r_.positions().at(f.path + ".command"),
               f.path + ".command: only exec probes have a command (kind is " + kind + ")");
    }
    if (probe->kind == ProbeKind::kExec) Require(f, "command", "the argv to run, e.g. [check]");
  }

  void ReadDrain(const Field& f, DrainHook* drain) {
    r_.ForEachField(f, kDrainKeys, [&](const Field& g) {
      if (g.key == "command") {
        if (r_.ReadStringList(g, &drain->command) && drain->command.empty()) {
          r_.Error(g.path, r_.Pos(g), g.path + ": must not be empty");
        }
      } else {
        r_.ReadDuration(g, false, &drain->timeout);
      }
    });
    Require(f, "command", "the argv to run at drain, e.g. [my-app-ctl, drain]");
  }

  void ReadRestart(const Field& f, Restart* restart) {
    r_.ForEachField(f, kRestartKeys, [&](const Field& g) {
      size_t choice = 0;
      if (g.key == "policy") {
        if (r_.ReadChoice(g, kRestartPolicies, &choice)) {
          restart->policy = static_cast<RestartPolicy>(choice);
        }
      } else if (g.key == "max_restarts") {
        r_.ReadInt(g, 0, INT_MAX, &restart->max_restarts);
      } else if (g.key == "window") {
        r_.ReadDuration(g, false, &restart->window);
      } else if (g.key == "backoff_initial") {
        r_.ReadDuration(g, true, &restart->backoff_initial);
      } else if (g.key == "backoff_max") {
        r_.ReadDuration(g, true, &restart->backoff_max);
      }
    });
  }

  YamlReader& r_;
};

void SortByPosition(Diagnostics* diagnostics) {
  std::stable_sort(
      diagnostics->begin(), diagnostics->end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
      });
}

// yaml-cpp's message for a tab in indentation ("illegal block entry") does not say so.
std::string TabHint(std::string_view text, int line) {
  size_t begin = 0;
  for (int l = 1; l < line && begin != std::string_view::npos; ++l) {
    begin = text.find('\n', begin);
    if (begin != std::string_view::npos) ++begin;
  }
  if (begin == std::string_view::npos) return "";
  for (size_t i = begin; i < text.size() && (text[i] == ' ' || text[i] == '\t'); ++i) {
    if (text[i] == '\t') return " (this line is indented with a tab; YAML indents with spaces)";
  }
  return "";
}

// The 1-based line and column (in bytes) of `offset` in `text`.
SourcePos PosOfOffset(std::string_view text, size_t offset, const std::string& file_name) {
  SourcePos pos{file_name, 1, 1};
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
  }
  return pos;
}

}  // namespace

namespace {

// Where each YAML document of a text starts; nothing else.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// yaml-cpp 0.7 reads a ',' outside a flow collection ("," alone, ", a: b") as an empty
// document that consumes nothing, so YAML::LoadAll loops forever, allocating (found by
// fuzz_manifest: POST /v1/apply with such a body hung the controller's event loop). The
// documents are walked first; one that starts where the previous one started is refused
// as a syntax error at that place. Throws YAML::Exception as LoadAll does.
void RefuseStuckDocuments(std::string_view text) {
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    const size_t n = docs.starts.size();
    if (n >= 2 && docs.starts[n - 1].pos == docs.starts[n - 2].pos) {
      throw YAML::ParserException(docs.starts[n - 1],
                                  "unexpected ',' outside a flow sequence [..] or map {..}");
    }
  }
}

}  // namespace

ParseOutcome ParseManifest(std::string_view yaml_text, const std::string& file_name) {
  ParseOutcome out;
  if (yaml_text.size() > kMaxManifestBytes) {
    out.diagnostics.push_back({{file_name, 1, 1},
                               false,
                               "the manifest is " + std::to_string(yaml_text.size()) +
                                   " bytes; at most " + std::to_string(kMaxManifestBytes) +
                                   " are accepted"});
    return out;
  }
  if (size_t bad = FindInvalidUtf8(yaml_text); bad != std::string_view::npos) {
    SourcePos pos = PosOfOffset(yaml_text, bad, file_name);
    out.diagnostics.push_back({pos, false, "not valid UTF-8 (a manifest is UTF-8 text)"});
    return out;
  }
  YAML::Node root;
  try {
    RefuseStuckDocuments(yaml_text);
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml_text));
    if (documents.size() > 1) {
      YAML::Mark m = documents[1].Mark();
      SourcePos pos{file_name, std::max(m.line, 0) + 1, std::max(m.column, 0) + 1};
      out.diagnostics.push_back(
          {pos, false,
           "a manifest is one YAML document; found " + std::to_string(documents.size()) +
               " (remove the \"---\" separators or use one file per manifest)"});
      return out;
    }
    if (!documents.empty()) root = documents[0];
  } catch (const YAML::Exception& e) {
    SourcePos pos{file_name, std::max(e.mark.line, 0) + 1, std::max(e.mark.column, 0) + 1};
    out.diagnostics.push_back(
        {pos, false, "YAML syntax error: " + e.msg + TabHint(yaml_text, pos.line)});
    return out;
  }
  if (root.IsNull()) {
    out.diagnostics.push_back(
        {{file_name, 1, 1}, false, "the manifest is empty; it needs at least roles:"});
    return out;
  }
  YamlReader reader(file_name, &out.diagnostics);
  Manifest manifest;
  try {
    manifest = ManifestReader(reader).Read(root);
    ValidateManifest(manifest, reader);
  } catch (const YAML::Exception& e) {
    // Reading only walks the tree and takes scalars, which yaml-cpp does not throw on.
    out.diagnostics.push_back(
        {reader.Pos(root), false, std::string("internal error: ") + e.what()});
  }
  SortByPosition(&out.diagnostics);
  if (out.ok()) out.manifest = std::move(manifest);
  return out;
}

ParseOutcome LoadManifestFile(const std::string& path) {
  auto fail = [&](int err) {
    ParseOutcome out;
    out.diagnostics.push_back(
        {{path, 0, 0}, false, "cannot read manifest: " + std::string(std::strerror(err))});
    return out;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail(err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ParseManifest(text, path);
}

}  // namespace hafab::manifest
