// quant.ptq: post-training quantization to a real int8 graph (or its fake-quant simulation).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"
#include "compress/quant/scheme.h"

namespace compress::quant {

// Calibrates on PassContext::calibration, plans the boundaries (Note [PTQ
// boundaries]) and converts. Run transforms.fold_batch_norm first so the
// batch norms do not stay as f32 ops between quantized layers. A graph with
// nothing to quantize is left unchanged (changed = false, a warning).
class PtqPass : public pass::Pass {
 public:
  struct Options {
    std::string observer = "minmax";  // minmax | moving_average | percentile | kl | mse
    double momentum = 0.9;            // moving_average: weight of the running range per batch
    double percentile = 99.99;        // percentile: the upper percentile kept, in (50, 100]
    int64_t samples = 512;
    int64_t batch = 64;
    std::string calibration_backend = "reference";
    bool fake_quant = false;  // emit the f32 simulation instead of the int8 graph
    // Layers (node names) left in f32, e.g. a first conv with one input
    // channel, where int8 gains nothing; unknown names are an error.
    std::vector<std::string> keep_f32;
    // Runs quant.bias_correction (same samples, batch, backend, keep_f32)
    // before calibrating (Note [Empirical bias correction]).
    bool bias_correction = false;
    // Accuracy budget: keep the most sensitive layers in f32 until the
    // metric (PassContext::metric) drops by at most this much (Note [Mixed
    // precision under max_drop], sensitivity.h). Unset: quantize every layer.
    std::optional<double> max_drop;
    // Bit widths, for recipes that state them. The int8 graph and its
    // fake-quant twin are 8-bit only in this version: other widths in
    // [2, 16] are rejected as unsupported rather than silently ignored.
    int64_t weight_bits = 8;
    int64_t activation_bits = 8;
    // s8 weight scales per output channel (default) or one per tensor; also
    // used by bias_correction and max_drop, which must see the same Q(W).
    WeightGranularity weight_granularity = WeightGranularity::kPerChannel;
  };
  // Reads observer, momentum, percentile, samples, batch, calibration_backend, fake_quant, keep_f32,
  // bias_correction, max_drop, weight_bits, activation_bits (or bits for both), weight_granularity.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  PtqPass() = default;
  explicit PtqPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "quant.ptq"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  // max_drop searches f32 layers under an accuracy budget: it needs the metric.
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.calibration = true;
    n.metric = options_.max_drop.has_value();
    return n;
  }

 private:
  Options options_;
};

// The default PTQ pipeline, as `ctk quantize` runs it: transforms.fold_batch_norm,
// then quant.ptq with `options`, calibrated on `data`, verified (PassManager).
// `context` supplies threads, progress and a metric; its calibration is `data`.
// Returns quant.ptq's result (changed = false: nothing to quantize).
Expected<pass::PassResult> quantize_ptq(ir::Graph& graph, const eval::DataSource& data, const PtqPass::Options& options,
                                        pass::PassContext context = {});

Status register_quant_passes(pass::PassRegistry& registry);

}  // namespace compress::quant
