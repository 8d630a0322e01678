// What `hafab get KIND --watch` prints as the listing changes, like `kubectl get -w`: the whole
// table once, then one line per row that appeared or changed, and the last line of a row that
// went, marked "(gone)". Lines keep the first table's column widths.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/status_view.h"

namespace hafab::cli {

class TableWatch {
 public:
  // Cells under a header in `volatile_headers` (AGE, HEARTBEAT) change by themselves: a row
  // is printed again only when one of its other cells changed.
  explicit TableWatch(std::set<std::string> volatile_headers);

  // `rows`: the header, then the rows, each named by its first cell, with the header's
  // columns. Returns the text to print (empty when nothing changed).
  std::string Update(const Rows& rows);

 private:
  std::string Key(const std::vector<std::string>& row) const;

  std::set<std::string> volatile_headers_;
  std::vector<bool> volatile_;  // per column
  std::vector<size_t> width_;   // of the first table
  bool started_ = false;
  // By name: the row last printed, and its cells that matter.
  std::map<std::string, std::pair<std::vector<std::string>, std::string>> last_;
};

}  // namespace hafab::cli
