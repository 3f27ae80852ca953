// The Pass interface: a named graph rewrite with typed options, its context and its result.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::eval {
class DataSource;  // passes only read samples through it; no link dependency on eval
}

namespace compress::pass {

// What a pass did, for logs and reports. `layers` maps a node name to its
// statistics ("weight_scale_min" -> ...); `counters` are pass-wide.
struct PassResult {
  bool changed = false;
  std::map<std::string, std::map<std::string, double>> layers;
  std::map<std::string, double> counters;
};

// What the outside world provides to a pass. Nothing in it is owned by the
// pass, and a pass keeps no state in it between runs.
struct PassContext {
  const eval::DataSource* calibration = nullptr;  // calibration samples (PTQ, Wanda/SparseGPT statistics)
  const eval::DataSource* training = nullptr;     // labelled training samples (fine-tuning, QAT, Taylor importance)
  // The model as it was before the recipe's first stage: the distillation
  // teacher and the accuracy baseline. Null when the caller has none.
  const ir::Graph* reference_model = nullptr;
  // Scores a candidate graph on the evaluation data (top-1 in percent; higher
  // is better). Set by the recipe runner / CLI when evaluation data is
  // given; passes that search under an accuracy budget (sensitivity,
  // mixed precision) require it and fail with a clear error when it is unset.
  std::function<Expected<double>(const ir::Graph&)> metric;
  // Loads a model file named in a pass option (distill.kd's teacher or
  // student); a relative path is relative to the recipe's folder. Set by the
  // recipe runner; passes that take a model path fail naming the option when
  // it is unset.
  std::function<Expected<ir::Graph>(const std::string& path)> load_model;
  std::mt19937_64 rng{0x5eed};                    // the only randomness a pass may use
  int threads = 0;                                // 0: the process default
  bool progress = true;                           // show progress bars
};

// What a pass needs from its context, declared before it runs so that a
// recipe check (`ctk run --check`) and the PassManager can say "stage 2
// (quant.ptq) needs calibration data" before any stage has run, instead of
// the pass failing halfway through a pipeline.
struct PassNeeds {
  bool calibration = false;      // PassContext::calibration
  bool training = false;         // PassContext::training
  bool metric = false;           // PassContext::metric (evaluation data)
  bool reference_model = false;  // PassContext::reference_model
};

// The first need `context` does not meet, in words ("calibration data
// (data.calibration)"), or an empty string when all are met.
std::string unmet_need(const PassNeeds& needs, const PassContext& context);

// Note [Passes]
// A pass is a small class: its options are a plain struct given to the
// constructor, name() is the registry key ("quant.ptq"), and run() rewrites
// the graph in place. A failed run returns a Status; the PassManager then
// discards the graph, so a pass need not roll back partial rewrites.
class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string name() const = 0;
  virtual Expected<PassResult> run(ir::Graph& graph, PassContext& context) = 0;
  // What run() will read from the context with the options this pass was
  // made with (a magnitude criterion needs no data, Wanda needs calibration).
  virtual PassNeeds needs() const { return {}; }
};

}  // namespace compress::pass
