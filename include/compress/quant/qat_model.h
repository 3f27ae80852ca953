// The QAT C++ API for a LibTorch training loop: prepare (graph -> trainable fake-quant module), train, convert.
#pragma once

// Only code that links LibTorch (the quant_qat layer and its users) includes this.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/qat_pass.h"
#include "compress/torch/trainable_model.h"

namespace compress::quant {

class Quantizer;  // src/quant/qat/quantizers.h

// Note [QAT quantizers]
// Every fake_quant of the prepared graph is run by a quantizer:
// - lsq: the step size s is a parameter (per output channel for weights,
//   per tensor for activations) trained through LibTorch's learnable
//   fake-quantize kernels, whose gradients are the LSQ paper's
//   (d x_hat / d s = round(x/s) - x/s inside the range, qmin or qmax outside;
//   d x_hat / d x = 1 inside, 0 outside) scaled by g = 1 / sqrt(N * Qp), N the
//   elements per scale. Zero points stay as calibrated.
// - lsq+: the activation zero points are parameters too (rounded in the
//   forward pass, as in the deployed graph).
// - pact: a non-negative activation (zero point 0, after a ReLU) is clipped
//   at a learned alpha and quantized with step alpha / qmax; d/d alpha is 1
//   where x >= alpha (Choi et al. 2018). Other activations use lsq.
// - ste: the calibrated params, rounded with a straight-through gradient;
//   observers may update them until freeze_observer_step.
// Scales are kept >= 1e-8 after every step; a scale that turns NaN or Inf
// stops the run naming the quantizer and step.
struct QuantizerReport {
  std::string node;   // the fake_quant node
  std::string layer;  // the conv2d/linear it belongs to
  bool weight = false;
  int64_t bits = 8;
  ir::QuantParams params;  // as learned now
};

class QatModel {
 public:
  // Calibrates on `calibration`, plans the boundaries and inserts the
  // quantizers (Note [QAT pass], qat_pass.h). `graph` is the f32 model, batch
  // norms unfolded (they are simulated-folded). Fails if nothing is quantizable.
  static Expected<std::unique_ptr<QatModel>> prepare(const ir::Graph& graph, const eval::DataSource& calibration,
                                                     const QatOptions& options, bool progress = true);
  ~QatModel();

  // The trainable module: its parameters() include the quantizers' scales
  // (lr multiplier QatOptions::scale_lr in parameter_groups()).
  compress::torch::TrainableModel& module() { return *module_; }
  std::shared_ptr<compress::torch::TrainableModel> shared_module() { return module_; }

  // Batch norms use their running statistics from now on (and stop updating them).
  void freeze_batch_norm() { bn_frozen_->store(true); }
  bool batch_norm_frozen() const { return bn_frozen_->load(); }
  // STE observers stop moving the ranges.
  void freeze_observers();
  // Call after each optimizer step: keeps scales positive and fails, naming
  // the quantizer, when one is NaN or Inf. `step` is for the message.
  Status after_step(int64_t step);

  // The deployable int8 graph: the trained weights with batch norm folded,
  // converted with the learned params (convert_to_int8, same contract as PTQ).
  Expected<ir::Graph> convert() const;
  // The same graph as an f32 fake-quant simulation (convert_to_fake_quant).
  Expected<ir::Graph> convert_to_fake_quant_graph() const;
  // The learned plan (layer names of the folded graph).
  Expected<std::vector<LayerQuant>> learned_layers() const;
  Expected<std::vector<QuantizerReport>> quantizers() const;
  // The layers quantized, in graph order.
  std::vector<std::string> layer_names() const;

 private:
  QatModel() = default;
  Expected<ir::Graph> trained_folded_graph() const;

  QatOptions options_;
  ir::Graph f32_;                   // the model as prepared (unfolded)
  std::vector<LayerQuant> plan_;    // on the folded graph's names, initial params
  std::vector<int64_t> weight_bits_;
  // Per layer: the fake_quant nodes of its input, weight, output ("" if none).
  struct LayerNodes {
    std::string input, weight, output;
  };
  std::vector<LayerNodes> nodes_;
  std::shared_ptr<compress::torch::TrainableModel> module_;
  std::vector<std::shared_ptr<Quantizer>> quantizers_;
  std::vector<std::string> quantizer_nodes_;
  std::shared_ptr<std::atomic<bool>> bn_frozen_;
};

}  // namespace compress::quant
