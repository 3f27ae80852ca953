// How much of the machine's CPU time other processes take: /proc/stat busy time minus this process's own.
#pragma once

#include <chrono>

namespace compress {

// Note [Measuring others' load]
// A latency is only as good as the machine was quiet, and a parallel run
// must know whether its threads will get the cores. The 1-minute load
// average cannot tell: it counts this process's own threads and whatever ran
// in the minute before. Two samples of the machine's busy CPU time
// (/proc/stat: user, nice, system, irq, softirq, steal) and this process's
// own (getrusage) bracket a window; what the machine spent beyond this
// process, over the wall time, is what others took. /proc/stat counts 10 ms
// clock ticks, so a window shorter than kMinLoadWindowS says nothing
// (others_share returns -1); 0.2 s on 2 cores resolves ~1.3% per tick.
inline constexpr double kMinLoadWindowS = 0.2;

struct CpuSample {
  bool ok = false;
  double machine_busy_s = 0;  // all cores, since boot
  double self_s = 0;          // this process, user + system
  std::chrono::steady_clock::time_point at;
};

CpuSample sample_cpu();
// Cores' worth of CPU time (0 .. cores) others used per second between two
// samples, or -1 when either sample failed or the window is too short.
double others_cores(const CpuSample& before, const CpuSample& after);
// The same as a fraction of all cores (0 .. 1), or -1.
double others_share(const CpuSample& before, const CpuSample& after);

}  // namespace compress
