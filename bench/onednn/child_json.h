// Runs a benchmark's helper process (fx_int8.py, a child of bench_peak_memory) and reads the JSON object it
// prints last.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "compress/support/status.h"

namespace compress::bench {

// Runs `command` through the shell (stderr folded into stdout) and parses its
// last output line that starts with '{' as a JSON object. Errors name the
// command, its exit status and its output.
inline Expected<nlohmann::json> run_for_json(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return make_error(StatusCode::kInternal, "cannot run '{}'", command);
  std::string output;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = pclose(pipe);
  size_t line = output.rfind("\n{");
  line = line == std::string::npos ? (output.rfind('{', 0) == 0 ? 0 : std::string::npos) : line + 1;
  if (status != 0 || line == std::string::npos) {
    return make_error(StatusCode::kInternal, "'{}' failed (status {}): {}", command, status, output);
  }
  const size_t end = output.find('\n', line);  // a warning printed after the object is not part of it
  nlohmann::json j = nlohmann::json::parse(output.substr(line, end == std::string::npos ? end : end - line), nullptr,
                                           /*allow_exceptions=*/false);
  if (!j.is_object()) return make_error(StatusCode::kInternal, "'{}' printed no JSON object: {}", command, output);
  return j;
}

}  // namespace compress::bench
