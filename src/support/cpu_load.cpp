// Others' CPU load from /proc/stat and getrusage (see cpu_load.h).
#include "compress/support/cpu_load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>

namespace compress {

CpuSample sample_cpu() {
  CpuSample s;
  s.at = std::chrono::steady_clock::now();
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (f == nullptr) return s;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  const int read = std::fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &user, &nice, &system, &idle,
                               &iowait, &irq, &softirq, &steal);
  std::fclose(f);
  if (read != 8) return s;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  if (tick <= 0) return s;
  s.machine_busy_s = static_cast<double>(user + nice + system + irq + softirq + steal) / tick;
  rusage self{};
  if (::getrusage(RUSAGE_SELF, &self) != 0) return s;
  s.self_s = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
             static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) * 1e-6;
  s.ok = true;
  return s;
}

double others_cores(const CpuSample& before, const CpuSample& after) {
  const double wall = std::chrono::duration<double>(after.at - before.at).count();
  if (!before.ok || !after.ok || wall < kMinLoadWindowS) return -1;
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  const double others = (after.machine_busy_s - before.machine_busy_s) - (after.self_s - before.self_s);
  return std::clamp(others / wall, 0.0, cores);
}

double others_share(const CpuSample& before, const CpuSample& after) {
  const double cores = others_cores(before, after);
  if (cores < 0) return -1;
  return cores / static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace compress
