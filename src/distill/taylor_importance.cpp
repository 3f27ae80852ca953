// distill.taylor_importance: gradient x weight channel scores (Note [Taylor importance]).
#include "compress/distill/taylor_importance.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/eval/dataset.h"
#include "compress/prune/importance.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
#include "compress/torch/trainable_model.h"
#include "training_data.h"

namespace compress::distill {
namespace {

// at::set_num_threads is process-wide; restored on exit.
class ThreadsGuard {
 public:
  explicit ThreadsGuard(int threads) : saved_(at::get_num_threads()) {
    if (threads > 0) at::set_num_threads(threads);
  }
  ~ThreadsGuard() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

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
    if (y->uses().size() == 1 && y->uses()[0].user->op() == "batch_norm" && y->uses()[0].input_index == 0) {
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

Status read_batch(const eval::DataSource& data, int64_t start, int64_t count, at::Tensor* images,
                  at::Tensor* labels) {
  COMPRESS_ASSIGN_OR_RETURN(eval::Batch b, data.batch(start, count));
  if (b.inputs.dtype() != ir::DType::kF32 || b.inputs.is_sparse() || b.inputs.shape().empty() ||
      b.inputs.shape()[0] != count) {
    return invalid_argument("distill.taylor_importance: samples {}..{} of {} are not a dense f32 batch", start,
                            start + count, data.describe());
  }
  if (static_cast<int64_t>(b.labels.size()) != count) {
    return invalid_argument("distill.taylor_importance: samples {}..{} of {} have no labels", start, start + count,
                            data.describe());
  }
  std::vector<int64_t> shape(b.inputs.shape().begin(), b.inputs.shape().end());
  *images = at::empty(shape, at::kFloat);
  std::memcpy(images->data_ptr<float>(), b.inputs.data<float>(), sizeof(float) * static_cast<size_t>(images->numel()));
  *labels = at::empty({count}, at::kLong);
  std::memcpy(labels->data_ptr<int64_t>(), b.labels.data(), sizeof(int64_t) * static_cast<size_t>(count));
  return Status::ok();
}

}  // namespace

Expected<pass::PassResult> TaylorImportancePass::run(ir::Graph& graph, pass::PassContext& context) {
  const Options& o = options_;
  COMPRESS_ASSIGN_OR_RETURN(const eval::DataSource* training, checked_training_data(graph, context, "distill.taylor_importance"));
  const eval::DataSource& data = *training;
  const int64_t n = std::min(o.samples, data.size());
  if (n < 1) return invalid_argument("distill.taylor_importance: the training data {} is empty", data.describe());

  ThreadsGuard threads(context.threads);
  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> model,
                            compress::torch::TrainableModel::create(graph));
  model->eval();
  const auto named = model->named_parameters();
  const std::vector<LayerParams> layers = scored_layers(model->graph(), named);
  if (layers.empty()) {
    return invalid_argument("distill.taylor_importance: the graph has no conv2d/linear layer with a trainable f32 "
                            "weight");
  }
  // Distinct parameters to differentiate, and where each layer's are.
  std::vector<std::string> names;
  std::map<std::string, size_t> index;
  for (const LayerParams& l : layers) {
    for (const std::string& p : l.params) {
      if (index.emplace(p, names.size()).second) names.push_back(p);
    }
  }
  std::vector<at::Tensor> params;
  for (const std::string& p : names) params.push_back(*named.find(p));
  std::vector<at::Tensor> score(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) score[i] = at::zeros({layers[i].channels}, at::kDouble);

  log_info("distill.taylor_importance: {} samples of {}, batch {}, {} layers", n, data.describe(), o.batch,
           layers.size());
  double loss_sum = 0;
  int64_t batches = 0;
  try {
    ProgressReporter progress("distill.taylor_importance", (n + o.batch - 1) / o.batch,
                              context.progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
    for (int64_t start = 0; start < n; start += o.batch) {
      const int64_t count = std::min(o.batch, n - start);
      at::Tensor images, labels;
      COMPRESS_RETURN_IF_ERROR(read_batch(data, start, count, &images, &labels));
      COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outs, model->try_forward({images}));
      if (outs.empty() || outs[0].dim() != 2) {
        return invalid_argument("distill.taylor_importance: the graph's first output must be logits [batch, classes], "
                                "got rank {}", outs.empty() ? 0 : outs[0].dim());
      }
      const int64_t classes = outs[0].size(1);
      if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= classes) {
        return invalid_argument("distill.taylor_importance: a label of samples {}..{} of {} is outside the graph's "
                                "{} classes", start, start + count, data.describe(), classes);
      }
      const at::Tensor loss = at::cross_entropy_loss(outs[0], labels);
      const std::vector<at::Tensor> grads =
          ::torch::autograd::grad({loss}, params, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true);
      const double weight = static_cast<double>(count) / static_cast<double>(n);
      for (size_t i = 0; i < layers.size(); ++i) {
        at::Tensor sum = at::zeros({layers[i].channels}, at::kDouble);
        for (const std::string& p : layers[i].params) {
          const size_t k = index.at(p);
          if (!grads[k].defined()) continue;  // the loss does not depend on it
          const at::Tensor wg = (params[k].detach() * grads[k]).to(at::kDouble);
          sum += wg.dim() == 1 ? wg : wg.reshape({layers[i].channels, -1}).sum(1);
        }
        score[i] += sum.abs() * weight;
      }
      loss_sum += loss.item<double>();
      ++batches;
      progress.advance();
    }
    progress.finish();
  } catch (const Error& e) {
    return e.status().with_context("distill.taylor_importance");
  } catch (const std::exception& e) {
    return make_error(StatusCode::kInternal, "distill.taylor_importance: LibTorch failed: {}", e.what());
  }

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
  result.counters["samples"] = static_cast<double>(n);
  result.counters["batches"] = static_cast<double>(batches);
  result.counters["mean_loss"] = loss_sum / static_cast<double>(std::max<int64_t>(batches, 1));
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
