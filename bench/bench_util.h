// Small helpers the benchmark programs share.
#pragma once

#include <ctime>
#include <string>

namespace compress::bench {

// "2026-11-27 08:43 UTC": when a RESULTS.md section was measured.
inline std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

}  // namespace compress::bench
