// quant.bias_correction (Note [Empirical bias correction]).
#include "compress/quant/bias_correction_pass.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/scheme.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "graph_edit.h"

namespace compress::quant {
namespace {

// W - dequantize(quantize(W)) with the PTQ weight scheme (either granularity:
// the scale of element i is the params' own param_index).
Expected<ir::Tensor> weight_error(const ir::Value& weight, WeightGranularity granularity, int64_t bits) {
  COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor w, weight.constant().dense_f32(weight.name()));
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams params, weight_params(w, weight.name(), granularity, bits));
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor q, quantize_tensor(w, params));
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor err, ir::Tensor::zeros(ir::DType::kF32, w.shape()));
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float scale = params.scales()[static_cast<size_t>(params.param_index(w.shape(), i))];
    const double deq = static_cast<double>(q.data<int8_t>()[i]) * scale;
    err.data<float>()[i] = static_cast<float>(static_cast<double>(w.data<float>()[i]) - deq);
  }
  return err;
}

// One layer's probe: the layer alone, with weights W - Q(W) and no bias.
struct Probe {
  std::string node;
  size_t input_slot = 0;  // index into the observed values
  std::unique_ptr<runtime::ExecutionPlan> plan;
  std::vector<double> sum;  // per output channel
  int64_t count = 0;        // outputs per channel summed
};

Expected<Probe> make_probe(const ir::Node& n, size_t slot, WeightGranularity granularity, int64_t weight_bits) {
  ir::Graph g;
  COMPRESS_ASSIGN_OR_RETURN(ir::Value * x, g.add_input("x", n.input(0)->type()));
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor err, weight_error(*n.input(1), granularity, weight_bits));
  COMPRESS_ASSIGN_OR_RETURN(ir::Value * w, g.add_constant("weight_error", std::move(err)));
  COMPRESS_ASSIGN_OR_RETURN(ir::Node * layer, g.add_node(n.op(), {x, w}, n.attrs(), "layer"));
  g.set_outputs({layer->output()});
  COMPRESS_ASSIGN_OR_RETURN(auto backend, runtime::make_backend("reference"));
  Probe p;
  p.node = n.name();
  p.input_slot = slot;
  COMPRESS_ASSIGN_OR_RETURN(p.plan, backend->compile(g));
  p.sum.assign(static_cast<size_t>(n.input(1)->shape()[0]), 0.0);
  return p;
}

// Adds the per-channel sums of `out` (channel axis 1 for conv2d, last for linear).
void accumulate(Probe& p, const ir::Tensor& out, bool conv) {
  const auto channels = static_cast<int64_t>(p.sum.size());
  const float* y = out.data<float>();
  if (conv) {
    const int64_t inner = out.numel() / (out.dim(0) * channels);
    for (int64_t i = 0; i < out.numel(); ++i) {
      const float v = y[i];
      if (std::isfinite(v)) p.sum[static_cast<size_t>((i / inner) % channels)] += v;
    }
    p.count += out.numel() / channels;
  } else {
    for (int64_t i = 0; i < out.numel(); ++i) {
      const float v = y[i];
      if (std::isfinite(v)) p.sum[static_cast<size_t>(i % channels)] += v;
    }
    p.count += out.numel() / channels;
  }
}

}  // namespace

Expected<BiasCorrections> measure_bias_corrections(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                   const eval::DataSource& data, const CalibrationOptions& options,
                                                   WeightGranularity granularity, int64_t weight_bits) {
  std::vector<std::string> inputs;
  std::vector<Probe> probes;
  std::vector<bool> conv;
  for (const std::string& name : nodes) {
    const ir::Node* n = graph.find_node(name);
    if (n == nullptr || !is_weighted_layer(*n)) {
      return invalid_argument("bias correction: '{}' is not a conv2d/linear with constant weights", name);
    }
    const std::string& x = n->input(0)->name();
    auto it = std::find(inputs.begin(), inputs.end(), x);
    const size_t slot = static_cast<size_t>(it - inputs.begin());
    if (it == inputs.end()) inputs.push_back(x);
    COMPRESS_ASSIGN_OR_RETURN(Probe p, make_probe(*n, slot, granularity, weight_bits));
    probes.push_back(std::move(p));
    conv.push_back(n->is(ir::OpKind::conv2d));
  }
  COMPRESS_RETURN_IF_ERROR(for_each_batch(graph, inputs, data, options, "bias correction",
                                          [&](const std::vector<const ir::Tensor*>& seen) -> Status {
                                            for (size_t i = 0; i < probes.size(); ++i) {
                                              Probe& p = probes[i];
                                              COMPRESS_ASSIGN_OR_RETURN(std::vector<ir::Tensor> out,
                                                                        p.plan->run({*seen[p.input_slot]}));
                                              accumulate(p, out.at(0), conv[i]);
                                            }
                                            return Status::ok();
                                          }));
  BiasCorrections out;
  for (const Probe& p : probes) {
    std::vector<double>& shift = out[p.node];
    shift.resize(p.sum.size());
    for (size_t c = 0; c < p.sum.size(); ++c) shift[c] = p.count > 0 ? p.sum[c] / static_cast<double>(p.count) : 0.0;
  }
  return out;
}

Status apply_bias_corrections(ir::Graph& graph, const BiasCorrections& corrections,
                              const std::vector<std::string>& nodes) {
  if (corrections.empty()) return Status::ok();
  for (const std::string& name : nodes) {
    auto it = corrections.find(name);
    if (it == corrections.end()) continue;
    ir::Node* n = graph.find_node(name);
    if (n == nullptr) return not_found("bias correction: no layer '{}'", name);
    COMPRESS_ASSIGN_OR_RETURN(std::vector<double> bias, bias_of(*n));
    if (bias.size() != it->second.size()) {
      return invalid_argument("bias correction: layer '{}' has {} channels, the correction {}", name, bias.size(),
                              it->second.size());
    }
    for (size_t c = 0; c < bias.size(); ++c) bias[c] += it->second[c];
    COMPRESS_RETURN_IF_ERROR(set_bias(graph, n, bias, ".corrected"));
  }
  graph.remove_unused_constants();
  return Status::ok();
}

Expected<pass::PassResult> BiasCorrectionPass::run(ir::Graph& graph, pass::PassContext& context) {
  pass::PassResult result;
  std::vector<std::string> nodes = quantizable_nodes(graph);
  for (const std::string& keep : options_.keep_f32) {
    auto it = std::find(nodes.begin(), nodes.end(), keep);
    if (it == nodes.end()) {
      return invalid_argument("quant.bias_correction: keep_f32 names '{}', which is not a quantizable layer", keep);
    }
    nodes.erase(it);
  }
  if (nodes.empty()) {
    log_warning("quant.bias_correction: no conv2d/linear with constant f32 weights; nothing to correct");
    return result;
  }
  if (context.calibration == nullptr) return invalid_argument("quant.bias_correction needs calibration data (none was given)");
  CalibrationOptions copts;
  copts.samples = options_.samples;
  copts.batch = options_.batch;
  copts.backend = options_.calibration_backend;
  copts.progress = context.progress;
  COMPRESS_ASSIGN_OR_RETURN(BiasCorrections corrections,
                            measure_bias_corrections(graph, nodes, *context.calibration, copts, options_.weight_granularity,
                                                     options_.weight_bits));
  COMPRESS_RETURN_IF_ERROR(apply_bias_corrections(graph, corrections, nodes));
  for (const auto& [layer, shift] : corrections) {
    double max_shift = 0.0;
    for (double v : shift) max_shift = std::max(max_shift, std::fabs(v));
    result.layers[layer]["bias_correction_max"] = max_shift;
  }
  result.counters["corrected_layers"] = static_cast<double>(corrections.size());
  result.changed = true;
  return result;
}

Expected<BiasCorrectionPass::Options> BiasCorrectionPass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, 1 << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  COMPRESS_ASSIGN_OR_RETURN(o.keep_f32, options.string_list("keep_f32"));
  COMPRESS_ASSIGN_OR_RETURN(std::string granularity,
                            options.string("weight_granularity", "per_channel", {"per_channel", "per_tensor"}));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_granularity, parse_weight_granularity(granularity));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_bits, options.integer("weight_bits", o.weight_bits, 7, 8));
  return o;
}

}  // namespace compress::quant
