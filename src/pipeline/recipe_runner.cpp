// The recipe executor: validation before work, the stages through the PassManager, the output and the report.
#include "compress/pipeline/recipe_runner.h"

#include <fmt/format.h>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/io/files.h"
#include "compress/pipeline/registry.h"
#include "compress/pipeline/report_runner.h"
#include "compress/runtime/backend.h"
#include "compress/support/threads.h"

namespace compress::pipeline {

// Owned by RecipeRun through a pointer, so that the PassContext's pointers
// into it (data sources, the original model, the metric's backend) stay
// valid when the RecipeRun moves.
struct RecipeRun::State {
  pass::Recipe recipe;
  RecipeRunOptions options;
  ir::Graph original;
  ir::Graph graph;
  std::unique_ptr<eval::DataSource> calibration, training, evaluation;
  std::vector<std::unique_ptr<pass::Pass>> passes;  // moved into the PassManager by run_stages()
  std::unique_ptr<runtime::Backend> metric_backend;
  pass::PassContext context;
  bool ran = false;
};

namespace {

Expected<std::unique_ptr<eval::DataSource>> open_recipe_data(const pass::RecipeData& data) {
  eval::DatasetOptions options;
  options.normalization = {data.mean, data.std};
  options.limit = data.samples;
  auto opened = eval::open_dataset(data.spec, options);
  if (!opened.has_value()) return opened.status().with_context(data.where);
  return opened;
}

}  // namespace

RecipeRun::RecipeRun(std::unique_ptr<State> state) : state_(std::move(state)) {}
RecipeRun::RecipeRun(RecipeRun&&) noexcept = default;
RecipeRun& RecipeRun::operator=(RecipeRun&&) noexcept = default;
RecipeRun::~RecipeRun() = default;

const pass::Recipe& RecipeRun::recipe() const { return state_->recipe; }
const ir::Graph& RecipeRun::original() const { return state_->original; }
const ir::Graph& RecipeRun::graph() const { return state_->graph; }

Expected<RecipeRun> RecipeRun::prepare(pass::Recipe recipe, const RecipeRunOptions& options) {
  auto state = std::make_unique<State>();
  const std::string& file = recipe.file;
  if (recipe.model.empty()) return invalid_argument("{}: no model: give 'model:' in the recipe", file);
  if (recipe.output.empty()) return invalid_argument("{}: no output: give 'output:' in the recipe", file);
  if (options.use_recipe_threads && recipe.threads > 0) set_num_threads(recipe.threads);

  COMPRESS_ASSIGN_OR_RETURN(pass::PassRegistry registry, make_pass_registry());
  COMPRESS_ASSIGN_OR_RETURN(state->passes, pass::create_passes(recipe, registry));
  COMPRESS_RETURN_IF_ERROR(pass::check_stage_needs(recipe, state->passes));
  {
    // The instrumentation selectors must name stages of this recipe.
    std::vector<std::string> names;
    for (const auto& p : state->passes) names.push_back(p->name());
    const Status selectors = pass::check_instrumentation(options.instrument, names);
    if (!selectors.is_ok()) return selectors.with_context(file);
  }
  // Destinations before any work (Note [Inputs and destinations]): a run
  // must not fail after its stages, nor replace its own model.
  COMPRESS_RETURN_IF_ERROR(check_cmf_destination(recipe.output, file + ": output:"));
  COMPRESS_RETURN_IF_ERROR(io::check_output_file(recipe.output, {recipe.model}, file + ": output:"));
  if (recipe.report) COMPRESS_RETURN_IF_ERROR(io::check_output_folder(recipe.report->out_dir, file + ": report.out"));

  Expected<ir::Graph> loaded = load_model(recipe.model, options.model);
  if (!loaded.has_value()) return loaded.status().with_context(file + ": model");
  state->graph = std::move(*loaded);
  state->original = state->graph.clone();
  for (auto [spec, slot] : {std::pair{&recipe.calibration, &state->calibration},
                            std::pair{&recipe.training, &state->training},
                            std::pair{&recipe.evaluation, &state->evaluation}}) {
    if (!spec->has_value()) continue;
    COMPRESS_ASSIGN_OR_RETURN(*slot, open_recipe_data(**spec));
  }

  pass::PassContext& context = state->context;
  context.calibration = state->calibration.get();
  context.training = state->training.get();
  context.reference_model = &state->original;
  context.rng.seed(recipe.seed);
  context.threads = num_threads();
  context.progress = options.progress;
  // Model paths in stage options resolve like the recipe's own paths.
  context.load_model = [file = recipe.file](const std::string& path) -> Expected<ir::Graph> {
    return load_model(pass::resolve_recipe_path(file, path));
  };
  // The metric scores candidates on the evaluation data with the fast
  // backend (the report's), or the reference one where that is not built.
  if (state->evaluation) {
    auto made = runtime::make_backend(recipe.report ? recipe.report->backend : "onednn");
    if (!made.has_value()) made = runtime::make_backend("reference");
    if (!made.has_value()) return made.status();
    state->metric_backend = std::move(*made);
    State* s = state.get();
    context.metric = [s](const ir::Graph& candidate) -> Expected<double> {
      COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecutionPlan> plan, s->metric_backend->compile(candidate));
      COMPRESS_ASSIGN_OR_RETURN(eval::AccuracyResult acc, eval::evaluate_top1(*plan, *s->evaluation, 256, false));
      return acc.top1();
    };
  }
  state->recipe = std::move(recipe);
  state->options = options;
  return RecipeRun(std::move(state));
}

Expected<std::vector<pass::StageResult>> RecipeRun::run_stages() {
  if (state_->ran) return invalid_argument("{}: run_stages() was called twice; prepare the recipe again", state_->recipe.file);
  state_->ran = true;
  pass::PassManager manager;
  manager.set_instrumentation(state_->options.instrument);
  for (auto& p : state_->passes) manager.add(std::move(p));
  auto results = manager.run(state_->graph, state_->context);
  if (!results.has_value()) return results.status().with_context(state_->recipe.file);
  return results;
}

Status RecipeRun::save_output() const { return io::save_cmf(state_->graph, state_->recipe.output); }

Expected<eval::Report> RecipeRun::write_report() const {
  const pass::Recipe& recipe = state_->recipe;
  if (!recipe.report) return invalid_argument("{}: the recipe has no report: block", recipe.file);
  ReportRunOptions options;
  options.backend = recipe.report->backend;
  options.out_dir = recipe.report->out_dir;
  options.measure.batch_sizes = recipe.report->batch_sizes;
  options.measure.latency.min_time_s = recipe.report->min_time_s;
  options.measure.progress = state_->options.progress;
  const std::vector<ReportVariantInput> variants = {
      {recipe.report->baseline_name, recipe.model, &state_->original},
      {recipe.report->variant_name, recipe.output, &state_->graph},
  };
  auto report = run_report(variants, state_->evaluation.get(), options);
  if (!report.has_value()) return report.status().with_context(recipe.file);
  return report;
}

Expected<RecipeOutcome> run_recipe(pass::Recipe recipe, const RecipeRunOptions& options) {
  COMPRESS_ASSIGN_OR_RETURN(RecipeRun run, RecipeRun::prepare(std::move(recipe), options));
  RecipeOutcome outcome;
  COMPRESS_ASSIGN_OR_RETURN(outcome.stages, run.run_stages());
  COMPRESS_RETURN_IF_ERROR(run.save_output());
  if (run.recipe().report) {
    COMPRESS_ASSIGN_OR_RETURN(eval::Report report, run.write_report());
    outcome.report = std::move(report);
  }
  outcome.graph = run.graph().clone();
  return outcome;
}

}  // namespace compress::pipeline
