// TrainableModel: runs an IR graph with torch ops so autograd can train it.
#pragma once

#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::torch {

// What forward_with_taps returns: the graph outputs and the tapped values,
// keyed by IR value name in the order set_taps() was given them.
struct TappedForward {
  std::vector<at::Tensor> outputs;
  ::torch::OrderedDict<std::string, at::Tensor> taps;
};

struct TrainableOptions {
  // Batch-norm running statistics are updated with this momentum in training
  // mode (PyTorch's default).
  double batch_norm_momentum = 0.1;
};

// Note [Trainable parameters]
// Float constants of the graph become parameters (requires_grad), named as
// in the IR ("layer1.0.conv1.weight"), except batch-norm running statistics
// and rank-0 scalars, which are buffers. A weight with a sparse layout trains
// through its mask: the forward pass multiplies by the mask, so pruned
// entries stay exactly zero and get zero gradient. fake_quant nodes use
// LibTorch's fake-quantize kernels (straight-through gradients), with the same
// rounding (half to even) as the reference backend.
//
// The module owns a copy of the IR graph; write_back() stores the trained
// values into that graph (and graph() hands it out) so that passes and
// save_cmf() see the trained model.
class TrainableModel : public ::torch::nn::Module {
 public:
  static Expected<std::shared_ptr<TrainableModel>> create(const ir::Graph& graph, TrainableOptions options = {});

  // Runs the graph. Inputs in graph-input order; throws compress::Error on
  // failure (this is a training-loop API; try_forward returns the Status).
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs);
  at::Tensor forward(const at::Tensor& input);
  Expected<std::vector<at::Tensor>> try_forward(const std::vector<at::Tensor>& inputs);

  // Note [Taps]
  // A tap is an intermediate IR value (a node output, a graph input or a
  // constant, by its IR name) that forward_with_taps returns beside the
  // outputs, still attached to the autograd graph, so a loss term can use
  // it (feature distillation, activation penalties) and a hook can read it.
  // set_taps resolves the names once; an unknown name is an error naming it
  // and leaves the previous taps in place. Tapping costs nothing extra: the
  // executor keeps every value of the forward pass for backward anyway.
  Status set_taps(const std::vector<std::string>& names);
  const std::vector<std::string>& taps() const { return tap_names_; }
  Expected<TappedForward> try_forward_with_taps(const std::vector<at::Tensor>& inputs);
  TappedForward forward_with_taps(const std::vector<at::Tensor>& inputs);

  // Note [Node runners]
  // A node runner replaces the torch lowering of one node (by name) in
  // forward: QAT's learned quantizers run its fake_quant nodes, and its
  // batch-norm freeze runs the batch norms. The runner gets the node, its
  // input tensors and whether the model is in training mode; what it returns
  // are the node's outputs. An unknown node name is an error.
  using NodeRunner = std::function<Expected<std::vector<at::Tensor>>(const ir::Node& node,
                                                                     const std::vector<at::Tensor>& inputs,
                                                                     bool training)>;
  Status set_node_runner(const std::string& node, NodeRunner runner);

  // A trainable tensor that is not a graph constant (a quantizer's scale):
  // it is in parameters() and named_parameters() under `name`, which must not
  // be taken, and write_back() leaves it alone. Its learning rate is the
  // schedule's times `lr_scale` (parameter_groups()).
  Expected<at::Tensor> add_parameter(const std::string& name, const at::Tensor& value, double lr_scale = 1.0);
  // The live tensor of graph constant `name` (a parameter or a buffer).
  Expected<at::Tensor> constant_tensor(const std::string& name) const;
  struct ParameterGroup {
    double lr_scale = 1.0;
    std::vector<at::Tensor> parameters;
  };
  // The parameters grouped by learning-rate multiplier, in first-seen order
  // (the graph's own parameters have multiplier 1).
  std::vector<ParameterGroup> parameter_groups() const;

  // Hide nn::Module's versions so the IR's dotted names are used.
  std::vector<at::Tensor> parameters() const;
  ::torch::OrderedDict<std::string, at::Tensor> named_parameters() const;
  ::torch::OrderedDict<std::string, at::Tensor> named_buffers() const;

  // Copies the trained parameters and buffers back into the owned graph
  // (f32, on the CPU; sparse layouts keep their pattern).
  Status write_back();
  // The owned graph (call write_back() first to see trained values).
  const ir::Graph& graph() const { return graph_; }
  ir::Graph& graph() { return graph_; }

 private:
  TrainableModel(ir::Graph graph, TrainableOptions options) : graph_(std::move(graph)), options_(options) {}
  Status init();
  bool named_parameters_of_module_contains(const std::string& safe) const;
  // Runs the graph; fills `taps` (when not null) with the tapped values.
  Expected<std::vector<at::Tensor>> run(const std::vector<at::Tensor>& inputs,
                                        ::torch::OrderedDict<std::string, at::Tensor>* taps);

  struct Slot {
    std::string name;  // IR constant name
    at::Tensor tensor;
    at::Tensor mask;  // defined for sparse weights
    bool trainable = false;
    double lr_scale = 1.0;
  };
  ir::Graph graph_;
  TrainableOptions options_;
  std::vector<Slot> slots_;
  std::map<const ir::Value*, size_t> slot_of_;
  std::vector<std::string> tap_names_;
  std::vector<const ir::Value*> tap_values_;  // resolved tap_names_, same order
  std::map<const ir::Node*, NodeRunner> runners_;
};

}  // namespace compress::torch
