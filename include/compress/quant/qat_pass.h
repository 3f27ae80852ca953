// quant.qat: quantization-aware training (LSQ, LSQ+, PACT, STE) that converts to the int8 graph PTQ deploys.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compress/distill/training_loop.h"
#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::quant {

// How the quantizers learn (Note [QAT quantizers], qat_model.h).
enum class QatMethod {
  kLsq,      // learned step size (weights per channel, activations per tensor), zero points fixed
  kLsqPlus,  // LSQ with learned activation zero points (offsets)
  kPact,     // learned clip for non-negative activations (others: LSQ); weights LSQ
  kSte,      // the calibrated ranges, frozen: straight-through rounding only (the baseline)
};
Expected<QatMethod> parse_qat_method(const std::string& name);  // lsq | lsq+ | pact | ste
const char* qat_method_name(QatMethod method);

struct QatOptions {
  QatMethod method = QatMethod::kLsq;
  int64_t weight_bits = 8;      // 2..8, symmetric [-(2^(b-1) - 1), 2^(b-1) - 1]; <= 4 bits stored packed (i4)
  int64_t activation_bits = 8;  // 4..8, u8 storage over [0, 2^b - 1]
  // (glob, bits) overrides for a layer's weights and the activations it reads
  // and writes (Note [QAT bit widths]); every pattern must match a layer.
  std::vector<std::pair<std::string, int64_t>> layer_bits;
  std::vector<std::string> keep_f32;  // globs of layers left in f32
  // Initial ranges, from calibration (quant.ptq's observers).
  std::string observer = "minmax";
  int64_t calibration_samples = 512;
  int64_t calibration_batch = 64;
  std::string calibration_backend = "reference";
  // LSQ weight step init: "lsq" (the paper's 2 mean|w| / sqrt(Qp)) or
  // "minmax" (max |w| / Qp, PTQ's scale).
  std::string weight_init = "minmax";
  // Training (torch::Trainer): epochs 1 (0: no training, convert the
  // calibrated model: PTQ at these widths), steps, samples, batch 32,
  // shuffle, adam, lr 1e-4, cosine, momentum (sgd), weight_decay.
  distill::TrainingLoop loop = default_loop();
  static distill::TrainingLoop default_loop() {
    distill::TrainingLoop loop;
    loop.lr = 1e-4;
    return loop;
  }
  double scale_lr = 1.0;  // the quantizer parameters' lr multiplier
  // Batch norm uses running statistics (and stops updating them) from this
  // step on; 0: from the start; -1: never during the run.
  int64_t freeze_bn_step = 0;
  // STE's range observers (moving min/max of activations, max |w| of
  // weights) update until this step; 0: frozen from the start (-1: never).
  int64_t freeze_observer_step = 0;
  // Distillation from the original model (the reference model, else the
  // graph as it enters the pass) through distill::Distiller (Note
  // [Distillation loss]): (1 - alpha) CE + alpha (T^2 KL + pair losses).
  // The teacher runs as an onednn inference plan. `pairs` and `balance` are
  // distill.kd's ("S=T[:loss[:weight]]"; static | ratio): feature
  // distillation during QAT, since quant.qat's output is the int8 graph that
  // a later distill.kd stage cannot train.
  bool kd = true;
  double alpha = 0.5;
  double temperature = 4.0;
  std::vector<std::string> pairs;
  std::string balance = "static";
};

// Checks ranges and combinations; errors name the option.
Status check_qat_options(const QatOptions& options);

// Note [QAT pass]
// Calibrates the batch-norm-folded graph on PassContext::calibration (the
// training data when none), plans the boundaries exactly as quant.ptq does
// (Note [PTQ boundaries]), inserts learned quantizers into the unfolded graph
// (batch norm simulated-folded, Note [Simulated batch-norm folding]), trains
// on PassContext::training with torch::Trainer and converts to the int8
// graph with the learned parameters: the same integers the training
// simulated, no second calibration. On any error (a diverging run included)
// the graph is left as it was.
class QatPass : public pass::Pass {
 public:
  using Options = QatOptions;
  // Reads method, weight_bits, activation_bits (or bits), layer_bits, keep_f32, observer,
  // calibration_samples, calibration_batch, calibration_backend, weight_init, the training loop
  // (parse_training_loop: epochs, steps, samples, batch, shuffle, optimizer, lr, lr_schedule,
  // momentum, weight_decay), scale_lr,
  // freeze_bn_step, freeze_observer_step, kd, alpha, temperature, pairs, balance.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  QatPass() = default;
  explicit QatPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "quant.qat"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.training = true;
    return n;
  }

 private:
  Options options_;
};

Status register_qat_passes(pass::PassRegistry& registry);

}  // namespace compress::quant
