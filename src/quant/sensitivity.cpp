// Per-layer sensitivity and the max_drop search (Note [Mixed precision under max_drop]).
#include "compress/quant/sensitivity.h"

#include <algorithm>

#include "compress/quant/layer_plan.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"

namespace compress::quant {

Expected<double> metric_quantized(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                  const CalibrationResult& calibration, bool fake_quant, const Metric& metric,
                                  const BiasCorrections* corrections, const PlanOptions& plan) {
  ir::Graph candidate = graph.clone();
  if (corrections != nullptr) COMPRESS_RETURN_IF_ERROR(apply_bias_corrections(candidate, *corrections, nodes));
  if (!nodes.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerQuant> layers, plan_layers(candidate, nodes, calibration, plan));
    if (fake_quant) {
      COMPRESS_RETURN_IF_ERROR(convert_to_fake_quant(candidate, layers));
    } else {
      COMPRESS_RETURN_IF_ERROR(convert_to_int8(candidate, layers));
    }
  }
  return metric(candidate);
}

Expected<std::vector<LayerSensitivity>> layer_sensitivity(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                          const CalibrationResult& calibration, bool fake_quant,
                                                          const Metric& metric, double baseline,
                                                          const BiasCorrections* corrections, const PlanOptions& plan) {
  std::vector<LayerSensitivity> out;
  for (const std::string& node : nodes) {
    COMPRESS_ASSIGN_OR_RETURN(double m, metric_quantized(graph, {node}, calibration, fake_quant, metric, corrections, plan));
    out.push_back(LayerSensitivity{node, m, baseline - m});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.drop > b.drop; });
  return out;
}

Expected<MixedPrecisionChoice> choose_f32_layers(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                                 const CalibrationResult& calibration, bool fake_quant,
                                                 const Metric& metric, double max_drop,
                                                 const BiasCorrections* corrections, const PlanOptions& plan) {
  MixedPrecisionChoice choice;
  COMPRESS_ASSIGN_OR_RETURN(choice.baseline, metric(graph));
  COMPRESS_ASSIGN_OR_RETURN(choice.final_metric, metric_quantized(graph, nodes, calibration, fake_quant, metric, corrections, plan));
  log_info("max_drop: f32 {:.4f}, all {} layers quantized {:.4f}", choice.baseline, nodes.size(), choice.final_metric);
  if (choice.baseline - choice.final_metric <= max_drop) return choice;
  COMPRESS_ASSIGN_OR_RETURN(choice.sensitivity,
                            layer_sensitivity(graph, nodes, calibration, fake_quant, metric, choice.baseline, corrections, plan));
  std::vector<std::string> quantized = nodes;
  for (const LayerSensitivity& s : choice.sensitivity) {
    quantized.erase(std::find(quantized.begin(), quantized.end(), s.node));
    choice.keep_f32.push_back(s.node);
    if (quantized.empty()) {
      choice.final_metric = choice.baseline;
      break;
    }
    COMPRESS_ASSIGN_OR_RETURN(choice.final_metric, metric_quantized(graph, quantized, calibration, fake_quant, metric, corrections, plan));
    log_info("max_drop: {} kept in f32 -> {:.4f}", s.node, choice.final_metric);
    if (choice.baseline - choice.final_metric <= max_drop) break;
  }
  return choice;
}

Expected<pass::PassResult> SensitivityPass::run(ir::Graph& graph, pass::PassContext& context) {
  pass::PassResult result;
  if (!context.metric) {
    return invalid_argument("quant.sensitivity needs a metric (evaluation data in the recipe); none was given");
  }
  const std::vector<std::string> nodes = quantizable_nodes(graph);
  if (nodes.empty()) {
    log_warning("quant.sensitivity: no conv2d/linear with constant f32 weights; nothing to measure");
    return result;
  }
  if (context.calibration == nullptr) return invalid_argument("quant.sensitivity needs calibration data (none was given)");
  CalibrationOptions copts;
  copts.observer = options_.observer;
  copts.observer_options.momentum = options_.momentum;
  copts.samples = options_.samples;
  copts.batch = options_.batch;
  copts.backend = options_.calibration_backend;
  copts.progress = context.progress;
  COMPRESS_ASSIGN_OR_RETURN(CalibrationResult calib,
                            calibrate(graph, values_to_observe(graph, nodes), *context.calibration, copts));
  COMPRESS_ASSIGN_OR_RETURN(double baseline, context.metric(graph));
  PlanOptions plan;
  plan.weight_granularity = options_.weight_granularity;
  plan.weight_bits = options_.weight_bits;
  COMPRESS_ASSIGN_OR_RETURN(std::vector<LayerSensitivity> sens,
                            layer_sensitivity(graph, nodes, calib, options_.fake_quant, context.metric, baseline,
                                              nullptr, plan));
  for (size_t rank = 0; rank < sens.size(); ++rank) {
    auto& s = result.layers[sens[rank].node];
    s["sensitivity_drop"] = sens[rank].drop;
    s["metric_quantized_alone"] = sens[rank].metric;
    s["sensitivity_rank"] = static_cast<double>(rank + 1);
    log_info("quant.sensitivity: {} {}: drop {:.4f} ({:.4f} with only it quantized)", rank + 1, sens[rank].node,
             sens[rank].drop, sens[rank].metric);
  }
  result.counters["baseline"] = baseline;
  result.counters["layers"] = static_cast<double>(sens.size());
  return result;
}

Expected<SensitivityPass::Options> SensitivityPass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.observer, options.string("observer", o.observer, observer_names()));
  COMPRESS_ASSIGN_OR_RETURN(o.momentum, options.number("momentum", o.momentum, pass::Range::half_open(0.0, 1.0)));
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, 1 << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  COMPRESS_ASSIGN_OR_RETURN(o.fake_quant, options.boolean("fake_quant", o.fake_quant));
  COMPRESS_ASSIGN_OR_RETURN(std::string granularity,
                            options.string("weight_granularity", "per_channel", {"per_channel", "per_tensor"}));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_granularity, parse_weight_granularity(granularity));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_bits, options.integer("weight_bits", o.weight_bits, 7, 8));
  return o;
}

}  // namespace compress::quant
