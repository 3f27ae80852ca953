// QatModel: calibrate, plan, insert learned quantizers (batch norm simulated-folded), convert to int8.
#include "compress/quant/qat_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "compress/ir/verifier.h"
#include "compress/prune/prunable_layers.h"
#include "compress/quant/calibration.h"
#include "compress/quant/scheme.h"
#include "compress/support/logging.h"
#include "compress/transforms/fold_batch_norm.h"
#include "quantizers.h"

namespace compress::quant {
namespace {

// Note [QAT bit widths]
// Weights at b bits are symmetric in [-(2^(b-1) - 1), 2^(b-1) - 1] (the s8
// scheme narrowed; b <= 4 is stored packed as i4), activations at b bits are
// u8 values in [0, 2^b - 1], so both run exactly on the int8 kernels. A
// layer's bits (QatOptions::layer_bits, the last matching pattern wins) set
// its weights and the activations it reads and writes; an activation that
// two layers share (one's output is the next one's input) takes the wider.
int64_t bits_for(const std::string& layer, int64_t fallback, const std::vector<std::pair<std::string, int64_t>>& overrides) {
  int64_t bits = fallback;
  for (const auto& [pattern, b] : overrides) {
    if (prune::glob_match(pattern, layer)) bits = b;
  }
  return bits;
}

// u8 activation params over the real range of `p`, at `bits`.
Expected<ir::QuantParams> activation_at_bits(const ir::QuantParams& p, int64_t bits, const std::string& what) {
  const int64_t qmax = (int64_t{1} << bits) - 1;
  if (p.qmax() == qmax && p.qmin() == 0) return p;
  const double zp = p.zero_points().empty() ? 0.0 : p.zero_points()[0];
  const double lo = (static_cast<double>(p.qmin()) - zp) * p.scales()[0];
  const double hi = (static_cast<double>(p.qmax()) - zp) * p.scales()[0];
  float scale = static_cast<float>((hi - lo) / static_cast<double>(qmax));
  if (!(scale >= kMinScale)) scale = hi - lo == 0 ? kFallbackScale : kMinScale;
  const double z = std::clamp(std::nearbyint(-lo / static_cast<double>(scale)), 0.0, static_cast<double>(qmax));
  ir::QuantParams::Spec spec;
  spec.storage = ir::DType::kU8;
  spec.scales = {scale};
  spec.zero_points = {static_cast<int32_t>(z)};
  spec.qmin = 0;
  spec.qmax = qmax;
  Expected<ir::QuantParams> out = ir::QuantParams::create(std::move(spec));
  if (!out.has_value()) return out.status().with_context(what);
  return out;
}

// Symmetric per-channel weight params at `bits` for the (folded) weight:
// PTQ's (max |w| / Qp, weight_params), or with `lsq_init` the same range and
// storage with LSQ's initial step 2 mean|w| / sqrt(Qp) (Esser et al. 2020).
Expected<ir::QuantParams> weight_at_bits(const ir::Tensor& stored, int64_t bits, bool lsq_init, const std::string& what) {
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams minmax, weight_params(stored, what, WeightGranularity::kPerChannel, bits));
  if (!lsq_init) return minmax;
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor w, stored.dense_f32(what));
  const int64_t channels = w.dim(0);
  const int64_t per_channel = w.numel() / std::max<int64_t>(1, channels);
  const double sqrt_qp = std::sqrt(static_cast<double>(minmax.qmax()));
  ir::QuantParams::Spec spec;
  spec.storage = minmax.storage();
  spec.granularity = ir::QuantGranularity::kPerAxis;
  spec.axis = 0;
  spec.zero_points = minmax.zero_points();
  spec.qmin = minmax.qmin();
  spec.qmax = minmax.qmax();
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t i = 0; i < per_channel; ++i) sum += std::fabs(static_cast<double>(w.data<float>()[c * per_channel + i]));
    const double step = 2.0 * (sum / static_cast<double>(per_channel)) / sqrt_qp;
    spec.scales.push_back(step == 0.0 ? kFallbackScale : std::max(static_cast<float>(step), kMinScale));
  }
  return ir::QuantParams::create(std::move(spec));
}

int64_t bits_of_range(const ir::QuantParams& p) {
  return static_cast<int64_t>(std::llround(std::log2(static_cast<double>(p.qmax() - p.qmin() + 1))));
}

// The batch norm that FoldBatchNormPass folds into layer `n` (its only
// reader, constant statistics), or null.
const ir::Node* folded_batch_norm(const ir::Graph& g, const ir::Node& n) {
  const ir::Value* out = n.output();
  if (out->uses().size() != 1 || g.is_output(out)) return nullptr;
  const ir::Node* bn = out->uses()[0].user;
  if (!bn->is(ir::OpKind::batch_norm) || bn->input(0) != out) return nullptr;
  for (size_t i = 1; i < 5; ++i) {
    if (!bn->input(i)->is_constant()) return nullptr;
  }
  return bn;
}

Status fold_batch_norms(ir::Graph& g) {
  transforms::FoldBatchNormPass fold;
  pass::PassContext context;
  context.progress = false;
  return fold.run(g, context).status();
}

}  // namespace

QatModel::~QatModel() = default;

Expected<std::unique_ptr<QatModel>> QatModel::prepare(const ir::Graph& graph, const eval::DataSource& calibration,
                                                      const QatOptions& options, bool progress) {
  COMPRESS_RETURN_IF_ERROR(check_qat_options(options));
  std::unique_ptr<QatModel> m(new QatModel());
  m->options_ = options;
  m->f32_ = graph.clone();
  m->bn_frozen_ = std::make_shared<std::atomic<bool>>(false);

  // Plan on the folded graph: the int8 graph's layers are the folded ones.
  ir::Graph folded = graph.clone();
  COMPRESS_RETURN_IF_ERROR(fold_batch_norms(folded));
  std::vector<std::string> nodes = quantizable_nodes(folded);
  const std::vector<std::string> all_layers = nodes;
  auto check_pattern = [&](const std::string& pattern, const char* key) -> Status {
    for (const std::string& l : all_layers) {
      if (prune::glob_match(pattern, l)) return Status::ok();
    }
    return invalid_argument("quant.qat: {} pattern '{}' matches no quantizable layer; the layers are: {}", key, pattern,
                            fmt::join(all_layers, ", "));
  };
  for (const auto& [pattern, bits] : options.layer_bits) COMPRESS_RETURN_IF_ERROR(check_pattern(pattern, "layer_bits"));
  for (const std::string& pattern : options.keep_f32) {
    COMPRESS_RETURN_IF_ERROR(check_pattern(pattern, "keep_f32"));
    nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                               [&](const std::string& l) { return prune::glob_match(pattern, l); }),
                nodes.end());
  }
  if (nodes.empty()) {
    return invalid_argument("quant.qat: the model has no quantizable layer (conv2d/linear with constant f32 weights{})",
                            options.keep_f32.empty() ? "" : " outside keep_f32");
  }
  CalibrationOptions copts;
  copts.observer = options.observer;
  copts.samples = options.calibration_samples;
  copts.batch = options.calibration_batch;
  copts.backend = options.calibration_backend;
  copts.progress = progress;
  COMPRESS_ASSIGN_OR_RETURN(CalibrationResult calib,
                            calibrate(folded, values_to_observe(folded, nodes), calibration, copts));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerQuant> plan, plan_layers(folded, nodes, calib));

  // Bit widths (Note [QAT bit widths]): activation params shared by layers
  // (equal params: plan_layers reuses an output's params for the next input)
  // take the widest of their layers' bits.
  std::vector<std::pair<ir::QuantParams, int64_t>> act_bits;
  auto widen = [&](const ir::QuantParams& p, int64_t bits) {
    for (auto& [q, b] : act_bits) {
      if (q == p) {
        b = std::max(b, bits);
        return;
      }
    }
    act_bits.emplace_back(p, bits);
  };
  for (const LayerQuant& l : plan) {
    const int64_t a = bits_for(l.node, options.activation_bits, options.layer_bits);
    widen(l.input_params, a);
    if (l.output_params) widen(*l.output_params, a);
  }
  auto bits_of = [&](const ir::QuantParams& p) {
    for (const auto& [q, b] : act_bits) {
      if (q == p) return b;
    }
    return options.activation_bits;
  };
  for (LayerQuant& l : plan) {
    const int64_t wb = bits_for(l.node, options.weight_bits, options.layer_bits);
    m->weight_bits_.push_back(wb);
    COMPRESS_ASSIGN_OR_RETURN(l.input_params, activation_at_bits(l.input_params, bits_of(l.input_params), l.input));
    if (l.output_params) {
      COMPRESS_ASSIGN_OR_RETURN(l.output_params, activation_at_bits(*l.output_params, bits_of(*l.output_params), l.output));
    }
    const ir::Node* n = folded.find_node(l.node);
    const bool lsq_init = options.method != QatMethod::kSte && options.weight_init == "lsq";
    COMPRESS_ASSIGN_OR_RETURN(l.weight_params, weight_at_bits(n->input(1)->constant(), wb, lsq_init, n->input(1)->name()));
  }
  m->plan_ = plan;

  // The same boundaries on the unfolded graph: a layer's output is its batch
  // norm's (or its fused activation's) output there.
  std::vector<LayerQuant> unfolded = plan;
  std::map<std::string, const ir::Node*> bn_of;
  for (LayerQuant& l : unfolded) {
    const ir::Node* n = m->f32_.find_node(l.node);
    if (n == nullptr) return make_error(StatusCode::kInternal, "quant.qat: layer '{}' is not in the unfolded graph", l.node);
    l.input = n->input(0)->name();
    const ir::Node* bn = folded_batch_norm(m->f32_, *n);
    if (bn != nullptr) bn_of[l.node] = bn;
    if (!l.relu.empty()) {
      l.output = m->f32_.find_node(l.relu)->output()->name();
    } else {
      l.output = bn != nullptr ? bn->output()->name() : n->output()->name();
    }
  }
  ir::Graph qat = m->f32_.clone();
  COMPRESS_RETURN_IF_ERROR(convert_to_fake_quant(qat, unfolded));
  COMPRESS_RETURN_IF_ERROR(ir::verify(qat).with_context("quant.qat: the fake-quant graph"));

  // Which fake_quant serves which layer, with the params it starts from.
  std::map<std::string, QuantizerSpec> specs;
  for (size_t i = 0; i < unfolded.size(); ++i) {
    const LayerQuant& l = unfolded[i];
    const ir::Node* n = qat.find_node(l.node);
    LayerNodes ln;
    auto producer_fq = [&](size_t input) -> std::string {
      const ir::Node* p = n->input(input)->producer();
      return p != nullptr && p->is(ir::OpKind::fake_quant) ? p->name() : std::string();
    };
    ln.input = producer_fq(0);
    ln.weight = producer_fq(1);
    if (l.output_params) {
      for (const ir::Use& u : qat.find_value(l.output)->uses()) {
        if (u.user->is(ir::OpKind::fake_quant)) ln.output = u.user->name();
      }
    }
    if (ln.input.empty() || ln.weight.empty() || (l.output_params && ln.output.empty())) {
      return make_error(StatusCode::kInternal, "quant.qat: layer '{}' did not get its fake_quant nodes", l.node);
    }
    auto add_spec = [&](const std::string& node, bool weight, const ir::QuantParams& params) {
      if (specs.count(node) > 0) return;
      specs.emplace(node, QuantizerSpec{node, l.node, weight, weight ? m->weight_bits_[i] : bits_of_range(params), params});
    };
    add_spec(ln.input, false, l.input_params);
    add_spec(ln.weight, true, l.weight_params);
    if (l.output_params) add_spec(ln.output, false, *l.output_params);
    m->nodes_.push_back(ln);
  }

  COMPRESS_ASSIGN_OR_RETURN(m->module_, compress::torch::TrainableModel::create(qat));
  compress::torch::TrainableModel& module = *m->module_;
  // Quantizers in graph order, so their parameters are too.
  std::map<std::string, std::shared_ptr<Quantizer>> by_node;
  for (const ir::Node* n : module.graph().nodes()) {
    auto it = specs.find(n->name());
    if (it == specs.end()) continue;
    COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<Quantizer> q,
                              make_quantizer(options.method, it->second, module, options.scale_lr));
    by_node[n->name()] = q;
    m->quantizers_.push_back(q);
    m->quantizer_nodes_.push_back(n->name());
  }
  for (size_t i = 0; i < unfolded.size(); ++i) {
    const LayerNodes& ln = m->nodes_[i];
    for (const std::string& node : {ln.input, ln.output}) {
      if (node.empty()) continue;
      std::shared_ptr<Quantizer> q = by_node.at(node);
      COMPRESS_RETURN_IF_ERROR(module.set_node_runner(
          node, [q](const ir::Node&, const std::vector<at::Tensor>& in, bool training)
                    -> Expected<std::vector<at::Tensor>> { return std::vector<at::Tensor>{q->forward(in[0], training)}; }));
    }
    std::shared_ptr<Quantizer> wq = by_node.at(ln.weight);
    auto bn = bn_of.find(unfolded[i].node);
    if (bn == bn_of.end()) {
      COMPRESS_RETURN_IF_ERROR(module.set_node_runner(
          ln.weight, [wq](const ir::Node&, const std::vector<at::Tensor>& in, bool training)
                         -> Expected<std::vector<at::Tensor>> { return std::vector<at::Tensor>{wq->forward(in[0], training)}; }));
      continue;
    }
    // Note [Simulated batch-norm folding]
    // What gets fake-quantized is the folded weight w * k, k = gamma /
    // sqrt(running_var + eps), computed in double exactly as
    // FoldBatchNormPass computes it (so conversion quantizes bit-identical
    // values). The layer then runs with Q(w * k) / k and the batch norm
    // follows: with frozen statistics that is conv(x, Q(w k)) + the folded
    // bias, the deployed layer up to float rounding; in training mode the
    // batch statistics normalise it (Krishnamoorthi 2018, PyTorch's ConvBn).
    // A channel with k = 0 divides by 1 instead (its folded weight is 0).
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor gamma, module.constant_tensor(bn->second->input(1)->name()));
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor var, module.constant_tensor(bn->second->input(4)->name()));
    const double eps = bn->second->attr_float("eps");
    COMPRESS_RETURN_IF_ERROR(module.set_node_runner(
        ln.weight, [wq, gamma, var, eps](const ir::Node&, const std::vector<at::Tensor>& in, bool training)
                       -> Expected<std::vector<at::Tensor>> {
          const at::Tensor& w = in[0];
          std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
          shape[0] = w.size(0);
          const at::Tensor k = gamma.to(at::kDouble) / at::sqrt(var.to(at::kDouble) + eps);
          const at::Tensor folded_w = (w.to(at::kDouble) * k.view(shape)).to(at::kFloat);
          const at::Tensor kf = k.to(at::kFloat);
          const at::Tensor divisor = at::where(kf == 0, at::ones_like(kf), kf).view(shape);
          return std::vector<at::Tensor>{wq->forward(folded_w, training) / divisor};
        }));
  }
  // Note [Freezing batch norm]: from freeze_batch_norm() on, every batch
  // norm runs on its running statistics and stops updating them.
  std::shared_ptr<std::atomic<bool>> frozen = m->bn_frozen_;
  const double momentum = compress::torch::TrainableOptions{}.batch_norm_momentum;
  for (const ir::Node* n : module.graph().nodes()) {
    if (!n->is(ir::OpKind::batch_norm)) continue;
    COMPRESS_RETURN_IF_ERROR(module.set_node_runner(
        n->name(), [frozen, momentum](const ir::Node& node, const std::vector<at::Tensor>& in, bool training)
                       -> Expected<std::vector<at::Tensor>> {
          return std::vector<at::Tensor>{at::batch_norm(in[0], in[1], in[2], in[3], in[4], training && !frozen->load(),
                                                        momentum, node.attr_float("eps"), /*cudnn_enabled=*/false)};
        }));
  }
  log_info("quant.qat: {} layers, {} quantizers ({}), weights {} bits, activations {} bits{}", plan.size(),
           m->quantizers_.size(), qat_method_name(options.method), options.weight_bits, options.activation_bits,
           options.layer_bits.empty() ? "" : " (layer_bits overrides)");
  return m;
}

void QatModel::freeze_observers() {
  for (auto& q : quantizers_) q->freeze_observer();
}

Status QatModel::after_step(int64_t step) {
  for (auto& q : quantizers_) {
    COMPRESS_RETURN_IF_ERROR(q->after_step().with_context(fmt::format("step {}", step + 1)));
  }
  // A weight that overflowed diverges the next forward pass; name it now.
  for (const auto& item : module_->named_parameters()) {
    if (!at::isfinite(item.value().detach()).all().item<bool>()) {
      return invalid_argument("quant.qat: step {}: parameter '{}' went to NaN or Inf (the run diverged; lower lr)",
                              step + 1, item.key());
    }
  }
  return Status::ok();
}

std::vector<std::string> QatModel::layer_names() const {
  std::vector<std::string> out;
  for (const LayerQuant& l : plan_) out.push_back(l.node);
  return out;
}

Expected<std::vector<LayerQuant>> QatModel::learned_layers() const {
  std::map<std::string, const Quantizer*> by_node;
  for (size_t i = 0; i < quantizers_.size(); ++i) by_node[quantizer_nodes_[i]] = quantizers_[i].get();
  std::vector<LayerQuant> layers = plan_;
  for (size_t i = 0; i < layers.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(layers[i].input_params, by_node.at(nodes_[i].input)->params());
    COMPRESS_ASSIGN_OR_RETURN(layers[i].weight_params, by_node.at(nodes_[i].weight)->params());
    if (layers[i].output_params) {
      COMPRESS_ASSIGN_OR_RETURN(layers[i].output_params, by_node.at(nodes_[i].output)->params());
    }
  }
  return layers;
}

Expected<std::vector<QuantizerReport>> QatModel::quantizers() const {
  std::vector<QuantizerReport> out;
  for (const auto& q : quantizers_) {
    COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams p, q->params());
    out.push_back(QuantizerReport{q->spec().node, q->spec().layer, q->spec().weight, q->spec().bits, std::move(p)});
  }
  return out;
}

Expected<ir::Graph> QatModel::trained_folded_graph() const {
  // The trained values (weights, biases, batch-norm parameters and
  // statistics) into a clean copy of the f32 graph, then the real fold.
  COMPRESS_RETURN_IF_ERROR(module_->write_back());
  ir::Graph g = f32_.clone();
  for (ir::Value* c : g.constants()) {
    const ir::Value* trained = module_->graph().find_value(c->name());
    if (trained != nullptr && trained->is_constant()) c->set_constant(trained->constant());
  }
  COMPRESS_RETURN_IF_ERROR(fold_batch_norms(g));
  return g;
}

Expected<ir::Graph> QatModel::convert() const {
  COMPRESS_ASSIGN_OR_RETURN(ir::Graph g, trained_folded_graph());
  COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerQuant> layers, learned_layers());
  COMPRESS_RETURN_IF_ERROR(convert_to_int8(g, layers));
  COMPRESS_RETURN_IF_ERROR(ir::verify(g).with_context("quant.qat: the converted int8 graph"));
  return g;
}

Expected<ir::Graph> QatModel::convert_to_fake_quant_graph() const {
  COMPRESS_ASSIGN_OR_RETURN(ir::Graph g, trained_folded_graph());
  COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerQuant> layers, learned_layers());
  COMPRESS_RETURN_IF_ERROR(convert_to_fake_quant(g, layers));
  COMPRESS_RETURN_IF_ERROR(ir::verify(g).with_context("quant.qat: the fake-quant graph"));
  return g;
}

}  // namespace compress::quant
