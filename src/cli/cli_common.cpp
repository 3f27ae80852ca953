// Option parsing shared by the ctk commands (see cli.h).
#include <cstdlib>
#include <fmt/format.h>

#include <cstdio>
#include <sstream>

#include "cli.h"
#include "model_loading.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
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
  if (vm.count("input-shape")) set_torchscript_input_shapes(vm["input-shape"].as<std::vector<std::string>>());
  if (vm.count("threads")) {
    const int n = vm["threads"].as<int>();
    if (n < 0) throw UsageError(fmt::format("bad --threads {} (use a count >= 1, or 0 for the default)", n));
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
  std::fprintf(stderr, "ctk %.*s: %s\n", static_cast<int>(doc.name.size()), doc.name.data(),
               status.to_string().c_str());
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

}  // namespace compress::cli
