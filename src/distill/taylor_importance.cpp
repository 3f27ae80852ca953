// distill.taylor_importance: gradient x weight channel scores (Note [Taylor importance]).
#include "compress/distill/taylor_importance.h"

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/eval/dataset.h"
#include "compress/prune/importance.h"
#include "compress/support/logging.h"
#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"
#include "compress/distill/training_data.h"

namespace compress::distill {
namespace {

// The parameters of one layer whose w * dL/dw sums make its channels' scores:
// the weight (rows = output channels), and [out] vectors (bias, BN gamma, beta).
struct LayerParams {
  std::string node;
  int64_t channels = 0;
  std::vector<std::string> params;  // IR constant names; params[0] is the weight
};

// The IR name of a trainable f32 parameter input, or "" when it is not one.
std::string param_name(const ir::Value* v, const ::torch::OrderedDict<std::string, at::Tensor>& params) {
  if (v == nullptr || !v->is_constant()) return {};
  return params.find(v->name()) != nullptr ? v->name() : std::string();
}

std::vector<LayerParams> scored_layers(const ir::Graph& graph,
                                       const ::torch::OrderedDict<std::string, at::Tensor>& params) {
  std::vector<LayerParams> out;
  for (const ir::Node* n : graph.nodes()) {
    if (!analysis::as_weighted_layer(*n, prune::channel_layer_query())) continue;
    LayerParams layer;
    layer.node = n->name();
    const std::string w = param_name(n->input(1), params);
    if (w.empty() || n->input(1)->shape().empty()) continue;
    layer.channels = n->input(1)->shape()[0];
    layer.params.push_back(w);
    if (n->num_inputs() > 2) {
      const std::string b = param_name(n->input(2), params);
      if (!b.empty()) layer.params.push_back(b);
    }
    // A batch norm that is the output's only consumer is part of the channel.
    const ir::Value* y = n->output(0);
    if (y->uses().size() == 1 && y->uses()[0].user->is(ir::OpKind::batch_norm) && y->uses()[0].input_index == 0) {
      const ir::Node* bn = y->uses()[0].user;
      for (int i : {1, 2}) {
        const std::string p = param_name(bn->input(static_cast<size_t>(i)), params);
        if (!p.empty() && bn->input(static_cast<size_t>(i))->shape() == ir::Shape{layer.channels}) {
          layer.params.push_back(p);
        }
      }
    }
    out.push_back(std::move(layer));
  }
  return out;
}

}  // namespace

Expected<pass::PassResult> TaylorImportancePass::run(ir::Graph& graph, pass::PassContext& context) {
  const Options& o = options_;
  COMPRESS_ASSIGN_OR_RETURN(const eval::DataSource* training,
                            checked_training_data(graph, context, "distill.taylor_importance"));
  const eval::DataSource& data = *training;
  // One pass over the first `samples` in data order, the model as deployed
  // (eval mode), gradients only: the Trainer without an optimizer.
  compress::torch::TrainerOptions t;
  t.label = "distill.taylor_importance";
  t.samples = o.samples;
  t.batch = o.batch;
  t.shuffle = false;
  t.drop_last = false;
  t.train_mode = false;
  t.optimizer.kind = compress::torch::OptimizerKind::kNone;
  t.threads = context.threads;
  t.progress = context.progress;
  const compress::torch::Trainer trainer(t);
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainPlan plan, trainer.plan(data));

  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> model,
                            compress::torch::TrainableModel::create(graph));
  const auto named = model->named_parameters();
  const std::vector<LayerParams> layers = scored_layers(model->graph(), named);
  if (layers.empty()) {
    return invalid_argument("distill.taylor_importance: the graph has no conv2d/linear layer with a trainable f32 "
                            "weight");
  }
  std::vector<at::Tensor> score(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) score[i] = at::zeros({layers[i].channels}, at::kDouble);

  log_info("distill.taylor_importance: {} samples of {}, batch {}, {} layers", plan.samples, data.describe(),
           plan.batch, layers.size());
  compress::torch::TrainerHooks hooks;
  hooks.after_backward = [&](const compress::torch::StepContext& step) {
    const double weight = static_cast<double>(step.batch_size()) / static_cast<double>(plan.samples);
    for (size_t i = 0; i < layers.size(); ++i) {
      at::Tensor sum = at::zeros({layers[i].channels}, at::kDouble);
      for (const std::string& name : layers[i].params) {
        const at::Tensor& param = *named.find(name);
        if (!param.grad().defined()) continue;  // the loss does not depend on it
        const at::Tensor wg = (param.detach() * param.grad()).to(at::kDouble);
        sum += wg.dim() == 1 ? wg : wg.reshape({layers[i].channels, -1}).sum(1);
      }
      score[i] += sum.abs() * weight;
    }
    return Status::ok();
  };
  COMPRESS_ASSIGN_OR_RETURN(
      const compress::torch::TrainResult scored,
      trainer.fit(*model, data, {std::make_shared<compress::torch::CrossEntropyTerm>()}, hooks));

  pass::PassResult result;
  for (size_t i = 0; i < layers.size(); ++i) {
    const at::Tensor s = score[i].to(at::kFloat).contiguous();
    std::vector<float> v(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
    COMPRESS_RETURN_IF_ERROR(prune::store_channel_importance(graph, layers[i].node, v));
    auto& layer = result.layers[layers[i].node];
    layer["channels"] = static_cast<double>(layers[i].channels);
    layer["score_mean"] = score[i].mean().item<double>();
    layer["score_max"] = score[i].max().item<double>();
  }
  result.changed = true;
  result.counters["samples"] = static_cast<double>(plan.samples);
  result.counters["batches"] = static_cast<double>(scored.steps);
  result.counters["mean_loss"] = scored.epochs.back().loss;
  result.counters["layers_scored"] = static_cast<double>(layers.size());
  return result;
}

Expected<TaylorImportancePass::Options> TaylorImportancePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, int64_t{1} << 40));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  return o;
}

}  // namespace compress::distill
