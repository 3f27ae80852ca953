// Backend interface: answer supports(node), compile a graph into a plan, run it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::runtime {

// A compiled graph. Plans are not thread-safe; compile one per thread.
class ExecutionPlan {
 public:
  virtual ~ExecutionPlan() = default;
  // Inputs in graph-input order; the batch (dim 0) may differ from the
  // graph's declared input shapes, other dims must match.
  virtual Expected<std::vector<ir::Tensor>> run(const std::vector<ir::Tensor>& inputs) = 0;
};

// Why a backend will not run a node itself (empty when it will).
struct SupportDecision {
  bool supported = true;
  std::string reason;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
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
