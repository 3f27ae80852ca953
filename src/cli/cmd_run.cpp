// `ctk run recipe.yaml`: load the model, run the recipe's stages, save the result, write the report.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compress/io/files.h"
#include "compress/pass/recipe.h"
#include "compress/pipeline/recipe_runner.h"

namespace compress::cli {

const CommandDoc kRunDoc = {
    "run",
    "run a compression recipe (YAML): stages, output model, report",
    "ctk run RECIPE.yaml [--model M] [--out O] [--report-dir DIR] [--check] [--print-ir-after STAGE]\n"
    "        [--stop-after STAGE] [--time-passes]",
    "Loads the recipe, checks every stage's pass name and options, opens the\n"
    "model and the datasets, runs the stages in order (the graph is verified\n"
    "after each), writes the output .cmf atomically and, when the recipe has a\n"
    "report: block, measures the original and the compressed model side by\n"
    "side (see ctk report). Errors in the recipe name its file, line and key,\n"
    "and nothing is written. --model/--out/--report-dir override the recipe;\n"
    "--check stops after validating the recipe, the model and the data.\n"
    "--print-ir-after STAGE prints the IR after that stage (a pass name, a stage\n"
    "number, or all); --stop-after STAGE ends the stages there; --time-passes\n"
    "adds each stage's wall time.\n"
    "The format is in docs/recipes.md; examples/recipes/ has working recipes.",
    "  ctk run examples/recipes/fashion_ptq.yaml\n"
    "  ctk run examples/recipes/fashion_ptq.yaml --model my.cmf --out my_int8.cmf --report-dir report/\n"
    "  ctk run recipe.yaml --check\n"
    "  ctk run recipe.yaml --print-ir-after quant.ptq --time-passes\n",
};

int run_run(const std::vector<std::string>& args) {
  CommandLine cl(kRunDoc);
  cl.options().add_options()
      ("model,m", po::value<std::string>()->value_name("PATH"), "model to compress (overrides the recipe's model:)")
      ("out,o", po::value<std::string>()->value_name("PATH"), "output .cmf (overrides the recipe's output:)")
      ("report-dir", po::value<std::string>()->value_name("DIR"), "report folder (overrides report.out)")
      ("check", po::bool_switch(), "validate recipe, model and data, then stop")
      ("print-ir-after", po::value<std::string>()->value_name("STAGE"),
       "print the IR after a stage (its pass name or number) or after every stage (all)")
      ("stop-after", po::value<std::string>()->value_name("STAGE"),
       "run the stages up to this one (pass name or number), then save and report as usual")
      ("time-passes", po::bool_switch(), "print each stage's wall time");
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
  // The destination's usage errors (exit 2) before the library's checks:
  // a TorchScript name, or the input itself.
  const std::string output_what = cl.has("out") ? "--out" : recipe.file + ": output:";
  require_cmf_destination(cl, recipe.output, output_what);
  const Status output_ok = check_destination(cl, recipe.output, {recipe.model}, output_what);
  if (!output_ok.is_ok()) return report_failure(kRunDoc, output_ok);
  if (recipe.report && cl.has("report-dir")) {
    const Status report_ok = io::check_output_folder(recipe.report->out_dir, "--report-dir");
    if (!report_ok.is_ok()) return report_failure(kRunDoc, report_ok);
  }

  pipeline::RecipeRunOptions options;
  options.model = cl.model_options();
  options.progress = !cl.vm()["quiet"].as<bool>();
  options.use_recipe_threads = !cl.has("threads");
  if (cl.has("print-ir-after")) options.instrument.print_ir_after = cl.vm()["print-ir-after"].as<std::string>();
  if (cl.has("stop-after")) options.instrument.stop_after = cl.vm()["stop-after"].as<std::string>();
  {
    // A selector that names no stage is a bad flag value: a usage error.
    std::vector<std::string> stage_names;
    for (const auto& stage : recipe.stages) stage_names.push_back(stage.pass);
    const Status selectors = pass::check_instrumentation(options.instrument, stage_names);
    if (!selectors.is_ok()) cl.usage_error("--" + selectors.message());
  }
  Expected<pipeline::RecipeRun> run = pipeline::RecipeRun::prepare(std::move(recipe), options);
  if (!run.has_value()) return report_failure(kRunDoc, run.status());
  const pass::Recipe& prepared = run->recipe();
  if (cl.vm()["check"].as<bool>()) {
    std::string names;
    for (const auto& s : prepared.stages) names += (names.empty() ? "" : ", ") + s.pass;
    std::cout << fmt::format("{}: ok: {} stages ({}), model {} ({} nodes)\n", prepared.file, prepared.stages.size(),
                             names, prepared.model, run->original().nodes().size());
    return kExitOk;
  }

  auto results = run->run_stages();
  if (!results.has_value()) return report_failure(kRunDoc, results.status());
  const bool time_passes = cl.vm()["time-passes"].as<bool>();
  double total_seconds = 0;
  for (size_t i = 0; i < results->size(); ++i) {
    const pass::StageResult& stage = (*results)[i];
    std::string counters;
    for (const auto& [key, value] : stage.result.counters) {
      counters += fmt::format("{}{} {:g}", counters.empty() ? "" : ", ", key, value);
    }
    std::cout << fmt::format("stage {}/{} {}: {}{}{}{}\n", i + 1, prepared.stages.size(), stage.pass,
                             stage.result.changed ? "changed the model" : "no change", counters.empty() ? "" : "; ",
                             counters, time_passes ? fmt::format(" [{:.3f} s]", stage.seconds) : "");
    total_seconds += stage.seconds;
  }
  if (time_passes) std::cout << fmt::format("stages took {:.3f} s in all\n", total_seconds);
  if (results->size() < prepared.stages.size()) {
    std::cout << fmt::format("stopped after stage {} (--stop-after {})\n", results->size(),
                             cl.vm()["stop-after"].as<std::string>());
  }
  const Status saved = run->save_output();
  if (!saved.is_ok()) return report_failure(kRunDoc, saved);
  std::cout << fmt::format("wrote {}\n", prepared.output);

  if (prepared.report) {
    auto report = run->write_report();
    if (!report.has_value()) return report_failure(kRunDoc, report.status());
    print_report_summary(*report, prepared.report->out_dir);
  }
  return kExitOk;
}

}  // namespace compress::cli
