// YamlReader: reads typed values out of a yaml-cpp tree and reports every problem as a
// Diagnostic at the offending node, named by its field path ("roles[1].mode"). Reading goes
// on after a problem so that one pass finds them all.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "manifest/diagnostic.h"

namespace hafab::manifest {

// One `key: value` of a YAML map, with the field path of the value.
struct Field {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  std::string path;  // "roles[0].instances"
};

// The closest of `known` to `key` when it is close enough to be a likely typo, else "".
std::string ClosestKey(std::string_view key, std::span<const std::string_view> known);

class YamlReader {
 public:
  // `out` receives the diagnostics; it must outlive the reader.
  YamlReader(std::string file_name, Diagnostics* out);

  // 1-based position of a node; the start of the document when the node has none.
  SourcePos Pos(const YAML::Node& node) const;
  // The value's position, or the key's when the value is empty (yaml-cpp puts empty values
  // at the start of the next line).
  SourcePos Pos(const Field& field) const;

  // Reports a problem with the field at `path` (kept in error_paths()).
  void Error(const std::string& path, SourcePos pos, std::string message);
  void Warning(SourcePos pos, std::string message);

  // Calls `fn` for every key of `map` in document order. Keys not in `known` and repeated keys
  // are reported and skipped. Records where each field was written (positions()). `map.path`
  // names the map in messages ("" = the top level).
  // Returns false, after reporting, when `map.value` is not a map.
  bool ForEachField(const Field& map, std::span<const std::string_view> known,
                    const std::function<void(const Field&)>& fn);
  // Calls `fn(index, item)` for every item of a list (item.path is "roles[0]"); records where
  // each item is written. Returns false, after reporting, when `list.value` is not a list.
  bool ForEachItem(const Field& list, const std::function<void(int, const Field&)>& fn);

  // Each Read* stores the value in *out and returns true, or reports why it cannot and
  // returns false leaving *out as it was.
  bool ReadString(const Field& f, std::string* out);  // any scalar, as written
  bool ReadName(const Field& f, std::string* out);    // IsValidName (units.h)
  bool ReadInt(const Field& f, int min, int max, int* out);
  bool ReadNumber(const Field& f, double min, double max, double* out);
  bool ReadDuration(const Field& f, bool allow_zero, Duration* out);
  bool ReadByteSize(const Field& f, uint64_t* out);
  bool ReadStringList(const Field& f, std::vector<std::string>* out);
  bool ReadStringMap(const Field& f, std::map<std::string, std::string>* out);
  // One of `allowed` (by index into it).
  bool ReadChoice(const Field& f, std::span<const std::string_view> allowed, size_t* index);

  // Where each field path that was read is written.
  const std::map<std::string, SourcePos>& positions() const { return positions_; }
  // The field paths that had an error.
  const std::set<std::string>& error_paths() const { return error_paths_; }
  const std::string& file_name() const { return file_name_; }

 private:
  // Reports a wrong type: "<path>: expected <what>, got <what the node is>".
  void WrongType(const Field& f, std::string_view expected);
  // The scalar text, or reports (expected `what`) and returns false.
  bool Scalar(const Field& f, std::string_view what, std::string* out);

  std::string file_name_;
  Diagnostics* out_;
  std::map<std::string, SourcePos> positions_;
  std::set<std::string> error_paths_;
};

// `s` in double quotes, as a diagnostic names a value the manifest wrote.
inline std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace hafab::manifest
