// quant.smoothquant: migrate activation outliers into the weights of linear layers (Xiao et al. 2023).
#pragma once

#include <cstdint>
#include <string>

#include "compress/pass/options.h"
#include "compress/pass/pass.h"

namespace compress::quant {

// Note [SmoothQuant]
// A few input channels j of a transformer's linear layers carry values 10 to
// 100 times larger than the rest, so a per-tensor activation scale wastes
// nearly all u8 levels on them. Y = X W^T = (X diag(1/s)) (W diag(s))^T for
// any s_j > 0: dividing input channel j by s_j and multiplying weight column
// j by s_j changes nothing in f32 and moves the outlier into the weights,
// whose per-output-channel scales absorb it far better. With
// s_j = max|X_j|^alpha / max|W[:, j]|^(1 - alpha), alpha = 0.5 splits the
// difficulty evenly (max|X_j / s_j| = max|W[:, j] s_j|). max|X_j| comes from
// calibration data; linears that read the same X (q, k, v projections) share
// one s (max|W| over all of them). The division is folded into the
// layer_norm that produces X when X feeds nothing but those linears (its
// weight and bias divided by s; a layer_norm without weight gets one);
// otherwise a `mul` by 1/s is inserted before them. A channel that was
// never nonzero (in X or in every weight column) keeps s_j = 1.
class SmoothQuantPass : public pass::Pass {
 public:
  struct Options {
    double alpha = 0.5;  // migration strength in [0, 1]
    int64_t samples = 512;
    int64_t batch = 64;
    std::string calibration_backend = "reference";
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  SmoothQuantPass() = default;
  explicit SmoothQuantPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "quant.smoothquant"; }
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
