// torch::nn::Sequential (C++ frontend) -> IR, child by child.
#include <torch/torch.h>

#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"

namespace compress::torch {
namespace {

namespace nn = ::torch::nn;
using Ints = std::vector<int64_t>;

template <size_t N>
Ints ints(const ::torch::ExpandingArray<N>& a) {
  return Ints(a->begin(), a->end());
}

Ints padding4(const Ints& p) { return {p[0], p[1], p[0], p[1]}; }

class SequentialImporter {
 public:
  explicit SequentialImporter(ir::Graph* graph) : graph_(graph) {}

  Expected<ir::Value*> param(const std::string& name, const at::Tensor& tensor) {
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor value, from_aten(tensor));
    return graph_->add_constant(graph_->unique_name(name), std::move(value));
  }

  Expected<ir::Value*> node(ir::OpKind op, std::vector<ir::Value*> inputs, ir::AttributeMap attrs,
                            const std::string& name) {
    auto n = graph_->add_node(op, inputs, std::move(attrs), name);
    if (!n) return n.status();
    return (*n)->output();
  }

  // Maps one child; returns its output (the input itself for dropped layers).
  Expected<ir::Value*> child(const std::string& name, const std::shared_ptr<nn::Module>& module, ir::Value* x) {
    if (auto* conv = module->as<nn::Conv2dImpl>()) {
      const auto& o = conv->options;
      COMPRESS_CHECK(c10::holds_alternative<::torch::ExpandingArray<2>>(o.padding()), StatusCode::kUnsupported,
                     "child '{}' (Conv2d): 'same'/'valid' padding is not supported; use explicit padding", name);
      COMPRESS_CHECK(c10::holds_alternative<::torch::enumtype::kZeros>(o.padding_mode()), StatusCode::kUnsupported,
                     "child '{}' (Conv2d): only zero padding is supported", name);
      const Ints pad = ints(c10::get<::torch::ExpandingArray<2>>(o.padding()));
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * w, param(name + ".weight", conv->weight));
      std::vector<ir::Value*> inputs{x, w};
      if (conv->bias.defined()) {
        COMPRESS_ASSIGN_OR_RETURN(ir::Value * b, param(name + ".bias", conv->bias));
        inputs.push_back(b);
      }
      return node(ir::OpKind::conv2d, inputs,
                  {{"stride", ints(o.stride())}, {"padding", padding4(pad)}, {"dilation", ints(o.dilation())},
                   {"groups", o.groups()}},
                  name);
    }
    if (auto* bn = module->as<nn::BatchNorm2dImpl>()) {
      COMPRESS_CHECK(bn->options.affine() && bn->options.track_running_stats(), StatusCode::kUnsupported,
                     "child '{}' (BatchNorm2d) needs affine=true and track_running_stats=true", name);
      std::vector<ir::Value*> inputs{x};
      for (const auto& [suffix, tensor] : std::vector<std::pair<const char*, at::Tensor>>{
               {".weight", bn->weight}, {".bias", bn->bias}, {".running_mean", bn->running_mean},
               {".running_var", bn->running_var}}) {
        COMPRESS_ASSIGN_OR_RETURN(ir::Value * v, param(name + suffix, tensor));
        inputs.push_back(v);
      }
      return node(ir::OpKind::batch_norm, inputs, {{"eps", bn->options.eps()}}, name);
    }
    if (auto* linear = module->as<nn::LinearImpl>()) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * w, param(name + ".weight", linear->weight));
      std::vector<ir::Value*> inputs{x, w};
      if (linear->bias.defined()) {
        COMPRESS_ASSIGN_OR_RETURN(ir::Value * b, param(name + ".bias", linear->bias));
        inputs.push_back(b);
      }
      return node(ir::OpKind::linear, inputs, {}, name);
    }
    if (module->as<nn::ReLUImpl>()) return node(ir::OpKind::relu, {x}, {}, name);
    if (module->as<nn::ReLU6Impl>()) return node(ir::OpKind::relu6, {x}, {}, name);
    if (module->as<nn::SiLUImpl>()) return node(ir::OpKind::silu, {x}, {}, name);
    if (module->as<nn::SigmoidImpl>()) return node(ir::OpKind::sigmoid, {x}, {}, name);
    if (module->as<nn::TanhImpl>()) return node(ir::OpKind::tanh, {x}, {}, name);
    if (auto* hardtanh = module->as<nn::HardtanhImpl>()) {
      const double lo = hardtanh->options.min_val(), hi = hardtanh->options.max_val();
      if (lo == 0.0 && hi == 6.0) return node(ir::OpKind::relu6, {x}, {}, name);
      return node(ir::OpKind::clamp, {x}, {{"min", lo}, {"max", hi}}, name);
    }
    if (auto* gelu = module->as<nn::GELUImpl>()) {
      return node(ir::OpKind::gelu, {x}, {{"approximate", gelu->options.approximate()}}, name);
    }
    if (auto* pool = module->as<nn::MaxPool2dImpl>()) {
      const auto& o = pool->options;
      return node(ir::OpKind::max_pool2d, {x},
                  {{"kernel", ints(o.kernel_size())}, {"stride", ints(o.stride())},
                   {"padding", padding4(ints(o.padding()))}, {"dilation", ints(o.dilation())},
                   {"ceil_mode", int64_t{o.ceil_mode()}}},
                  name);
    }
    if (auto* pool = module->as<nn::AvgPool2dImpl>()) {
      const auto& o = pool->options;
      COMPRESS_CHECK(!o.divisor_override().has_value(), StatusCode::kUnsupported,
                     "child '{}' (AvgPool2d): divisor_override is not supported", name);
      return node(ir::OpKind::avg_pool2d, {x},
                  {{"kernel", ints(o.kernel_size())}, {"stride", ints(o.stride())},
                   {"padding", padding4(ints(o.padding()))}, {"ceil_mode", int64_t{o.ceil_mode()}},
                   {"count_include_pad", int64_t{o.count_include_pad()}}},
                  name);
    }
    if (auto* pool = module->as<nn::AdaptiveAvgPool2dImpl>()) {
      Ints size;
      for (const auto& d : *pool->options.output_size()) {
        COMPRESS_CHECK(d.has_value(), StatusCode::kUnsupported,
                       "child '{}' (AdaptiveAvgPool2d): None output sizes are not supported", name);
        size.push_back(*d);
      }
      return node(ir::OpKind::adaptive_avg_pool2d, {x}, {{"output_size", size}}, name);
    }
    if (auto* flatten = module->as<nn::FlattenImpl>()) {
      return node(ir::OpKind::flatten, {x},
                  {{"start_dim", flatten->options.start_dim()}, {"end_dim", flatten->options.end_dim()}}, name);
    }
    if (module->as<nn::DropoutImpl>() || module->as<nn::Dropout2dImpl>() || module->as<nn::IdentityImpl>()) {
      return x;
    }
    return unsupported("child '{}' ({}) is not supported by import_sequential; see docs/torch.md", name,
                       module->name());
  }

 private:
  ir::Graph* graph_;
};

}  // namespace

Expected<ir::Graph> import_sequential(const ::torch::nn::Sequential& model, const InputSpec& input) {
  try {
    ir::Graph graph;
    graph.name = "sequential";
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * x,
                              graph.add_input(input.name.empty() ? "input" : input.name,
                                              ir::ValueType{input.dtype, input.shape, nullptr}));
    SequentialImporter importer(&graph);
    for (const auto& item : model->named_children()) {
      auto next = importer.child(item.key(), item.value(), x);
      if (!next) return next.status().with_context("import_sequential");
      x = *next;
    }
    graph.set_outputs({x});
    COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("import_sequential"));
    return graph;
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInternal, "import_sequential: {}", e.what_without_backtrace());
  }
}

}  // namespace compress::torch
