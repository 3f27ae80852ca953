// Backend interface: answer supports(node), compile a graph into a plan, run it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::runtime {

// One executed step of a compiled plan, for any backend.
struct PlanStep {
  std::string kind;                // "convolution", "reorder", "reference", "native", "node", ...
  std::vector<std::string> nodes;  // IR nodes it computes (several when fused); empty for inserted steps
  std::string implementation;      // the kernel chosen ("brg:avx512_core", "reference", ...), or ""
  std::string detail;              // fusions, layouts, data types
  double profiled_ms = 0;          // time spent in this step over the profiled runs (set_profiling)
};

// A node a backend hands to another (the reference kernels), and why.
struct PlanFallback {
  std::string node;
  std::string op;
  std::string reason;
};

// What a compiled plan does, in one form for every backend (ctk bench
// --explain and --profile print it).
struct PlanReport {
  std::string backend;
  std::vector<PlanStep> steps;         // the most recently compiled or run input shape
  std::vector<PlanFallback> fallbacks;  // every input shape so far, one entry per node
  int64_t profiled_runs = 0;
  std::string text;                     // the backend's listing: one line per step, then the fallbacks
  std::string profile_text;             // the profiled time per step and kind; empty without profiling
};

// The listing lines every backend's report shares: one per step, then the
// fallbacks with their reasons.
std::string plan_steps_text(const std::vector<PlanStep>& steps);
std::string plan_fallbacks_text(const std::vector<PlanFallback>& fallbacks);
// The profiled time per run: the `top` slowest steps, then totals per step
// kind and overall. Empty when no run was profiled.
std::string plan_profile_text(const std::vector<PlanStep>& steps, int64_t profiled_runs, size_t top = 15);

// A compiled graph. Plans are not thread-safe; compile one per thread.
class ExecutionPlan {
 public:
  virtual ~ExecutionPlan() = default;
  // Inputs in graph-input order; the batch (dim 0) may differ from the
  // graph's declared input shapes, other dims must match.
  virtual Expected<std::vector<ir::Tensor>> run(const std::vector<ir::Tensor>& inputs) = 0;
  // The plan as it stands (after the last compile or run).
  virtual PlanReport describe() const = 0;
  // While on, runs time each step into describe()'s profiled_ms. The waits
  // this needs add to each run: time latency with profiling off. An error
  // for a backend that cannot profile.
  virtual Status set_profiling(bool on) = 0;
};

// Why a backend will not run a node itself (empty when it will).
struct SupportDecision {
  bool supported = true;
  std::string reason;
};

// Whether a backend has an implementation of an op at all, before shapes and
// dtypes are known; when it has none, the reason ("not supported, because
// ..."). tests/runtime/test_op_coverage.cpp requires one or the other for
// every op of the op table, so a new op cannot be forgotten silently.
struct OpCoverage {
  bool implemented = false;
  std::string not_supported_reason;  // empty when implemented
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual OpCoverage op_coverage(ir::OpKind kind) const = 0;
  virtual SupportDecision supports(const ir::Node& node) const = 0;
  // The graph must verify; the plan keeps what it needs (it may share tensor
  // storage with the graph, but not pointers to nodes).
  virtual Expected<std::unique_ptr<ExecutionPlan>> compile(const ir::Graph& graph) = 0;
};

// What every backend understands; a backend's own header has the rest
// (runtime/onednn.h: fusion, plan cache size).
struct BackendOptions {
  // "f32", or "bf16" (conv/linear/matmul with bf16 inputs and weights, f32
  // accumulation; backends that have no bf16 path refuse it by name).
  std::string compute = "f32";
  // 0: compress::num_threads() when the plan is compiled. The reference
  // backend always uses compress::num_threads() at run time.
  int threads = 0;
};

// "reference" (always), "onednn" when built, later "cuda". Unknown names and
// options a backend cannot honour are errors naming them (and listing the
// available backends).
Expected<std::unique_ptr<Backend>> make_backend(std::string_view name, const BackendOptions& options = {});
// In the order make_backend() knows them; the reference backend first.
std::vector<std::string> available_backends();

}  // namespace compress::runtime
