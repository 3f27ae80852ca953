// Latency measurement shared by `ctk bench`, `ctk report` and the recipe runner.
#include "compress/eval/latency.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "compress/support/check.h"
#include "compress/support/cpu_load.h"

namespace compress::eval {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// The embedding table size an integer input indexes, or 0.
int64_t index_range(const ir::Value& input) {
  int64_t rows = 0;
  for (const ir::Use& use : input.uses()) {
    if (use.user->is(ir::OpKind::embedding) && use.input_index == 0 && use.user->num_inputs() > 1) {
      const ir::Shape& table = use.user->input(1)->shape();
      if (!table.empty()) rows = rows == 0 ? table[0] : std::min(rows, table[0]);
    }
  }
  return rows;
}

}  // namespace

Expected<std::vector<ir::Tensor>> random_inputs(const ir::Graph& graph, int64_t batch, uint32_t seed) {
  std::vector<ir::Tensor> inputs;
  std::mt19937 gen(seed);
  for (const ir::Value* v : graph.inputs()) {
    ir::Shape shape = v->shape();
    if (batch > 0 && !shape.empty()) shape[0] = batch;
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, ir::Tensor::zeros(v->dtype(), shape));
    if (v->dtype() == ir::DType::kF32) {
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
    } else if (v->dtype() == ir::DType::kI64 || v->dtype() == ir::DType::kI32) {
      const int64_t rows = std::max<int64_t>(1, index_range(*v));
      std::uniform_int_distribution<int64_t> dist(0, rows - 1);
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (v->dtype() == ir::DType::kI64) {
          t.data<int64_t>()[i] = dist(gen);
        } else {
          t.data<int32_t>()[i] = static_cast<int32_t>(dist(gen));
        }
      }
    }
    if (v->type().quant) t = t.with_quant(v->type().quant);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

Expected<LatencyResult> time_plan(runtime::ExecutionPlan& plan, const std::vector<ir::Tensor>& inputs,
                                  const LatencyOptions& options) {
  COMPRESS_CHECK(options.min_runs >= 1 && options.max_runs >= options.min_runs && options.warmup >= 0 &&
                     options.min_time_s >= 0,
                 StatusCode::kInvalidArgument,
                 "latency: need 1 <= min_runs <= max_runs, warmup >= 0, min_time >= 0 (got {}, {}, {}, {})",
                 options.min_runs, options.max_runs, options.warmup, options.min_time_s);
  LatencyResult result;
  result.batch = inputs.empty() || inputs.front().rank() == 0 ? 1 : inputs.front().dim(0);
  auto t0 = Clock::now();
  COMPRESS_RETURN_IF_ERROR(plan.run(inputs).status());
  result.first_run_ms = ms_since(t0);
  for (int i = 0; i < options.warmup; ++i) COMPRESS_RETURN_IF_ERROR(plan.run(inputs).status());
  // Note [Latency]
  // Runs continue until both min_runs and min_time_s are reached, so a fast
  // model gets many samples and a slow one at least min_runs; the median is
  // reported because a shared machine adds one-sided outliers.
  std::vector<double> ms;
  const CpuSample cpu_before = sample_cpu();
  const auto start = Clock::now();
  while (static_cast<int>(ms.size()) < options.max_runs &&
         (static_cast<int>(ms.size()) < options.min_runs || ms_since(start) < options.min_time_s * 1000.0)) {
    t0 = Clock::now();
    Expected<std::vector<ir::Tensor>> out = plan.run(inputs);
    ms.push_back(ms_since(t0));
    COMPRESS_RETURN_IF_ERROR(out.status());
  }
  result.others_cpu_share = others_share(cpu_before, sample_cpu());
  result.runs = static_cast<int>(ms.size());
  result.p50_ms = percentile(ms, 0.5);
  result.p90_ms = percentile(ms, 0.9);
  result.min_ms = percentile(ms, 0.0);
  return result;
}

Expected<LatencyResult> measure_latency(runtime::Backend& backend, const ir::Graph& graph,
                                        const LatencyOptions& options) {
  COMPRESS_CHECK(options.batch >= 0, StatusCode::kInvalidArgument, "latency: batch must be >= 0, got {}",
                 options.batch);
  COMPRESS_ASSIGN_OR_RETURN(std::vector<ir::Tensor> inputs, random_inputs(graph, options.batch));
  const auto t0 = Clock::now();
  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecutionPlan> plan, backend.compile(graph));
  const double compile_ms = ms_since(t0);
  COMPRESS_ASSIGN_OR_RETURN(LatencyResult result, time_plan(*plan, inputs, options));
  result.compile_ms = compile_ms;
  return result;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

namespace {

// A "Key:   N kB" line of /proc/self/status, in MiB; 0 when absent.
double status_mb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0;
}

}  // namespace

double peak_rss_mb() { return status_mb("VmHWM:"); }

double current_rss_mb() { return status_mb("VmRSS:"); }

}  // namespace compress::eval
