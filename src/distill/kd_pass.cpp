// distill.kd: the Distiller's loss through torch::Trainer, the student from the graph or a file (Note [distill.kd]).
#include "compress/distill/kd_pass.h"

#include <memory>

#include "compress/distill/distiller.h"
#include "compress/distill/training_data.h"
#include "compress/eval/dataset.h"
#include "compress/ir/verifier.h"
#include "compress/support/logging.h"
#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"

namespace compress::distill {
namespace {

Expected<ir::Graph> load_option_model(const pass::PassContext& context, const std::string& path, const char* key) {
  if (!context.load_model) {
    return invalid_argument(
        "distill.kd: '{}: {}' names a model file, and this caller cannot load models (run it "
        "through a recipe or ctk distill)",
        key, path);
  }
  Expected<ir::Graph> graph = context.load_model(path);
  if (!graph.has_value()) return graph.status().with_context(fmt::format("distill.kd: {}", key));
  return graph;
}

}  // namespace

Expected<pass::PassResult> KdPass::run(ir::Graph& graph, pass::PassContext& context) {
  const Options& o = options_;
  ir::Graph teacher_file;
  const ir::Graph* teacher = context.reference_model;
  if (!o.teacher.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(teacher_file, load_option_model(context, o.teacher, "teacher"));
    teacher = &teacher_file;
  }
  if (teacher == nullptr) {
    return invalid_argument(
        "distill.kd needs a teacher: give 'teacher: PATH', or run it in a recipe (whose original "
        "model is the default teacher)");
  }
  ir::Graph student_graph;
  if (!o.student.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(student_graph, load_option_model(context, o.student, "student"));
  }
  ir::Graph& student_ir = o.student.empty() ? graph : student_graph;
  COMPRESS_ASSIGN_OR_RETURN(const eval::DataSource* training, checked_training_data(student_ir, context, "distill.kd"));
  const eval::DataSource& data = *training;
  const compress::torch::Trainer trainer(trainer_options(o.loop, "distill.kd", context));
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainPlan plan, trainer.plan(data));

  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> student,
                            compress::torch::TrainableModel::create(student_ir));
  if (student->parameters().empty()) {
    return invalid_argument(
        "distill.kd: the student has no trainable f32 parameters (quantized? distill before "
        "conversion, or use quant.qat's own distillation)");
  }
  DistillerOptions d;
  d.temperature = o.temperature;
  d.alpha = o.alpha;
  d.logit_weight = o.logit_weight;
  d.pairs = o.pairs;
  d.balance = o.balance == "ratio" ? Balance::kRatio : Balance::kStatic;
  d.teacher_backend = o.teacher_backend;
  d.seed = context.rng();
  Expected<std::unique_ptr<Distiller>> made = Distiller::create(*teacher, *student, d);
  if (!made.has_value()) return made.status().with_context("distill.kd");
  Distiller& distiller = **made;

  std::shared_ptr<const TeacherCache> cache;
  pass::PassResult result;
  if (!o.teacher_cache.empty() && o.alpha > 0) {
    Expected<std::shared_ptr<TeacherCache>> opened = TeacherCache::open_or_build(
        o.teacher_cache, distiller.teacher(), data, plan.samples, plan.batch, context.progress);
    if (!opened.has_value()) return opened.status().with_context("distill.kd: teacher_cache");
    result.counters["teacher_cache_bytes"] = static_cast<double>((*opened)->bytes());
    result.counters["teacher_cache_reused"] = (*opened)->reused() ? 1.0 : 0.0;
    cache = *opened;
  }
  const compress::torch::LossTerms terms = distiller.trainer_terms(cache);
  log_info(
      "distill.kd: {} samples of {}, {} steps ({} epochs of {}), batch {}, {} lr {} ({}), alpha {}, T {}, teacher "
      "on {}{}",
      plan.samples, data.describe(), plan.total_steps, plan.epochs, plan.steps_per_epoch, plan.batch, o.loop.optimizer,
      o.loop.lr, o.loop.lr_schedule, o.alpha, o.temperature, cache ? "the cache" : distiller.teacher().backend(),
      o.balance == "ratio" ? ", balance ratio" : "");
  int adapters = 0;
  for (const ResolvedPair& p : distiller.pairs()) {
    log_info("distill.kd: pair {} (weight {}), adapter: {}", p.label(), p.weight, p.adapter.description());
    adapters += p.adapter.identity() ? 0 : 1;
  }
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainResult trained,
                            trainer.fit(*student, data, terms, {}, context.rng));

  student->eval();
  COMPRESS_RETURN_IF_ERROR(student->write_back());
  COMPRESS_RETURN_IF_ERROR(ir::verify(student->graph()).with_context("distill.kd: the trained student"));
  graph = std::move(student->graph());

  result.changed = trained.steps > 0;
  const compress::torch::EpochRecord& last = trained.epochs.back();
  result.counters["final_loss"] = last.loss;
  result.counters["final_ce"] = last.terms[0];
  result.counters["final_kd"] = last.terms[1];
  for (size_t i = 0; i < distiller.pairs().size(); ++i) {
    const ResolvedPair& p = distiller.pairs()[i];
    result.layers[p.student]["pair_loss"] = last.terms[2 + i];
    result.layers[p.student]["adapted"] = p.adapter.identity() ? 0.0 : 1.0;
  }
  result.counters["steps"] = static_cast<double>(trained.steps);
  result.counters["epochs"] = static_cast<double>(plan.epochs);
  result.counters["samples"] = static_cast<double>(plan.samples);
  result.counters["alpha"] = o.alpha;
  result.counters["temperature"] = o.temperature;
  result.counters["lr"] = o.loop.lr;
  result.counters["pairs"] = static_cast<double>(distiller.pairs().size());
  result.counters["adapters"] = adapters;
  result.counters["train_seconds"] = trained.seconds;
  result.counters["samples_per_second"] = trained.samples_per_second();
  return result;
}

Expected<KdPass::Options> KdPass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.loop, parse_training_loop(options, o.loop));
  COMPRESS_ASSIGN_OR_RETURN(o.teacher, options.string("teacher", ""));
  COMPRESS_ASSIGN_OR_RETURN(o.student, options.string("student", ""));
  COMPRESS_ASSIGN_OR_RETURN(o.temperature, options.number("temperature", o.temperature, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(o.alpha, options.number("alpha", o.alpha, pass::Range::closed(0, 1)));
  COMPRESS_ASSIGN_OR_RETURN(o.logit_weight, options.number("logit_weight", o.logit_weight, pass::Range::at_least(0)));
  COMPRESS_ASSIGN_OR_RETURN(o.pairs, options.string_list("pairs"));
  for (const std::string& pair : o.pairs) {
    Expected<PairSpec> parsed = parse_pair(pair);
    if (!parsed.has_value()) return parsed.status().with_context(options.where("pairs"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.balance, options.string("balance", o.balance, {"static", "ratio"}));
  COMPRESS_ASSIGN_OR_RETURN(o.teacher_backend,
                            options.string("teacher_backend", o.teacher_backend, {"auto", "onednn", "reference"}));
  COMPRESS_ASSIGN_OR_RETURN(o.teacher_cache, options.string("teacher_cache", ""));
  if (o.alpha == 0 && (options.has("pairs") || options.has("teacher_cache"))) {
    log_warning("{}: alpha 0 trains on the labels alone; the pairs and the teacher cache are not used",
                options.where("alpha"));
  }
  return o;
}

}  // namespace compress::distill
