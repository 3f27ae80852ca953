// Command lines of the benchmark programs, parsed with boost::program_options
// (as ctk's are): --help, an error naming the bad option (exit 2) instead of
// a silently ignored or half-read flag, and the command as typed, which each
// table in bench/RESULTS.md is recorded with.
#pragma once

#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace compress::bench {

namespace po = boost::program_options;

struct BenchCommandLine {
  po::variables_map vm;
  std::string command;  // program name and the arguments given, minus `unrecorded` options
};

// Prints "PROGRAM: MESSAGE" and the usage line to stderr and exits 2.
[[noreturn]] inline void usage_error(const std::string& program, const std::string& usage, const std::string& message) {
  fmt::print(stderr, "{}: {}\nusage: {} (--help for the options)\n", program, message, usage);
  std::exit(2);
}

// Parses argv against `options` (bound to the caller's variables) and the
// positional arguments, in order (the last may repeat when its max count is
// -1). --help prints `usage` and the options and exits 0; a bad command line
// prints the reason and exits 2. `unrecorded`: internal options (a parent
// process talking to its children) left out of `command`.
inline BenchCommandLine parse_bench_args(int argc, char** argv, const std::string& program, const std::string& usage,
                                         const po::options_description& options,
                                         const po::positional_options_description& positional = {},
                                         const std::set<std::string>& unrecorded = {}) {
  po::options_description all(options);
  all.add_options()("help,h", "print this help");
  BenchCommandLine cl;
  try {
    const po::parsed_options parsed = po::command_line_parser(argc, argv).options(all).positional(positional).run();
    po::store(parsed, cl.vm);
    if (cl.vm.count("help") != 0) {
      std::ostringstream help;
      help << all;
      fmt::print("usage: {}\n\n{}", usage, help.str());
      std::exit(0);
    }
    po::notify(cl.vm);
    cl.command = program;
    for (const po::option& o : parsed.options) {
      if (unrecorded.count(o.string_key) != 0) continue;
      for (const std::string& token : o.original_tokens) cl.command += " " + token;
    }
  } catch (const po::error& e) {
    usage_error(program, usage, e.what());
  }
  return cl;
}

// A notifier that rejects values below `min` ("--threads must be >= 1, got 0").
template <typename T>
auto at_least(T min, const char* option) {
  return [min, option](const T& value) {
    if (value < min) throw po::error(fmt::format("--{} must be >= {}, got {}", option, min, value));
  };
}

// "1,32" -> {1, 32}, each >= 1; names `option` on a bad list.
inline std::vector<int64_t> parse_positive_list(const std::string& text, const char* option) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (true) {
    const size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    char* end = nullptr;
    const long long value = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value < 1) {
      throw po::error(fmt::format("--{}: '{}' is not a comma-separated list of positive integers", option, text));
    }
    out.push_back(value);
    if (comma == std::string::npos) return out;
    at = comma + 1;
  }
}

}  // namespace compress::bench
