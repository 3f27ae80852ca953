// quant.qat: prepare, train through torch::Trainer (CE + logit KD from the original model), convert.
#include "compress/quant/qat_pass.h"

#include <ATen/ATen.h>

#include <cmath>
#include <memory>

#include "compress/distill/distiller.h"
#include "compress/distill/training_data.h"
#include "compress/eval/dataset.h"
#include "compress/quant/observer.h"
#include "compress/quant/qat_model.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/torch/trainer.h"

namespace compress::quant {

Expected<QatMethod> parse_qat_method(const std::string& name) {
  if (name == "lsq") return QatMethod::kLsq;
  if (name == "lsq+") return QatMethod::kLsqPlus;
  if (name == "pact") return QatMethod::kPact;
  if (name == "ste") return QatMethod::kSte;
  return invalid_argument("quant.qat: method must be lsq, lsq+, pact or ste, got '{}'", name);
}

const char* qat_method_name(QatMethod method) {
  switch (method) {
    case QatMethod::kLsq: return "lsq";
    case QatMethod::kLsqPlus: return "lsq+";
    case QatMethod::kPact: return "pact";
    case QatMethod::kSte: return "ste";
  }
  return "?";
}

Status check_qat_options(const QatOptions& o) {
  auto check_bits = [](const char* what, int64_t bits, int64_t lo) -> Status {
    if (bits < lo || bits > 8) {
      return invalid_argument("quant.qat: {} must be in [{}, 8], got {}", what, lo, bits);
    }
    return Status::ok();
  };
  COMPRESS_RETURN_IF_ERROR(check_bits("weight_bits", o.weight_bits, 2));
  COMPRESS_RETURN_IF_ERROR(check_bits("activation_bits", o.activation_bits, 4));
  for (const auto& [pattern, bits] : o.layer_bits) {
    if (bits < 4 || bits > 8) {
      return invalid_argument("quant.qat: layer_bits '{}': bits must be in [4, 8] (they set the layer's weights and "
                              "activations), got {}",
                              pattern, bits);
    }
  }
  if (!(o.loop.lr > 0 && std::isfinite(o.loop.lr))) {
    return invalid_argument("quant.qat: lr must be a positive number, got {}", o.loop.lr);
  }
  if (!(o.scale_lr > 0 && std::isfinite(o.scale_lr))) {
    return invalid_argument("quant.qat: scale_lr must be a positive number, got {}", o.scale_lr);
  }
  if (!(o.alpha >= 0 && o.alpha <= 1)) return invalid_argument("quant.qat: alpha must be in [0, 1], got {}", o.alpha);
  if (!(o.temperature > 0 && std::isfinite(o.temperature))) {
    return invalid_argument("quant.qat: temperature must be positive, got {}", o.temperature);
  }
  if (o.weight_init != "lsq" && o.weight_init != "minmax") {
    return invalid_argument("quant.qat: weight_init must be lsq or minmax, got '{}'", o.weight_init);
  }
  if (o.calibration_samples < 1) {
    return invalid_argument("quant.qat: calibration_samples must be >= 1, got {}", o.calibration_samples);
  }
  return Status::ok();
}


Expected<pass::PassResult> QatPass::run(ir::Graph& graph, pass::PassContext& context) {
  const QatOptions& o = options_;
  COMPRESS_RETURN_IF_ERROR(check_qat_options(o));
  COMPRESS_ASSIGN_OR_RETURN(const eval::DataSource* training, distill::checked_training_data(graph, context, "quant.qat"));
  const eval::DataSource& calibration = context.calibration != nullptr ? *context.calibration : *training;
  // epochs: 0 converts the calibrated model untrained: PTQ at these widths,
  // the baseline that shows what training recovers.
  const bool train = !(o.loop.epochs == 0 && o.loop.steps == 0);
  distill::TrainingLoop loop = o.loop;
  if (!train) loop.epochs = 1;  // for the data checks of plan()
  const compress::torch::Trainer trainer(distill::trainer_options(loop, "quant.qat", context));
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainPlan plan, trainer.plan(*training));

  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<QatModel> qat, QatModel::prepare(graph, calibration, o, context.progress));
  compress::torch::LossTerms terms = {std::make_shared<compress::torch::CrossEntropyTerm>(1.0)};
  std::unique_ptr<distill::Distiller> distiller;
  if (o.kd && o.alpha > 0) {
    // The original model teaches: the recipe's reference model, else the
    // graph as it entered this pass.
    const ir::Graph& teacher_graph = context.reference_model != nullptr ? *context.reference_model : graph;
    distill::DistillerOptions d;
    d.temperature = o.temperature;
    d.alpha = o.alpha;
    d.pairs = o.pairs;
    d.balance = o.balance == "ratio" ? distill::Balance::kRatio : distill::Balance::kStatic;
    d.seed = context.rng();
    Expected<std::unique_ptr<distill::Distiller>> made = distill::Distiller::create(teacher_graph, qat->module(), d);
    if (!made.has_value()) return made.status().with_context("quant.qat");
    distiller = std::move(*made);
    terms = distiller->trainer_terms();
  } else if (!o.pairs.empty()) {
    return invalid_argument("quant.qat: pairs need distillation (kd: true and alpha > 0)");
  }
  if (o.freeze_bn_step == 0) qat->freeze_batch_norm();
  if (o.freeze_observer_step == 0) qat->freeze_observers();
  compress::torch::TrainerHooks hooks;
  hooks.before_forward = [&](const compress::torch::StepContext& step) {
    if (o.freeze_bn_step > 0 && step.step == o.freeze_bn_step) {
      qat->freeze_batch_norm();
      log_info("quant.qat: step {}: batch norm frozen (running statistics from now on)", step.step + 1);
    }
    if (o.freeze_observer_step > 0 && step.step == o.freeze_observer_step) qat->freeze_observers();
    return Status::ok();
  };
  hooks.after_step = [&](const compress::torch::StepContext& step) -> Status {
    COMPRESS_RETURN_IF_ERROR(qat->after_step(step.step));
    return Status::ok();
  };
  log_info("quant.qat: {} steps ({} epochs of {}), batch {}, {} lr {} ({}), {} W{}A{}, kd {}", plan.total_steps,
           plan.epochs, plan.steps_per_epoch, plan.batch, o.loop.optimizer, o.loop.lr, o.loop.lr_schedule, qat_method_name(o.method),
           o.weight_bits, o.activation_bits, terms.size() > 1 ? fmt::format("alpha {} T {}", o.alpha, o.temperature) : "off");
  compress::torch::TrainResult trained;
  if (train) {
    COMPRESS_ASSIGN_OR_RETURN(trained, trainer.fit(qat->module(), *training, terms, hooks, context.rng));
  } else {
    log_info("quant.qat: epochs 0: converting the calibrated model without training");
    trained.epochs.push_back(compress::torch::EpochRecord{0, 0, 0.0, std::vector<double>(terms.size(), 0.0), 0.0});
  }
  qat->module().eval();
  COMPRESS_ASSIGN_OR_RETURN(ir::Graph converted, qat->convert());
  COMPRESS_ASSIGN_OR_RETURN(std::vector<QuantizerReport> quantizers, qat->quantizers());

  pass::PassResult result;
  for (const QuantizerReport& q : quantizers) {
    auto& s = result.layers[q.layer];
    const auto& sc = q.params.scales();
    if (q.weight) {
      s["weight_bits"] = static_cast<double>(q.bits);
      s["weight_scale_min"] = *std::min_element(sc.begin(), sc.end());
      s["weight_scale_max"] = *std::max_element(sc.begin(), sc.end());
    }
  }
  const compress::torch::EpochRecord& last = trained.epochs.back();
  result.counters["quantized_layers"] = static_cast<double>(qat->layer_names().size());
  result.counters["quantizers"] = static_cast<double>(quantizers.size());
  result.counters["weight_bits"] = static_cast<double>(o.weight_bits);
  result.counters["activation_bits"] = static_cast<double>(o.activation_bits);
  result.counters["steps"] = static_cast<double>(trained.steps);
  result.counters["epochs"] = train ? static_cast<double>(plan.epochs) : 0.0;
  result.counters["final_loss"] = last.loss;
  result.counters["final_ce"] = last.terms[0];
  if (terms.size() > 1) result.counters["final_kd"] = last.terms[1];
  result.counters["train_seconds"] = trained.seconds;
  graph = std::move(converted);
  result.changed = true;
  return result;
}

Expected<QatOptions> QatPass::parse_options(const pass::PassOptions& options) {
  QatOptions o;
  COMPRESS_ASSIGN_OR_RETURN(std::string method, options.string("method", "lsq", {"lsq", "lsq+", "pact", "ste"}));
  COMPRESS_ASSIGN_OR_RETURN(o.method, parse_qat_method(method));
  COMPRESS_ASSIGN_OR_RETURN(int64_t bits, options.integer("bits", 8, 2, 8));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_bits, options.integer("weight_bits", bits, 2, 8));
  COMPRESS_ASSIGN_OR_RETURN(o.activation_bits, options.integer("activation_bits", std::max<int64_t>(bits, 4), 4, 8));
  COMPRESS_ASSIGN_OR_RETURN(auto layer_bits, options.number_map("layer_bits", pass::Range::closed(4, 8)));
  for (const auto& [pattern, b] : layer_bits) {
    if (b != std::floor(b)) {
      return invalid_argument("{}: '{}': bits must be a whole number, got {}", options.where("layer_bits"), pattern, b);
    }
    o.layer_bits.emplace_back(pattern, static_cast<int64_t>(b));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.keep_f32, options.string_list("keep_f32"));
  COMPRESS_ASSIGN_OR_RETURN(o.observer, options.string("observer", o.observer, observer_names()));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_samples, options.integer("calibration_samples", o.calibration_samples, 1, 1 << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_batch, options.integer("calibration_batch", o.calibration_batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  COMPRESS_ASSIGN_OR_RETURN(o.weight_init, options.string("weight_init", o.weight_init, {"lsq", "minmax"}));
  COMPRESS_ASSIGN_OR_RETURN(o.loop, distill::parse_training_loop(options, o.loop, /*min_epochs=*/0));
  COMPRESS_ASSIGN_OR_RETURN(o.scale_lr, options.number("scale_lr", o.scale_lr, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(o.freeze_bn_step, options.integer("freeze_bn_step", o.freeze_bn_step, -1, int64_t{1} << 40));
  COMPRESS_ASSIGN_OR_RETURN(o.freeze_observer_step,
                            options.integer("freeze_observer_step", o.freeze_observer_step, -1, int64_t{1} << 40));
  COMPRESS_ASSIGN_OR_RETURN(o.kd, options.boolean("kd", o.kd));
  COMPRESS_ASSIGN_OR_RETURN(o.alpha, options.number("alpha", o.alpha, pass::Range::closed(0, 1)));
  COMPRESS_ASSIGN_OR_RETURN(o.temperature, options.number("temperature", o.temperature, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(o.pairs, options.string_list("pairs"));
  for (const std::string& pair : o.pairs) {
    Expected<distill::PairSpec> parsed = distill::parse_pair(pair);
    if (!parsed.has_value()) return parsed.status().with_context(options.where("pairs"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.balance, options.string("balance", o.balance, {"static", "ratio"}));
  COMPRESS_RETURN_IF_ERROR(check_qat_options(o));
  return o;
}

Status register_qat_passes(pass::PassRegistry& registry) { return registry.add<QatPass>("quant.qat"); }

}  // namespace compress::quant
