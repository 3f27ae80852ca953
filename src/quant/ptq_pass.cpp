// quant.ptq: calibrate, plan, convert.
#include "compress/quant/ptq_pass.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "compress/pass/pass_manager.h"
#include "compress/quant/bias_correction_pass.h"
#include "compress/quant/calibration.h"
#include "compress/quant/cle_pass.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/observed_ranges.h"
#include "compress/quant/sensitivity.h"
#include "compress/quant/smoothquant_pass.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/transforms/fold_batch_norm.h"

namespace compress::quant {
namespace {

// Note [No NaN in the output]
// What quant.ptq writes is finite by construction: scales are positive and
// finite (Note [Scale fallbacks]), non-finite calibration values are skipped
// (Note [Non-finite calibration values]), observed ranges are finite. What it
// copies from the f32 model is checked here: a quantized layer's weights
// (also checked by weight_params) and bias must be finite, otherwise the
// pass fails naming the layer and channel rather than write the NaN on.
Status check_finite_parameters(const ir::Graph& graph, const std::vector<std::string>& nodes) {
  for (const std::string& name : nodes) {
    const ir::Node* n = graph.find_node(name);
    for (size_t i = 1; i < n->num_inputs(); ++i) {
      COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor t, n->input(i)->constant().dense_f32(n->input(i)->name()));
      const int64_t per_channel = t.numel() / std::max<int64_t>(1, t.dim(0));
      const float* values = t.data<float>();
      for (int64_t k = 0; k < t.numel(); ++k) {
        if (!std::isfinite(values[k])) {
          return invalid_argument("quant.ptq: {} of layer '{}' has a non-finite value ({}) in channel {}",
                                  i == 1 ? "the weight" : "the bias", name, values[k], k / per_channel);
        }
      }
    }
  }
  return Status::ok();
}

}  // namespace

Expected<pass::PassResult> PtqPass::run(ir::Graph& graph, pass::PassContext& context) {
  pass::PassResult result;
  std::vector<std::string> nodes = quantizable_nodes(graph);
  for (const std::string& keep : options_.keep_f32) {
    auto it = std::find(nodes.begin(), nodes.end(), keep);
    if (it == nodes.end()) return invalid_argument("quant.ptq: keep_f32 names '{}', which is not a quantizable layer", keep);
    nodes.erase(it);
  }
  if (nodes.empty()) {
    log_warning("quant.ptq: the graph has no conv2d/linear with constant f32 weights; nothing to quantize");
    return result;
  }
  if (context.calibration == nullptr) return invalid_argument("quant.ptq needs calibration data (none was given)");
  COMPRESS_RETURN_IF_ERROR(check_finite_parameters(graph, nodes));
  CalibrationOptions copts;
  copts.observer = options_.observer;
  copts.observer_options.momentum = options_.momentum;
  copts.observer_options.percentile = options_.percentile;
  copts.samples = options_.samples;
  copts.batch = options_.batch;
  copts.backend = options_.calibration_backend;
  copts.progress = context.progress;
  // Note [Empirical bias correction]: measured on the f32 graph, applied
  // only to the layers finally quantized (max_drop may keep some in f32).
  PlanOptions plan;
  plan.weight_granularity = options_.weight_granularity;
  plan.weight_bits = options_.weight_bits;
  BiasCorrections corrections;
  if (options_.bias_correction) {
    COMPRESS_ASSIGN_OR_RETURN(corrections, measure_bias_corrections(graph, nodes, *context.calibration, copts,
                                                                              options_.weight_granularity,
                                                                              options_.weight_bits));
    for (const auto& [layer, shift] : corrections) {
      double max_shift = 0.0;
      for (double v : shift) max_shift = std::max(max_shift, std::fabs(v));
      result.layers[layer]["bias_correction_max"] = max_shift;
    }
  }
  // Calibration observes the graph with the biases the quantized layers will have.
  ir::Graph corrected = graph.clone();
  COMPRESS_RETURN_IF_ERROR(apply_bias_corrections(corrected, corrections, nodes));
  COMPRESS_ASSIGN_OR_RETURN(CalibrationResult calib,
                            calibrate(corrected, values_to_observe(corrected, nodes), *context.calibration, copts));
  if (options_.max_drop) {
    if (!context.metric) {
      return invalid_argument("quant.ptq: max_drop needs a metric (evaluation data in the recipe); none was given");
    }
    COMPRESS_ASSIGN_OR_RETURN(MixedPrecisionChoice choice,
                              choose_f32_layers(graph, nodes, calib, options_.fake_quant, context.metric,
                                                *options_.max_drop, &corrections, plan));
    for (const LayerSensitivity& s : choice.sensitivity) {
      result.layers[s.node]["sensitivity_drop"] = s.drop;
    }
    for (const std::string& kept : choice.keep_f32) {
      result.layers[kept]["kept_f32"] = 1.0;
      nodes.erase(std::find(nodes.begin(), nodes.end(), kept));
    }
    result.counters["metric_f32"] = choice.baseline;
    result.counters["metric_quantized"] = choice.final_metric;
    result.counters["kept_f32"] = static_cast<double>(choice.keep_f32.size());
    if (!choice.keep_f32.empty()) {
      log_warning("quant.ptq: max_drop {} kept {} layer(s) in f32 ({}): metric {:.4f} -> {:.4f}", *options_.max_drop,
                  choice.keep_f32.size(), fmt::join(choice.keep_f32, ", "), choice.baseline, choice.final_metric);
    }
  }
  COMPRESS_RETURN_IF_ERROR(apply_bias_corrections(graph, corrections, nodes));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerQuant> layers, plan_layers(graph, nodes, calib, plan));
  if (options_.fake_quant) {
    COMPRESS_RETURN_IF_ERROR(convert_to_fake_quant(graph, layers));
  } else {
    COMPRESS_RETURN_IF_ERROR(convert_to_int8(graph, layers));
  }
  // After the conversion, whose cleanup would drop them (Note [Observed ranges in the model]).
  COMPRESS_RETURN_IF_ERROR(store_observed_ranges(graph, calib.ranges));
  for (const LayerQuant& l : layers) {
    auto& s = result.layers[l.node];
    const auto& ws = l.weight_params.scales();
    s["input_scale"] = l.input_params.scales()[0];
    s["input_zero_point"] = l.input_params.zero_points()[0];
    s["weight_scale_min"] = *std::min_element(ws.begin(), ws.end());
    s["weight_scale_max"] = *std::max_element(ws.begin(), ws.end());
    s["relu_fused"] = l.relu.empty() ? 0.0 : 1.0;
    if (l.output_params) s["output_scale"] = l.output_params->scales()[0];
  }
  result.counters["quantized_layers"] = static_cast<double>(layers.size());
  result.counters["calibration_samples"] = static_cast<double>(calib.samples);
  result.changed = true;
  return result;
}

Expected<PtqPass::Options> PtqPass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.observer, options.string("observer", o.observer, observer_names()));
  COMPRESS_ASSIGN_OR_RETURN(o.momentum, options.number("momentum", o.momentum, pass::Range::half_open(0.0, 1.0)));
  COMPRESS_ASSIGN_OR_RETURN(o.percentile, options.number("percentile", o.percentile, {50.0, 100.0, true, false}));
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, 1 << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  COMPRESS_ASSIGN_OR_RETURN(o.fake_quant, options.boolean("fake_quant", o.fake_quant));
  COMPRESS_ASSIGN_OR_RETURN(o.keep_f32, options.string_list("keep_f32"));
  COMPRESS_ASSIGN_OR_RETURN(o.bias_correction, options.boolean("bias_correction", o.bias_correction));
  if (options.has("max_drop")) {
    COMPRESS_ASSIGN_OR_RETURN(double d, options.number("max_drop", 0.0, pass::Range::at_least(0.0)));
    o.max_drop = d;
  }
  COMPRESS_ASSIGN_OR_RETURN(std::string granularity,
                            options.string("weight_granularity", "per_channel", {"per_channel", "per_tensor"}));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_granularity, parse_weight_granularity(granularity));
  COMPRESS_ASSIGN_OR_RETURN(int64_t bits, options.integer("bits", 8, 2, 16));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_bits, options.integer("weight_bits", bits, 2, 16));
  COMPRESS_ASSIGN_OR_RETURN(o.activation_bits, options.integer("activation_bits", bits, 2, 16));
  // Note [int8 and bf16 by CPU ISA] (runtime/onednn.h): 7-bit weights are
  // what oneDNN's int8 kernels sum exactly on CPUs without VNNI.
  if (o.weight_bits != 8 && o.weight_bits != 7) {
    return unsupported("{}: {} bits: quant.ptq produces 8-bit or 7-bit weights (lower bits: quant.qat)",
                       options.where(options.has("weight_bits") ? "weight_bits" : "bits"), o.weight_bits);
  }
  if (o.activation_bits != 8) {
    return unsupported("{}: {} bits: quant.ptq produces 8-bit activations only in this version",
                       options.where(options.has("activation_bits") ? "activation_bits" : "bits"), o.activation_bits);
  }
  return o;
}

Expected<pass::PassResult> quantize_ptq(ir::Graph& graph, const eval::DataSource& data, const PtqPass::Options& options,
                                        pass::PassContext context) {
  pass::PassManager pipeline;
  pipeline.add(std::make_unique<transforms::FoldBatchNormPass>());
  pipeline.add(std::make_unique<PtqPass>(options));
  context.calibration = &data;
  COMPRESS_ASSIGN_OR_RETURN(auto results, pipeline.run(graph, context));
  return std::move(results.back().result);
}

Status register_quant_passes(pass::PassRegistry& registry) {
  COMPRESS_RETURN_IF_ERROR(registry.add<CrossLayerEqualizationPass>("quant.cle"));
  COMPRESS_RETURN_IF_ERROR(registry.add<BiasCorrectionPass>("quant.bias_correction"));
  COMPRESS_RETURN_IF_ERROR(registry.add<SmoothQuantPass>("quant.smoothquant"));
  COMPRESS_RETURN_IF_ERROR(registry.add<SensitivityPass>("quant.sensitivity"));
  return registry.add<PtqPass>("quant.ptq");
}

}  // namespace compress::quant
