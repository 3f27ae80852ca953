// `ctk run recipe.yaml`: load the model, run the recipe's stages, save the result, write the report.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/io/files.h"
#include "compress/pass/pass_manager.h"
#include "compress/pass/recipe.h"
#include "compress/support/logging.h"
#include "compress/support/threads.h"
#include "backend_choice.h"
#include "model_loading.h"
#include "pass_registry.h"
#include "report_runner.h"

namespace compress::cli {

const CommandDoc kRunDoc = {
    "run",
    "run a compression recipe (YAML): stages, output model, report",
    "ctk run RECIPE.yaml [--model M] [--out O] [--report-dir DIR] [--check]",
    "Loads the recipe, checks every stage's pass name and options, opens the\n"
    "model and the datasets, runs the stages in order (the graph is verified\n"
    "after each), writes the output .cmf atomically and, when the recipe has a\n"
    "report: block, measures the original and the compressed model side by\n"
    "side (see ctk report). Errors in the recipe name its file, line and key,\n"
    "and nothing is written. --model/--out/--report-dir override the recipe;\n"
    "--check stops after validating the recipe, the model and the data.\n"
    "The format is in docs/recipes.md; examples/recipes/ has working recipes.",
    "  ctk run examples/recipes/fashion_ptq.yaml\n"
    "  ctk run examples/recipes/fashion_ptq.yaml --model my.cmf --out my_int8.cmf --report-dir report/\n"
    "  ctk run recipe.yaml --check\n",
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

int run_run(const std::vector<std::string>& args) {
  CommandLine cl(kRunDoc);
  cl.options().add_options()
      ("model,m", po::value<std::string>()->value_name("PATH"), "model to compress (overrides the recipe's model:)")
      ("out,o", po::value<std::string>()->value_name("PATH"), "output .cmf (overrides the recipe's output:)")
      ("report-dir", po::value<std::string>()->value_name("DIR"), "report folder (overrides report.out)")
      ("check", po::bool_switch(), "validate recipe, model and data, then stop");
  cl.add_positional("recipe");
  if (!cl.parse(args)) return kExitOk;
  const std::string recipe_path = cl.required_positional("recipe", "RECIPE.yaml");

  Expected<pass::Recipe> loaded = pass::load_recipe(recipe_path);
  if (!loaded.has_value()) return report_failure(kRunDoc, loaded.status());
  pass::Recipe recipe = std::move(*loaded);
  if (cl.has("model")) recipe.model = cl.vm()["model"].as<std::string>();
  if (cl.has("out")) recipe.output = cl.vm()["out"].as<std::string>();
  if (cl.has("report-dir")) {
    if (!recipe.report) cl.usage_error("--report-dir given but the recipe has no report: block");
    recipe.report->out_dir = cl.vm()["report-dir"].as<std::string>();
  }
  if (recipe.model.empty()) {
    return report_failure(kRunDoc, invalid_argument("{}: no model: give 'model:' in the recipe or --model", recipe.file));
  }
  if (recipe.output.empty()) {
    return report_failure(kRunDoc, invalid_argument("{}: no output: give 'output:' in the recipe or --out", recipe.file));
  }
  if (recipe.threads > 0 && !cl.has("threads")) set_num_threads(recipe.threads);

  Expected<pass::PassRegistry> registry = make_pass_registry();
  if (!registry.has_value()) return report_failure(kRunDoc, registry.status());
  auto passes = pass::create_passes(recipe, *registry);
  if (!passes.has_value()) return report_failure(kRunDoc, passes.status());
  const Status needs = pass::check_stage_needs(recipe, *passes);
  if (!needs.is_ok()) return report_failure(kRunDoc, needs);
  // Destinations before any work (Note [Inputs and destinations]): a run
  // must not fail after its stages, nor replace its own model.
  const std::string output_what = cl.has("out") ? "--out" : recipe.file + ": output:";
  require_cmf_destination(cl, recipe.output, output_what);
  const Status output_ok = check_destination(cl, recipe.output, {recipe.model}, output_what);
  if (!output_ok.is_ok()) return report_failure(kRunDoc, output_ok);
  if (recipe.report) {
    const Status report_ok = io::check_output_folder(
        recipe.report->out_dir, cl.has("report-dir") ? std::string("--report-dir") : recipe.file + ": report.out");
    if (!report_ok.is_ok()) return report_failure(kRunDoc, report_ok);
  }

  Expected<ir::Graph> graph = load_model(recipe.model);
  if (!graph.has_value()) return report_failure(kRunDoc, graph.status().with_context(recipe.file + ": model"));
  const ir::Graph original = graph->clone();
  std::unique_ptr<eval::DataSource> calibration, training, evaluation;
  for (auto [spec, slot] : {std::pair{&recipe.calibration, &calibration}, std::pair{&recipe.training, &training},
                            std::pair{&recipe.evaluation, &evaluation}}) {
    if (!spec->has_value()) continue;
    auto opened = open_recipe_data(**spec);
    if (!opened.has_value()) return report_failure(kRunDoc, opened.status());
    *slot = std::move(*opened);
  }
  if (cl.vm()["check"].as<bool>()) {
    std::cout << fmt::format("{}: ok: {} stages ({}), model {} ({} nodes)\n", recipe.file, recipe.stages.size(),
                             [&] {
                               std::string names;
                               for (const auto& s : recipe.stages) names += (names.empty() ? "" : ", ") + s.pass;
                               return names;
                             }(),
                             recipe.model, graph->nodes().size());
    return kExitOk;
  }

  pass::PassContext context;
  context.calibration = calibration.get();
  context.training = training.get();
  context.reference_model = &original;
  context.rng.seed(recipe.seed);
  context.threads = num_threads();
  context.progress = !cl.vm()["quiet"].as<bool>();
  // The metric scores candidates on the evaluation data with the fast backend.
  std::unique_ptr<runtime::Backend> metric_backend;
  if (evaluation) {
    auto made = make_cli_backend(recipe.report ? recipe.report->backend : "onednn", "f32");
    if (!made.has_value()) made = make_cli_backend("reference", "f32");
    if (!made.has_value()) return report_failure(kRunDoc, made.status());
    metric_backend = std::move(*made);
    context.metric = [&](const ir::Graph& candidate) -> Expected<double> {
      COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecutionPlan> plan, metric_backend->compile(candidate));
      COMPRESS_ASSIGN_OR_RETURN(eval::AccuracyResult acc, eval::evaluate_top1(*plan, *evaluation, 256, false));
      return acc.top1();
    };
  }

  pass::PassManager pipeline;
  for (auto& p : *passes) pipeline.add(std::move(p));
  auto results = pipeline.run(*graph, context);
  if (!results.has_value()) return report_failure(kRunDoc, results.status().with_context(recipe.file));
  for (size_t i = 0; i < results->size(); ++i) {
    const auto& [name, result] = (*results)[i];
    std::string counters;
    for (const auto& [key, value] : result.counters) counters += fmt::format("{}{} {:g}", counters.empty() ? "" : ", ", key, value);
    std::cout << fmt::format("stage {}/{} {}: {}{}{}\n", i + 1, results->size(), name,
                             result.changed ? "changed the model" : "no change", counters.empty() ? "" : "; ",
                             counters);
  }
  Status saved = io::save_cmf(*graph, recipe.output);
  if (!saved.is_ok()) return report_failure(kRunDoc, saved);
  std::cout << fmt::format("wrote {}\n", recipe.output);

  if (recipe.report) {
    ReportRunOptions options;
    options.backend = recipe.report->backend;
    options.out_dir = recipe.report->out_dir;
    options.measure.batch_sizes = recipe.report->batch_sizes;
    options.measure.latency.min_time_s = recipe.report->min_time_s;
    options.measure.progress = context.progress;
    const std::vector<ReportVariantInput> variants = {
        {recipe.report->baseline_name, recipe.model, &original},
        {recipe.report->variant_name, recipe.output, &*graph},
    };
    auto report = cli::run_report(variants, evaluation.get(), options);
    if (!report.has_value()) return report_failure(kRunDoc, report.status().with_context(recipe.file));
  }
  return kExitOk;
}

}  // namespace compress::cli
