// PassOptions: a pass's options as written in a recipe (or on the command line), read with typed getters.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/support/status.h"

namespace YAML {
class Node;
}

namespace compress::pass {

// The accepted interval of a number option. Bounds are inclusive unless the
// matching `*_open` flag is set; NaN and infinities are always rejected.
struct Range {
  double min = -std::numeric_limits<double>::max();
  double max = std::numeric_limits<double>::max();
  bool min_open = false;
  bool max_open = false;

  static Range closed(double lo, double hi) { return {lo, hi, false, false}; }
  static Range half_open(double lo, double hi) { return {lo, hi, false, true}; }  // [lo, hi)
  static Range at_least(double lo) { return {lo, std::numeric_limits<double>::max(), false, false}; }
  static Range positive() { return {0.0, std::numeric_limits<double>::max(), true, false}; }
};

// Note [Pass options]
// Every getter reads one key, checks its type and range, and returns either
// the value (or the default when the key is absent) or an error that names
// where the value was written: "recipe.yaml:14:12: stage 2 (prune.magnitude):
// option 'ratio': expected a number in [0, 1), got 1.5". Each key a getter
// asks for is remembered; finish() then rejects any key nobody asked for
// (a typo such as 'ratoi' must not silently fall back to a default).
// A pass reads all its options in its factory, so a recipe fails before any
// stage runs.
class PassOptions {
 public:
  // No options: every getter returns its default.
  PassOptions();
  // A YAML mapping from a recipe. `file` and `context` ("stage 2
  // (prune.magnitude)") prefix every message; a null node means no options.
  static Expected<PassOptions> from_yaml(const YAML::Node& node, std::string file, std::string context);
  // key=value pairs from a command line; values are parsed as YAML scalars
  // (so "0.5", "true", "[a, b]" work). `context` names the source ("ctk prune").
  static Expected<PassOptions> from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs,
                                          std::string context);

  bool has(const std::string& key) const;

  Expected<double> number(const std::string& key, double fallback, Range range = {}) const;
  Expected<int64_t> integer(const std::string& key, int64_t fallback, int64_t min = std::numeric_limits<int64_t>::min(),
                            int64_t max = std::numeric_limits<int64_t>::max()) const;
  Expected<bool> boolean(const std::string& key, bool fallback) const;
  // With `choices`, the value must be one of them (the error lists them).
  Expected<std::string> string(const std::string& key, std::string fallback,
                               const std::vector<std::string>& choices = {}) const;
  // A sequence of strings; a single scalar is a one-element list.
  Expected<std::vector<std::string>> string_list(const std::string& key) const;
  // A sequence of integers in [min, max]; a single scalar is a one-element list.
  Expected<std::vector<int64_t>> integer_list(const std::string& key, int64_t min = std::numeric_limits<int64_t>::min(),
                                              int64_t max = std::numeric_limits<int64_t>::max()) const;
  // A mapping name-or-pattern -> number (per-layer overrides), each value in `range`.
  // Keys keep the order they were written in.
  Expected<std::vector<std::pair<std::string, double>>> number_map(const std::string& key, Range range = {}) const;

  // An error for the first key no getter asked for, listing the known ones.
  Status finish() const;

  // "recipe.yaml:14:12: stage 2 (prune.magnitude): option 'ratio'" (or just
  // the context when the key is absent), for a pass's own semantic errors.
  std::string where(const std::string& key) const;

 private:
  // where(key) with `prefix` ("file:line:col" of one list item or map entry) as the location.
  std::string where_at(const std::string& key, const std::string& prefix) const;

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace compress::pass
