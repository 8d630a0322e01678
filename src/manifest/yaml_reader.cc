#include "manifest/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>

#include "core/duration.h"
#include "manifest/units.h"

namespace hafab::manifest {
namespace {

std::string FormatNumber(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ptr);
}

// What a node is, for "expected X, got Y".
std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      return Quote(n.Scalar());
    default:
      return "nothing";
  }
}

std::string Join(std::span<const std::string_view> items) {
  std::string s;
  for (std::string_view i : items) {
    if (!s.empty()) s += ", ";
    s += i;
  }
  return s;
}

// Lowercase without '_' and '-', so "Fault-Domain" and "fault_domain" match.
std::string Normalize(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '-') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Edit distance counting a swap of two neighbours as one edit ("instnaces" -> "instances").
size_t TypoDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string ClosestKey(std::string_view key, std::span<const std::string_view> known) {
  std::string norm_key = Normalize(key);
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (std::string_view k : known) {
    size_t d = TypoDistance(norm_key, Normalize(k));
    if (d < best_distance) {
      best_distance = d;
      best = std::string(k);
    }
  }
  // One edit in a short key, two in a longer one; more is a different word, not a typo.
  size_t allowed = norm_key.size() <= 4 ? 1 : 2;
  return best_distance <= allowed ? best : "";
}

YamlReader::YamlReader(std::string file_name, Diagnostics* out)
    : file_name_(std::move(file_name)), out_(out) {}

SourcePos YamlReader::Pos(const YAML::Node& node) const {
  YAML::Mark m = node.Mark();
  if (m.is_null() || m.line < 0) return {file_name_, 1, 1};
  return {file_name_, m.line + 1, m.column + 1};
}

SourcePos YamlReader::Pos(const Field& field) const {
  if (field.value.IsNull() && field.key_node.IsDefined() && !field.key_node.Mark().is_null()) {
    return Pos(field.key_node);
  }
  return Pos(field.value);
}

void YamlReader::Error(const std::string& path, SourcePos pos, std::string message) {
  error_paths_.insert(path);
  out_->push_back({std::move(pos), false, std::move(message)});
}

void YamlReader::Warning(SourcePos pos, std::string message) {
  out_->push_back({std::move(pos), true, std::move(message)});
}

void YamlReader::WrongType(const Field& f, std::string_view expected) {
  Error(f.path, Pos(f),
        f.path + ": expected " + std::string(expected) + ", got " + Describe(f.value));
}

bool YamlReader::ForEachField(const Field& map, std::span<const std::string_view> known,
                              const std::function<void(const Field&)>& fn) {
  if (!map.value.IsMap()) {
    if (map.path.empty()) {
      Error("", Pos(map),
            "the manifest must be a map of cluster, settings, nodes and roles; got " +
                Describe(map.value));
    } else {
      WrongType(map, "a map");
    }
    return false;
  }
  std::string where = map.path.empty() ? "at the top level" : "in " + map.path;
  std::map<std::string, SourcePos> seen;
  for (const auto& kv : map.value) {
    Field f{"", kv.first, kv.second, ""};
    if (!kv.first.IsScalar()) {
      Error(map.path, Pos(kv.first), "keys must be plain names " + where);
      continue;
    }
    f.key = kv.first.Scalar();
    f.path = map.path.empty() ? f.key : map.path + "." + f.key;
    if (std::find(known.begin(), known.end(), f.key) == known.end()) {
      std::string suggestion = ClosestKey(f.key, known);
      Error(map.path, Pos(kv.first),
            "unknown key " + Quote(f.key) + " " + where +
                (suggestion.empty() ? "; known keys: " + Join(known)
                                    : "; did you mean " + Quote(suggestion) + "?"));
      continue;
    }
    auto [it, inserted] = seen.emplace(f.key, Pos(kv.first));
    if (!inserted) {
      Error(f.path, Pos(kv.first),
            "duplicate key " + Quote(f.key) + " " + where + " (first at line " +
                std::to_string(it->second.line) + ")");
      continue;
    }
    positions_[f.path] = Pos(f);
    fn(f);
  }
  return true;
}

bool YamlReader::ForEachItem(const Field& list, const std::function<void(int, const Field&)>& fn) {
  if (!list.value.IsSequence()) {
    WrongType(list, "a list");
    return false;
  }
  int i = 0;
  for (const auto& item : list.value) {
    Field f{"", YAML::Node(), item, list.path + "[" + std::to_string(i) + "]"};
    positions_[f.path] = Pos(f);
    fn(i, f);
    ++i;
  }
  return true;
}

bool YamlReader::Scalar(const Field& f, std::string_view what, std::string* out) {
  if (!f.value.IsScalar()) {
    WrongType(f, what);
    return false;
  }
  if (f.value.Scalar().find('\0') != std::string::npos) {
    Error(f.path, Pos(f), f.path + ": must not contain a NUL character");
    return false;
  }
  *out = f.value.Scalar();
  return true;
}

bool YamlReader::ReadString(const Field& f, std::string* out) { return Scalar(f, "a string", out); }

bool YamlReader::ReadName(const Field& f, std::string* out) {
  std::string s;
  if (!Scalar(f, "a name", &s)) return false;
  if (!IsValidName(s)) {
    Error(f.path, Pos(f),
          f.path + ": " + Quote(s) + " is not a valid name (" + std::string(kNameRule) + ")");
    return false;
  }
  *out = std::move(s);
  return true;
}

bool YamlReader::ReadInt(const Field& f, int min, int max, int* out) {
  std::string s;
  if (!Scalar(f, "an integer", &s)) return false;
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ptr != s.data() + s.size() || ec == std::errc::invalid_argument) {
    WrongType(f, "an integer");
    return false;
  }
  if (ec == std::errc::result_out_of_range || v < min || v > max) {
    if (max == INT_MAX) {
      Error(f.path, Pos(f),
            f.path + ": must be at least " + std::to_string(min) + " (got " + s + ")");
    } else {
      Error(f.path, Pos(f),
            f.path + ": " + s + " is out of range " + std::to_string(min) + ".." +
                std::to_string(max));
    }
    return false;
  }
  *out = static_cast<int>(v);
  return true;
}

bool YamlReader::ReadNumber(const Field& f, double min, double max, double* out) {
  std::string s;
  if (!Scalar(f, "a number", &s)) return false;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ptr != s.data() + s.size() || ec != std::errc() || !std::isfinite(v)) {
    WrongType(f, "a number");
    return false;
  }
  if (v < min || v > max) {
    Error(f.path, Pos(f),
          f.path + ": " + s + " is out of range " + FormatNumber(min) + ".." + FormatNumber(max));
    return false;
  }
  *out = v;
  return true;
}

bool YamlReader::ReadDuration(const Field& f, bool allow_zero, Duration* out) {
  std::string s;
  if (!Scalar(f, "a duration (e.g. 200ms, 2s)", &s)) return false;
  auto d = ParseDuration(s);
  if (!d.ok()) {
    Error(f.path, Pos(f), f.path + ": " + d.status().message());
    return false;
  }
  if (!allow_zero && *d == Duration::zero()) {
    Error(f.path, Pos(f), f.path + ": must be longer than 0");
    return false;
  }
  *out = *d;
  return true;
}

bool YamlReader::ReadByteSize(const Field& f, uint64_t* out) {
  std::string s;
  if (!Scalar(f, "a size (e.g. 256Mi, 1G)", &s)) return false;
  auto bytes = ParseByteSize(s);
  if (!bytes.ok()) {
    Error(f.path, Pos(f), f.path + ": " + bytes.status().message());
    return false;
  }
  *out = *bytes;
  return true;
}

bool YamlReader::ReadStringList(const Field& f, std::vector<std::string>* out) {
  if (f.value.IsScalar()) {
    Error(f.path, Pos(f),
          f.path + ": expected a list, got " + Describe(f.value) + " (write [" + f.value.Scalar() +
              "])");
    return false;
  }
  std::vector<std::string> items;
  bool ok = true;
  bool is_list = ForEachItem(f, [&](int, const Field& item) {
    std::string s;
    if (ReadString(item, &s)) {
      items.push_back(std::move(s));
    } else {
      ok = false;
    }
  });
  if (!is_list || !ok) return false;
  *out = std::move(items);
  return true;
}

bool YamlReader::ReadStringMap(const Field& f, std::map<std::string, std::string>* out) {
  std::map<std::string, std::string> m;
  bool ok = true;
  if (!f.value.IsMap()) {
    WrongType(f, "a map");
    return false;
  }
  std::map<std::string, int> lines;
  for (const auto& kv : f.value) {
    Field item{"", kv.first, kv.second, ""};
    if (!kv.first.IsScalar()) {
      Error(f.path, Pos(kv.first), f.path + ": keys must be plain names");
      ok = false;
      continue;
    }
    item.key = kv.first.Scalar();
    item.path = f.path + "." + item.key;
    positions_[item.path] = Pos(kv.first);  // a map's entries are named by their key
    auto [it, inserted] = lines.emplace(item.key, Pos(kv.first).line);
    if (!inserted) {
      Error(item.path, Pos(kv.first),
            "duplicate key " + Quote(item.key) + " in " + f.path + " (first at line " +
                std::to_string(it->second) + ")");
      ok = false;
      continue;
    }
    std::string v;
    if (ReadString(item, &v)) {
      m[item.key] = std::move(v);
    } else {
      ok = false;
    }
  }
  if (!ok) return false;
  *out = std::move(m);
  return true;
}

bool YamlReader::ReadChoice(const Field& f, std::span<const std::string_view> allowed,
                            size_t* index) {
  std::string s;
  if (!Scalar(f, "one of " + Join(allowed), &s)) return false;
  auto it = std::find(allowed.begin(), allowed.end(), s);
  if (it == allowed.end()) {
    Error(f.path, Pos(f), f.path + ": " + Quote(s) + " is not one of " + Join(allowed));
    return false;
  }
  *index = static_cast<size_t>(it - allowed.begin());
  return true;
}

}  // namespace hafab::manifest
