#include "compress/torch/trainable_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/torch/tensor_convert.h"
#include "op_lowering.h"

namespace compress::torch {
namespace {

// nn::Module forbids dots in names; the IR names are kept in slots_.
std::string module_safe(const std::string& name) {
  std::string out = name;
  for (char& ch : out) {
    if (ch == '.') ch = '_';
  }
  return out;
}

bool is_running_stat(const ir::Value& value) {
  for (const ir::Use& use : value.uses()) {
    if (use.user->is(ir::OpKind::batch_norm) && use.input_index >= 3) return true;
  }
  return false;
}

}  // namespace

Expected<std::shared_ptr<TrainableModel>> TrainableModel::create(const ir::Graph& graph, TrainableOptions options) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("TrainableModel"));
  std::shared_ptr<TrainableModel> model(new TrainableModel(graph.clone(), options));
  COMPRESS_RETURN_IF_ERROR(model->init());
  return model;
}

Status TrainableModel::init() {
  std::unordered_map<std::string, int> used_names;
  for (const ir::Value* value : graph_.constants()) {
    const ir::Tensor& tensor = value->constant();
    Slot slot;
    slot.name = value->name();
    COMPRESS_ASSIGN_OR_RETURN(slot.tensor, to_aten(tensor));
    if (tensor.is_sparse()) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, tensor.to_dense());
      at::Tensor values = slot.tensor;
      slot.mask = values.ne(0).to(values.scalar_type());
      if (tensor.sparse_layout()->format == ir::SparseFormat::kMask) {
        COMPRESS_ASSIGN_OR_RETURN(slot.mask, to_aten(tensor.sparse_layout()->indices[0]));
        slot.mask = slot.mask.to(values.scalar_type());
      }
    }
    slot.trainable = tensor.dtype() == ir::DType::kF32 && !tensor.is_quantized() && tensor.rank() > 0 &&
                     !is_running_stat(*value);
    std::string safe = module_safe(slot.name);
    if (used_names[safe]++ > 0) safe += "_" + std::to_string(used_names[safe]);
    if (slot.trainable) {
      slot.tensor = register_parameter(safe, slot.tensor, /*requires_grad=*/true);
    } else {
      slot.tensor = register_buffer(safe, slot.tensor);
    }
    if (slot.mask.defined()) slot.mask = register_buffer(safe + "__mask", slot.mask);
    slot_of_[value] = slots_.size();
    slots_.push_back(std::move(slot));
  }
  return Status::ok();
}

Status TrainableModel::set_taps(const std::vector<std::string>& names) {
  std::vector<const ir::Value*> values;
  values.reserve(names.size());
  for (const std::string& name : names) {
    const ir::Value* value = graph_.find_value(name);
    if (value == nullptr) {
      return not_found("TrainableModel: no value named '{}' to tap (a tap names a node output, a graph input or a "
                       "constant of the graph)",
                       name);
    }
    if (std::find(values.begin(), values.end(), value) != values.end()) {
      return invalid_argument("TrainableModel: value '{}' is tapped twice", name);
    }
    values.push_back(value);
  }
  tap_names_ = names;
  tap_values_ = std::move(values);
  return Status::ok();
}

Expected<std::vector<at::Tensor>> TrainableModel::try_forward(const std::vector<at::Tensor>& inputs) {
  return run(inputs, nullptr);
}

Expected<TappedForward> TrainableModel::try_forward_with_taps(const std::vector<at::Tensor>& inputs) {
  TappedForward result;
  COMPRESS_ASSIGN_OR_RETURN(result.outputs, run(inputs, &result.taps));
  return result;
}

TappedForward TrainableModel::forward_with_taps(const std::vector<at::Tensor>& inputs) {
  return value_or_throw(try_forward_with_taps(inputs));
}

Expected<std::vector<at::Tensor>> TrainableModel::run(const std::vector<at::Tensor>& inputs,
                                                      ::torch::OrderedDict<std::string, at::Tensor>* taps) {
  COMPRESS_CHECK(inputs.size() == graph_.inputs().size(), StatusCode::kInvalidArgument,
                 "TrainableModel: {} inputs given, the graph takes {}", inputs.size(), graph_.inputs().size());
  std::unordered_map<const ir::Value*, at::Tensor> env;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Value* in = graph_.inputs()[i];
    COMPRESS_CHECK(inputs[i].dim() == static_cast<int64_t>(in->shape().size()), StatusCode::kInvalidArgument,
                   "TrainableModel: input '{}' has rank {}, expected {} ({})", in->name(), inputs[i].dim(),
                   in->shape().size(), in->type().to_string());
    env[in] = inputs[i];
  }
  const TorchRunContext context{is_training(), options_.batch_norm_momentum};
  auto lookup = [&](const ir::Value* v) -> at::Tensor {
    if (v->is_constant()) {
      const Slot& slot = slots_[slot_of_.at(v)];
      return slot.mask.defined() ? slot.tensor * slot.mask : slot.tensor;
    }
    return env.at(v);
  };
  for (const ir::Node* node : graph_.nodes()) {
    std::vector<at::Tensor> args;
    args.reserve(node->num_inputs());
    for (const ir::Value* in : node->inputs()) args.push_back(lookup(in));
    auto runner = runners_.find(node);
    Expected<std::vector<at::Tensor>> ran = runner == runners_.end() ? run_torch_node(*node, args, context)
                                                                      : runner->second(*node, args, is_training());
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outs, std::move(ran));
    for (size_t i = 0; i < outs.size(); ++i) env[node->output(i)] = std::move(outs[i]);
  }
  std::vector<at::Tensor> outputs;
  for (const ir::Value* out : graph_.outputs()) outputs.push_back(lookup(out));
  if (taps != nullptr) {
    for (size_t i = 0; i < tap_values_.size(); ++i) taps->insert(tap_names_[i], lookup(tap_values_[i]));
  }
  return outputs;
}

Status TrainableModel::set_node_runner(const std::string& node, NodeRunner runner) {
  const ir::Node* n = graph_.find_node(node);
  if (n == nullptr) return not_found("TrainableModel: no node named '{}' to run differently", node);
  runners_[n] = std::move(runner);
  return Status::ok();
}

Expected<at::Tensor> TrainableModel::add_parameter(const std::string& name, const at::Tensor& value, double lr_scale) {
  for (const Slot& slot : slots_) {
    if (slot.name == name) return invalid_argument("TrainableModel: a parameter named '{}' exists already", name);
  }
  if (!(lr_scale > 0 && std::isfinite(lr_scale))) {
    return invalid_argument("TrainableModel: parameter '{}': lr_scale must be positive, got {}", name, lr_scale);
  }
  Slot slot;
  slot.name = name;
  slot.trainable = true;
  slot.lr_scale = lr_scale;
  std::string safe = module_safe(name) + "__extra";
  while (named_parameters_of_module_contains(safe)) safe += "_";
  slot.tensor = register_parameter(safe, value.detach().clone(), /*requires_grad=*/true);
  slots_.push_back(slot);
  return slot.tensor;
}

bool TrainableModel::named_parameters_of_module_contains(const std::string& safe) const {
  return ::torch::nn::Module::named_parameters(/*recurse=*/false).contains(safe) ||
         ::torch::nn::Module::named_buffers(/*recurse=*/false).contains(safe);
}

Expected<at::Tensor> TrainableModel::constant_tensor(const std::string& name) const {
  const ir::Value* v = graph_.find_value(name);
  auto it = v == nullptr ? slot_of_.end() : slot_of_.find(v);
  if (it == slot_of_.end()) return not_found("TrainableModel: no constant named '{}'", name);
  return slots_[it->second].tensor;
}

std::vector<TrainableModel::ParameterGroup> TrainableModel::parameter_groups() const {
  std::vector<ParameterGroup> groups;
  for (const Slot& slot : slots_) {
    if (!slot.trainable) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const ParameterGroup& g) { return g.lr_scale == slot.lr_scale; });
    if (it == groups.end()) it = groups.insert(groups.end(), ParameterGroup{slot.lr_scale, {}});
    it->parameters.push_back(slot.tensor);
  }
  return groups;
}

std::vector<at::Tensor> TrainableModel::forward(const std::vector<at::Tensor>& inputs) {
  return value_or_throw(try_forward(inputs));
}

at::Tensor TrainableModel::forward(const at::Tensor& input) {
  auto outputs = forward(std::vector<at::Tensor>{input});
  if (outputs.size() != 1) {
    throw Error(invalid_argument("TrainableModel::forward(Tensor): the graph has {} outputs", outputs.size()));
  }
  return outputs[0];
}

std::vector<at::Tensor> TrainableModel::parameters() const {
  std::vector<at::Tensor> out;
  for (const Slot& slot : slots_) {
    if (slot.trainable) out.push_back(slot.tensor);
  }
  return out;
}

::torch::OrderedDict<std::string, at::Tensor> TrainableModel::named_parameters() const {
  ::torch::OrderedDict<std::string, at::Tensor> out;
  for (const Slot& slot : slots_) {
    if (slot.trainable) out.insert(slot.name, slot.tensor);
  }
  return out;
}

::torch::OrderedDict<std::string, at::Tensor> TrainableModel::named_buffers() const {
  ::torch::OrderedDict<std::string, at::Tensor> out;
  for (const Slot& slot : slots_) {
    if (!slot.trainable) out.insert(slot.name, slot.tensor);
  }
  return out;
}

Status TrainableModel::write_back() {
  for (ir::Value* value : graph_.constants()) {
    auto it = slot_of_.find(value);
    if (it == slot_of_.end()) continue;
    const Slot& slot = slots_[it->second];
    const ir::Tensor& old = value->constant();
    if (old.dtype() != ir::DType::kF32 || old.is_quantized()) continue;  // integer data is not trained
    at::Tensor data = slot.tensor.detach().to(at::kCPU);
    if (slot.mask.defined()) data = data * slot.mask.to(at::kCPU);
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor updated, from_aten(data));
    if (old.is_sparse()) {
      const ir::SparseLayout& layout = *old.sparse_layout();
      switch (layout.format) {
        case ir::SparseFormat::kMask: {
          // Same mask, new values.
          COMPRESS_ASSIGN_OR_RETURN(
              updated, ir::Tensor::from_storage(updated.dtype(), updated.shape(), updated.storage(), nullptr,
                                                old.sparse_layout()));
          break;
        }
        case ir::SparseFormat::kCsr: {
          COMPRESS_ASSIGN_OR_RETURN(updated, ir::to_csr_layout(updated));
          break;
        }
        case ir::SparseFormat::kNM: {
          COMPRESS_ASSIGN_OR_RETURN(updated, ir::to_nm_layout(updated, layout.n, layout.m));
          break;
        }
        case ir::SparseFormat::kBlock: {
          COMPRESS_ASSIGN_OR_RETURN(updated, ir::to_block_layout(updated, layout.block_h, layout.block_w));
          break;
        }
        case ir::SparseFormat::kDense: break;
      }
    }
    value->set_constant(std::move(updated));
  }
  return ir::verify(graph_).with_context("TrainableModel::write_back");
}

}  // namespace compress::torch
