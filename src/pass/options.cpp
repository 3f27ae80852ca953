// PassOptions over a YAML mapping: typed getters whose errors name file, line, stage and key.
#include "compress/pass/options.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "compress/support/parse.h"

namespace compress::pass {

struct PassOptions::Impl {
  YAML::Node map;       // a mapping (possibly empty)
  std::string file;     // "" for command-line options
  std::string context;  // "stage 2 (prune.magnitude)"
  mutable std::set<std::string> asked;
};

namespace {

std::string location(const std::string& file, const YAML::Mark& mark) {
  if (file.empty() || mark.is_null()) return file;
  // yaml-cpp counts lines and columns from 0.
  return fmt::format("{}:{}:{}", file, mark.line + 1, mark.column + 1);
}

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// YAML's own spellings of the special floats, plus the ones people write.
bool parse_double(const std::string& text, double* out) {
  static const std::map<std::string, double> kSpecial = {
      {".nan", NAN}, {".NaN", NAN}, {".NAN", NAN}, {"nan", NAN}, {"NaN", NAN},
      {".inf", INFINITY}, {".Inf", INFINITY}, {"inf", INFINITY}, {"-.inf", -INFINITY}, {"-inf", -INFINITY}};
  auto it = kSpecial.find(text);
  if (it != kSpecial.end()) {
    *out = it->second;
    return true;
  }
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno != ERANGE;
}

std::string range_text(const Range& r) {
  const bool no_min = r.min == -std::numeric_limits<double>::max();
  const bool no_max = r.max == std::numeric_limits<double>::max();
  if (no_min && no_max) return "a finite number";
  if (no_max) return fmt::format("a number {} {}", r.min_open ? ">" : ">=", r.min);
  if (no_min) return fmt::format("a number {} {}", r.max_open ? "<" : "<=", r.max);
  return fmt::format("a number in {}{}, {}{}", r.min_open ? "(" : "[", r.min, r.max, r.max_open ? ")" : "]");
}

bool in_range(double v, const Range& r) {
  if (!std::isfinite(v)) return false;
  if (r.min_open ? v <= r.min : v < r.min) return false;
  if (r.max_open ? v >= r.max : v > r.max) return false;
  return true;
}

}  // namespace

PassOptions::PassOptions() : impl_(std::make_shared<Impl>()) { impl_->map = YAML::Node(YAML::NodeType::Map); }

Expected<PassOptions> PassOptions::from_yaml(const YAML::Node& node, std::string file, std::string context) {
  PassOptions options;
  options.impl_->file = std::move(file);
  options.impl_->context = std::move(context);
  if (!node || node.IsNull()) return options;
  if (!node.IsMap()) {
    return invalid_argument("{}: {}: options must be a mapping of key: value, got {}",
                            location(options.impl_->file, node.Mark()), options.impl_->context, describe_node(node));
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      return invalid_argument("{}: {}: an option name must be a plain word",
                              location(options.impl_->file, kv.first.Mark()), options.impl_->context);
    }
    if (!seen.insert(kv.first.Scalar()).second) {
      return invalid_argument("{}: {}: option '{}' is given twice", location(options.impl_->file, kv.first.Mark()),
                              options.impl_->context, kv.first.Scalar());
    }
  }
  options.impl_->map = node;
  return options;
}

Expected<PassOptions> PassOptions::from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs,
                                              std::string context) {
  PassOptions options;
  options.impl_->context = std::move(context);
  for (const auto& [key, text] : pairs) {
    if (options.impl_->map[key]) return invalid_argument("{}: option '{}' is given twice", options.impl_->context, key);
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return invalid_argument("{}: option '{}': cannot parse '{}' ({})", options.impl_->context, key, text, e.msg);
    }
    options.impl_->map[key] = value;
  }
  return options;
}

bool PassOptions::has(const std::string& key) const { return static_cast<bool>(impl_->map[key]); }

std::string PassOptions::where(const std::string& key) const {
  const YAML::Node node = impl_->map[key];
  return where_at(key, node ? location(impl_->file, node.Mark()) : impl_->file);
}

// As where(), located at one item of a list or map option instead of the option.
std::string PassOptions::where_at(const std::string& key, const std::string& prefix) const {
  std::string out = prefix.empty() ? impl_->context : fmt::format("{}: {}", prefix, impl_->context);
  if (!key.empty()) out += fmt::format("{}option '{}'", out.empty() ? "" : ": ", key);
  return out;
}

Expected<double> PassOptions::number(const std::string& key, double fallback, Range range) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  if (!node) return fallback;
  double v = 0;
  if (!node.IsScalar() || !parse_double(node.Scalar(), &v)) {
    return invalid_argument("{}: expected {}, got {}", where(key), range_text(range), describe_node(node));
  }
  if (!in_range(v, range)) return invalid_argument("{}: expected {}, got {}", where(key), range_text(range), node.Scalar());
  return v;
}

Expected<int64_t> PassOptions::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  if (!node) return fallback;
  std::string want = "an integer";
  if (min != std::numeric_limits<int64_t>::min() && max != std::numeric_limits<int64_t>::max()) {
    want = fmt::format("an integer in [{}, {}]", min, max);
  } else if (min != std::numeric_limits<int64_t>::min()) {
    want = fmt::format("an integer >= {}", min);
  }
  if (!node.IsScalar()) return invalid_argument("{}: expected {}, got {}", where(key), want, describe_node(node));
  const std::string& text = node.Scalar();
  int64_t v = 0;
  if (!parse_int64(text, &v)) return invalid_argument("{}: expected {}, got '{}'", where(key), want, text);
  if (v < min || v > max) return invalid_argument("{}: expected {}, got {}", where(key), want, text);
  return v;
}

Expected<bool> PassOptions::boolean(const std::string& key, bool fallback) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  if (!node) return fallback;
  bool v = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
    return invalid_argument("{}: expected true or false, got {}", where(key), describe_node(node));
  }
  return v;
}

Expected<std::string> PassOptions::string(const std::string& key, std::string fallback,
                                          const std::vector<std::string>& choices) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  if (!node) return fallback;
  if (!node.IsScalar()) return invalid_argument("{}: expected a string, got {}", where(key), describe_node(node));
  const std::string& v = node.Scalar();
  if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
    return invalid_argument("{}: '{}' is not one of: {}", where(key), v, fmt::join(choices, ", "));
  }
  return v;
}

Expected<std::vector<std::string>> PassOptions::string_list(const std::string& key) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  std::vector<std::string> out;
  if (!node) return out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) return invalid_argument("{}: expected a list of strings, got {}", where(key), describe_node(node));
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      return invalid_argument("{}: every item must be a string, got {}",
                              where_at(key, location(impl_->file, item.Mark())), describe_node(item));
    }
    out.push_back(item.Scalar());
  }
  return out;
}

Expected<std::vector<int64_t>> PassOptions::integer_list(const std::string& key, int64_t min, int64_t max) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  std::vector<int64_t> out;
  if (!node) return out;
  std::vector<YAML::Node> items;
  if (node.IsScalar()) {
    items.push_back(node);
  } else if (node.IsSequence()) {
    for (const auto& item : node) items.push_back(item);
  } else {
    return invalid_argument("{}: expected a list of integers, got {}", where(key), describe_node(node));
  }
  for (const YAML::Node& item : items) {
    const std::string text = item.IsScalar() ? item.Scalar() : std::string();
    int64_t v = 0;
    if (!parse_int64(text, &v) || v < min || v > max) {
      return invalid_argument("{}: expected integers in [{}, {}], got {}",
                              where_at(key, location(impl_->file, item.Mark())), min, max, describe_node(item));
    }
    out.push_back(v);
  }
  return out;
}

Expected<std::vector<std::pair<std::string, double>>> PassOptions::number_map(const std::string& key,
                                                                              Range range) const {
  impl_->asked.insert(key);
  const YAML::Node node = impl_->map[key];
  std::vector<std::pair<std::string, double>> out;
  if (!node) return out;
  if (!node.IsMap()) {
    return invalid_argument("{}: expected a mapping of layer name or pattern to a number, got {}", where(key),
                            describe_node(node));
  }
  for (const auto& kv : node) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    double v = 0;
    if (name.empty() || !kv.second.IsScalar() || !parse_double(kv.second.Scalar(), &v) || !in_range(v, range)) {
      return invalid_argument("{}: entry '{}': expected {}, got {}",
                              where_at(key, location(impl_->file, kv.second.Mark())), name, range_text(range),
                              describe_node(kv.second));
    }
    out.emplace_back(name, v);
  }
  return out;
}

Status PassOptions::finish() const {
  for (const auto& kv : impl_->map) {
    const std::string key = kv.first.Scalar();
    if (impl_->asked.count(key) == 0) {
      std::string known = impl_->asked.empty() ? std::string("none") : fmt::format("{}", fmt::join(impl_->asked, ", "));
      return invalid_argument("{}: unknown option (known options: {})", where(key), known);
    }
  }
  return Status::ok();
}

}  // namespace compress::pass
