// Per-layer quantization sensitivity, and the mixed-precision choice of quant.ptq's max_drop.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compress/pass/options.h"
#include "compress/pass/pass.h"
#include "compress/quant/bias_correction_pass.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"

namespace compress::quant {

using Metric = std::function<Expected<double>(const ir::Graph&)>;

// `graph` with `nodes` quantized (int8, or the fake-quant simulation) from
// one calibration, scored by `metric`; with `corrections`, the quantized
// layers' biases corrected first; `plan` as quant.ptq plans its layers. The
// graph itself is not changed.
Expected<double> metric_quantized(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                  const CalibrationResult& calibration, bool fake_quant, const Metric& metric,
                                  const BiasCorrections* corrections = nullptr, const PlanOptions& plan = {});

struct LayerSensitivity {
  std::string node;
  double metric = 0.0;  // the metric with only this layer quantized
  double drop = 0.0;    // baseline - metric (higher: more sensitive)
};

// Quantizes one layer of `nodes` at a time and measures the metric; sorted
// by drop, most sensitive first (ties in graph order).
Expected<std::vector<LayerSensitivity>> layer_sensitivity(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                          const CalibrationResult& calibration, bool fake_quant,
                                                          const Metric& metric, double baseline,
                                                          const BiasCorrections* corrections = nullptr,
                                                          const PlanOptions& plan = {});

// Note [Mixed precision under max_drop]
// quant.ptq with max_drop D: with every layer quantized, a drop of the
// metric (PassContext::metric, f32 baseline minus quantized) at most D
// ends the search. Otherwise the layers are ranked by their one-at-a-time
// sensitivity and the most sensitive is kept in f32, then the next, each
// time re-scoring the graph with the remaining layers quantized, until the
// drop is at most D. Keeping every layer meets any budget (drop 0), so the
// search always ends; it costs 1 + n + k metric runs for n layers and k kept.
// Greedy, not optimal: layers interact (an error one layer adds the next
// may amplify), which the re-scoring after each step accounts for only in
// the order the one-at-a-time ranking gives.
struct MixedPrecisionChoice {
  std::vector<std::string> keep_f32;  // in the order they were kept
  std::vector<LayerSensitivity> sensitivity;  // empty when all-quantized met the budget
  double baseline = 0.0;
  double final_metric = 0.0;
};
Expected<MixedPrecisionChoice> choose_f32_layers(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                 const CalibrationResult& calibration, bool fake_quant,
                                                 const Metric& metric, double max_drop,
                                                 const BiasCorrections* corrections = nullptr,
                                                 const PlanOptions& plan = {});

// quant.sensitivity: the report only (the graph is not changed): per layer
// `sensitivity_drop` and `metric_quantized_alone`, counter `baseline`.
// Needs PassContext::calibration and PassContext::metric.
class SensitivityPass : public pass::Pass {
 public:
  struct Options {
    std::string observer = "minmax";
    double momentum = 0.9;
    int64_t samples = 512;
    int64_t batch = 64;
    std::string calibration_backend = "reference";
    bool fake_quant = false;  // score the fake-quant simulation instead of the int8 graph
    WeightGranularity weight_granularity = WeightGranularity::kPerChannel;  // as quant.ptq's
    int64_t weight_bits = 8;                                                // as quant.ptq's
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  SensitivityPass() = default;
  explicit SensitivityPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "quant.sensitivity"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.calibration = true;
    n.metric = true;
    return n;
  }

 private:
  Options options_;
};

}  // namespace compress::quant
