// distill.taylor_importance: first-order Taylor scores of every conv2d/linear output channel, stored in the
// graph for prune.structured's `criterion: taylor`.
#pragma once

#include <cstdint>
#include <string>

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::distill {

// Note [Taylor importance]
// Molchanov et al. 2019 ("Importance Estimation for Neural Network
// Pruning"), first order: removing channel o of layer N changes the loss by
// about -sum_{p in P(N, o)} w_p * dL/dw_p, P(N, o) being the parameters that
// exist only for that channel: N's weight row o, its bias entry o, and, when
// N's output feeds only a batch_norm, that batch norm's gamma[o] and beta[o]
// (for a batch-normalized conv the gamma/beta terms are what zeroing the
// channel's output costs; the weight/bias terms are near 0 there).
// For each labelled batch b (the first `samples` training samples in order,
// `batch` at a time, the model in eval mode as deployed: batch norm uses its
// running statistics) the gradient of the mean cross-entropy is taken
// through torch::Trainer without an optimizer (OptimizerKind::kNone), and
//   score[N][o] = sum_b (|b| / samples) * | sum_{p in P(N, o)} w_p * g_b,p |
// (the absolute value per batch, then averaged, so opposite-signed batches do
// not cancel; Molchanov squares instead, which ranks the same per batch).
// The scores are stored as annotations of N (f32 [out_channels],
// Note [Stored importance] in compress/prune/importance.h); the weights are
// not changed. The prune layer cannot link LibTorch, hence two passes.
// Nodes whose weight is not a trainable f32 parameter (quantized) get no
// score; prune.structured with criterion taylor then names them.
class TaylorImportancePass : public pass::Pass {
 public:
  struct Options {
    int64_t samples = 1024;  // the first `samples` training samples (fewer if the data has fewer)
    int64_t batch = 64;
  };
  // Reads samples, batch.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  TaylorImportancePass() = default;
  explicit TaylorImportancePass(Options options) : options_(options) {}
  std::string name() const override { return "distill.taylor_importance"; }
  // Needs PassContext::training (labelled). layers[node]: "channels",
  // "score_mean", "score_max"; counters: "samples", "batches", "mean_loss", "layers_scored".
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.training = true;
    return n;
  }

 private:
  Options options_;
};

}  // namespace compress::distill
