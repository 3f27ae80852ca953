// quant.cle: cross-layer equalization of consecutive conv2d/linear layers (Nagel et al. 2019).
#pragma once

#include <cstdint>
#include <string>

#include "compress/pass/options.h"
#include "compress/pass/pass.h"

namespace compress::quant {

// Note [Cross-layer equalization]
// For y = W2 f(W1 x + b1) with f positively homogeneous per channel
// (f(x / s) = f(x) / s for s > 0: ReLU, identity, max/avg pooling), scaling
// output channel c of the first layer by 1/s_c (weights and bias) and input
// channel c of the second by s_c leaves y unchanged. With r1_c = max|W1[c]|
// and r2_c = max|W2[:, c]| (over every weight that reads channel c),
// s_c = sqrt(r1_c * r2_c) / r2_c = sqrt(r1_c / r2_c) makes both ranges
// sqrt(r1_c * r2_c): channels that were tiny in one layer and huge in the
// other end up alike, which is what per-tensor activation ranges (and
// per-tensor weights) need. Sequences (conv1 -> conv2 -> conv3) are
// equalized pair by pair, repeated until no scale moves by more than
// `tolerance` (or `iterations` rounds). A channel with r1_c = 0 or r2_c = 0
// (pruned) keeps s_c = 1. Grouped and depthwise convolutions map input
// channel c of the second layer to its group's weights W2[o, c % C_g] for the
// outputs o of group c / C_g. Pairs: conv2d -> conv2d and linear -> linear
// (the channel axis must be 1 for conv2d and the last for linear), through
// relu, clamp(0, +inf), max_pool2d, avg_pool2d and adaptive_avg_pool2d, each
// the only user of the value before it. batch_norm in between stops a pair:
// run transforms.fold_batch_norm first.
class CrossLayerEqualizationPass : public pass::Pass {
 public:
  struct Options {
    int64_t iterations = 20;
    double tolerance = 1e-6;  // stop when every |s_c - 1| is below it
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  CrossLayerEqualizationPass() = default;
  explicit CrossLayerEqualizationPass(Options options) : options_(options) {}
  std::string name() const override { return "quant.cle"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;

 private:
  Options options_;
};

}  // namespace compress::quant
