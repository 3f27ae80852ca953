// Small helpers the benchmark programs share.
#pragma once

#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace compress::bench {

// "2026-11-27 08:43 UTC": when a RESULTS.md section was measured.
inline std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// The machine as /proc/cpuinfo describes it, e.g. "2-core Intel(R) Xeon(R)
// Processor (AVX-512, VNNI, BF16, AMX)": benchmark headers say what they ran
// on, never what a previous run ran on.
inline std::string machine_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  std::set<std::string> flags;
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : std::string();
    if (key == "model name" && model == "unknown CPU") model = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
    }
  }
  std::string isa;
  for (const auto& [flag, name] : {std::pair{"avx512f", "AVX-512"}, std::pair{"avx512_vnni", "VNNI"},
                                   std::pair{"avx512_bf16", "BF16"}, std::pair{"amx_tile", "AMX"}}) {
    if (flags.count(flag)) isa += (isa.empty() ? "" : ", ") + std::string(name);
  }
  return std::to_string(std::thread::hardware_concurrency()) + "-core " + model + (isa.empty() ? "" : " (" + isa + ")");
}

}  // namespace compress::bench
