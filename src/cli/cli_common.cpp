// Option parsing shared by the ctk commands (see cli.h).
#include <cstdlib>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "compress/io/files.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
#include "compress/support/text.h"
#include "compress/support/threads.h"

namespace compress::cli {

po::options_description global_options() {
  po::options_description global("Global options");
  global.add_options()
      ("log-level", po::value<std::string>()->value_name("LEVEL"),
       "debug, info, warning, error or off (default: warning, or $COMPRESS_LOG_LEVEL)")
      ("threads", po::value<int>()->value_name("N"), "compute threads (default: all cores, or $COMPRESS_NUM_THREADS)")
      ("quiet,q", po::bool_switch(), "errors only: no progress bars, no info or warning logs")
      ("input-shape", po::value<std::vector<std::string>>()->composing()->value_name("SHAPE"),
       "input shape of a TorchScript MODEL, once per input: 1,3,224,224 (or i64:2,16 for token ids); "
       "not needed when the file records its shapes");
  return global;
}

void apply_global_options(const po::variables_map& vm) {
  if (vm.count("quiet") && vm["quiet"].as<bool>()) {
    set_log_level(LogLevel::kError);
    ProgressReporter::set_default_mode(ProgressReporter::Mode::kOff);
  }
  // An explicit level wins over --quiet, whichever came first.
  if (vm.count("log-level")) {
    const std::string& text = vm["log-level"].as<std::string>();
    LogLevel level;
    if (!parse_log_level(text, &level)) {
      throw UsageError(fmt::format("bad --log-level '{}' (use debug, info, warning, error or off)", text));
    }
    set_log_level(level);
  }
  if (vm.count("input-shape")) {
    const Status shapes = pipeline::check_input_shapes(vm["input-shape"].as<std::vector<std::string>>());
    if (!shapes.is_ok()) throw UsageError("--input-shape: " + shapes.message());
  }
  if (vm.count("threads")) {
    const int n = vm["threads"].as<int>();
    if (n < 0 || n > kMaxThreads) {
      throw UsageError(fmt::format("bad --threads {} (use a count in [1, {}], or 0 for the default)", n, kMaxThreads));
    }
    set_num_threads(n);
  }
}

CommandLine::CommandLine(const CommandDoc& doc) : doc_(doc), options_("Options") {
  options_.add_options()("help,h", "show this help");
}

void CommandLine::add_positional(const char* name, int max_count) {
  if (max_count == 1) {
    hidden_.add_options()(name, po::value<std::string>());
  } else {
    hidden_.add_options()(name, po::value<std::vector<std::string>>());
  }
  positional_.add(name, max_count);
}

bool CommandLine::parse(const std::vector<std::string>& args) {
  po::options_description all;
  all.add(options_).add(global_options()).add(hidden_);
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional_).run(), vm_);
    if (vm_.count("help")) {
      std::fputs(help_text().c_str(), stdout);
      return false;
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  apply_global_options(vm_);
  return true;
}

pipeline::ModelLoadOptions CommandLine::model_options() const {
  pipeline::ModelLoadOptions options;
  if (vm_.count("input-shape")) options.input_shapes = vm_["input-shape"].as<std::vector<std::string>>();
  return options;
}

std::string CommandLine::required_positional(const char* name, const char* display_name) const {
  if (!vm_.count(name)) throw UsageError(fmt::format("missing {}", display_name));
  return vm_[name].as<std::string>();
}

std::string CommandLine::help_text() const {
  std::ostringstream out;
  out << "usage: " << doc_.usage << "\n\n" << doc_.description << "\n\n" << options_ << "\n"
      << global_options() << "\nExamples:\n" << doc_.examples;
  return out.str();
}

int report_failure(const CommandDoc& doc, const Status& status) {
  // Messages echo file and node names: escape what a terminal would obey
  // (Note [Printing outside text]).
  std::fprintf(stderr, "ctk %.*s: %s\n", static_cast<int>(doc.name.size()), doc.name.data(),
               printable(status.to_string()).c_str());
  return kExitFailure;
}

std::string in_flag_terms(std::string message, const std::vector<std::pair<std::string, std::string>>& key_flags) {
  for (const auto& [key, flag] : key_flags) {
    const std::string quoted = "option '" + key + "'";
    for (size_t at = message.find(quoted); at != std::string::npos; at = message.find(quoted, at + flag.size())) {
      message.replace(at, quoted.size(), flag);
    }
  }
  return message;
}

void add_dataset_options(CommandLine& cl, bool with_limit) {
  cl.options().add_options()
      ("mean", po::value<double>()->default_value(0.0)->value_name("M"), "normalization mean of pixels in [0, 1]")
      ("std", po::value<double>()->default_value(1.0)->value_name("S"), "normalization std (> 0)");
  if (with_limit) {
    cl.options().add_options()("limit", po::value<int64_t>()->value_name("N"), "use only the first N samples (N >= 1)");
  }
}

eval::DatasetOptions dataset_options(const CommandLine& cl) {
  eval::DatasetOptions options;
  const double mean = cl.vm()["mean"].as<double>(), std_dev = cl.vm()["std"].as<double>();
  if (!std::isfinite(mean) || std::fabs(mean) > 1e30) cl.usage_error(fmt::format("bad --mean {} (use a finite number)", mean));
  if (!std::isfinite(std_dev) || !(std_dev > 0) || std_dev > 1e30) {
    cl.usage_error(fmt::format("bad --std {} (use a finite number > 0)", std_dev));
  }
  options.normalization = {static_cast<float>(mean), static_cast<float>(std_dev)};
  if (!(options.normalization.std > 0.0f)) cl.usage_error(fmt::format("bad --std {} (too small for f32)", std_dev));
  if (cl.has("limit")) {
    const int64_t limit = cl.vm()["limit"].as<int64_t>();
    if (limit < 1) cl.usage_error(fmt::format("bad --limit {} (use N >= 1, or leave it out for all samples)", limit));
    options.limit = limit;
  }
  return options;
}

double checked_number(const CommandLine& cl, const char* flag, double lo, double hi) {
  const double v = cl.vm()[flag].as<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    cl.usage_error(fmt::format("bad --{} {} (use a number in [{:g}, {:g}])", flag, v, lo, hi));
  }
  return v;
}

Status check_destination(const CommandLine& cl, const std::string& path, const std::vector<std::string>& inputs,
                         const std::string& what) {
  for (const std::string& input : inputs) {
    if (path == input || io::same_file(path, input)) {
      cl.usage_error(fmt::format("{} '{}' is the input '{}'; choose another file (compress never replaces an input)",
                                 what, path, input));
    }
  }
  return io::check_output_file(path, inputs, what);
}

void require_cmf_destination(const CommandLine& cl, const std::string& path, const std::string& what) {
  const Status ok = pipeline::check_cmf_destination(path, what);
  if (!ok.is_ok()) cl.usage_error(ok.message());
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_report_summary(const eval::Report& report, const std::string& out_dir) {
  std::cout << printable(eval::report_markdown(report, /*with_layers=*/false)) << "\n";
  std::cout << fmt::format("report written to {}/report.md, report.json, report.html\n", printable(out_dir));
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(item.substr(a, b - a + 1));
    start = end + 1;
  }
  return out;
}

std::string pattern_map(const CommandLine& cl, const std::string& flag, const std::vector<std::string>& specs,
                        const std::string& value_name, const std::string& example) {
  std::string map;
  for (const std::string& spec : specs) {
    const size_t eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      cl.usage_error(fmt::format("bad {} '{}' (use PATTERN={}, e.g. {})", flag, spec, value_name, example));
    }
    std::string key;
    for (char c : spec.substr(0, eq)) {
      if (c == '"' || c == '\\') key += '\\';
      key += c;
    }
    map += fmt::format("{}\"{}\": {}", map.empty() ? "{" : ", ", key, spec.substr(eq + 1));
  }
  return map + "}";
}

std::string flow_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& s : items) {
    std::string q;
    for (char c : s) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    out += (out.size() > 1 ? ", \"" : "\"") + q + "\"";
  }
  return out + "]";
}


}  // namespace compress::cli
