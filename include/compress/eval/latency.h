// Latency measurement of a compiled model: warm-up, then timed runs until the median is stable.
#pragma once

#include <cstdint>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/runtime/backend.h"

namespace compress::eval {

struct LatencyOptions {
  int64_t batch = 0;       // 0: the batch the graph declares
  int warmup = 3;          // untimed runs after the first one
  int min_runs = 10;       // timed runs at least ...
  int max_runs = 1000;     // ... and at most,
  double min_time_s = 2.0;  // stopping once both min_runs and min_time_s are reached
};

// Above this share of the cores taken by other processes while the runs were
// timed, latencies are reported as unreliable (a quiet machine's background
// is ~1%; Note [Measuring others' load], support/cpu_load.h).
inline constexpr double kUnreliableOthersShare = 0.10;

struct LatencyResult {
  double compile_ms = 0;    // backend->compile(graph)
  double first_run_ms = 0;  // the first run (one-time allocation and setup)
  double p50_ms = 0, p90_ms = 0, min_ms = 0;
  int runs = 0;
  int64_t batch = 0;  // items per run (dim 0 of the first input)
  // Share of all cores' time that other processes (and a hypervisor's steal)
  // used while the runs were timed, in [0, 1]; -1 where /proc/stat is not
  // readable or the timed runs took under 0.2 s (too few clock ticks).
  // Note [Measuring others' load] (support/cpu_load.h).
  double others_cpu_share = -1;
  double throughput_per_s() const { return p50_ms > 0 ? static_cast<double>(batch) * 1000.0 / p50_ms : 0.0; }
};

// Inputs for timing runs: f32 inputs ~ N(0, 1), integer inputs uniform over
// the embedding table they index (or 0), from `seed`; dim 0 set to `batch`
// (0 keeps the declared batch). Quantized inputs keep their quant params.
Expected<std::vector<ir::Tensor>> random_inputs(const ir::Graph& graph, int64_t batch, uint32_t seed = 1234);

// Compiles `graph` on `backend` and times it (Note [Latency]).
Expected<LatencyResult> measure_latency(runtime::Backend& backend, const ir::Graph& graph,
                                        const LatencyOptions& options = {});

// Times runs of an already compiled plan on the given inputs.
Expected<LatencyResult> time_plan(runtime::ExecutionPlan& plan, const std::vector<ir::Tensor>& inputs,
                                  const LatencyOptions& options);

// Nearest-rank percentile (p in [0, 1]) of a non-empty, unsorted sample:
// what LatencyResult's p50/p90/min are, for benchmarks that time by hand.
double percentile(std::vector<double> samples, double p);

// The process's peak resident memory so far (VmHWM), in MiB; 0 when unknown.
double peak_rss_mb();
// The process's resident memory now (VmRSS), in MiB; 0 when unknown.
double current_rss_mb();

}  // namespace compress::eval
