// quant.bias_correction: empirical bias correction of the weight quantization error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/pass/options.h"
#include "compress/pass/pass.h"
#include "compress/quant/calibration.h"
#include "compress/quant/scheme.h"

namespace compress::quant {

// Note [Empirical bias correction]
// Quantizing weights W to Q(W) (the s8 per-channel scheme of quant.ptq)
// shifts the expected output of a layer by E[(W - Q(W)) x] per output
// channel: the rounding errors of one channel need not cancel, and inputs
// after a ReLU have a nonzero mean, so the shift is systematic and adds up
// through the network. This pass measures it on calibration data (the f32
// graph's own layer inputs x) by running each layer with weights W - Q(W)
// and no bias, averaging the output per channel over the batch and spatial
// positions, and adds that to the bias (a layer without one gets one). Then
// E[Q(W) x + b'] = E[W x + b]. Q(W) depends only on W, so quant.ptq later
// quantizes to exactly the Q(W) corrected for. The f32 graph's outputs
// change by the correction (that is the point); run it right before
// quant.ptq, or set quant.ptq's `bias_correction: true`. Nagel et al. 2019
// (data-free quantization) derive E[x] analytically from batch norm; the
// empirical form needs no batch norm.
// Per layer, the per-output-channel shift E[(W - Q(W)) x] to add to its bias.
using BiasCorrections = std::map<std::string, std::vector<double>>;

// Measures the shifts of `nodes` on the first options.samples samples of
// `data` (the graph is not changed); options.observer is not used. Q(W) is
// quant.ptq's weight scheme with `granularity` (quant.ptq passes its own).
Expected<BiasCorrections> measure_bias_corrections(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                   const eval::DataSource& data, const CalibrationOptions& options,
                                                   WeightGranularity granularity = WeightGranularity::kPerChannel,
                                                   int64_t weight_bits = 8);

// Adds the shifts of those of `nodes` that have one to their biases (a layer
// without a bias gets one). quant.ptq applies them only to the layers it
// quantizes: a layer max_drop keeps in f32 keeps its bias.
Status apply_bias_corrections(ir::Graph& graph, const BiasCorrections& corrections,
                              const std::vector<std::string>& nodes);

class BiasCorrectionPass : public pass::Pass {
 public:
  struct Options {
    int64_t samples = 512;
    int64_t batch = 64;
    std::string calibration_backend = "reference";
    std::vector<std::string> keep_f32;  // layers quant.ptq leaves in f32: not corrected
    // Must match the quant.ptq that follows (its weight_granularity).
    WeightGranularity weight_granularity = WeightGranularity::kPerChannel;
    int64_t weight_bits = 8;  // and its weight_bits
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  BiasCorrectionPass() = default;
  explicit BiasCorrectionPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "quant.bias_correction"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.calibration = true;
    return n;
  }

 private:
  Options options_;
};

}  // namespace compress::quant
