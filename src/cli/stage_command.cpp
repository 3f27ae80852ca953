// run_stage_command: the shared body of ctk qat, ctk distill and ctk lowrank.
#include "stage_command.h"

#include "compress/pass/registry.h"
#include "compress/pipeline/registry.h"

namespace compress::cli {

void StageFlags::forward(const char* flag, const char* key) {
  if (cl_.has(flag)) options_.emplace_back(key, cl_.vm()[flag].as<std::string>());
  key_flags_.emplace_back(key, std::string("--") + flag);
}

void StageFlags::set(const std::string& key, std::string yaml, const std::string& flag) {
  options_.emplace_back(key, std::move(yaml));
  key_flags_.emplace_back(key, flag);
}

pass::PassOptions StageFlags::options(CommandLine& cl) const {
  auto parsed = pass::PassOptions::from_pairs(options_, "");
  if (!parsed.has_value()) cl.usage_error(in_flag_terms(parsed.status().message(), key_flags_));
  return *parsed;
}

pass::Recipe training_stage_recipe(const CommandLine& cl, const std::string& model, const std::string& out,
                                   const std::string& pass, pass::PassOptions options) {
  const eval::DatasetOptions data = dataset_options(cl);
  pass::Recipe recipe;
  recipe.file = model;
  recipe.model = model;
  recipe.output = out;
  recipe.seed = cl.vm()["seed"].as<uint64_t>();
  recipe.stages.push_back({pass, std::move(options), "ctk " + std::string(cl.doc().name)});
  recipe.training = pass::RecipeData{cl.vm()["data"].as<std::string>(), data.normalization.mean,
                                     data.normalization.std, data.limit, "--data"};
  return recipe;
}

int run_stage_command(const CommandDoc& doc, CommandLine& cl, pass::Recipe recipe,
                      const std::vector<std::pair<std::string, std::string>>& key_flags, const StagePrinter& print,
                      const StageCheck& before_save) {
  Expected<pass::PassRegistry> registry = pipeline::make_pass_registry();
  if (!registry.has_value()) return report_failure(doc, registry.status());
  for (const pass::RecipeStage& stage : recipe.stages) {
    if (!registry->contains(stage.pass)) {
      return report_failure(doc, unsupported("ctk {} needs the {} pass (built with LibTorch); this build of ctk does "
                                             "not have it",
                                             doc.name, stage.pass));
    }
    auto created = registry->create(stage.pass, stage.options);
    if (!created.has_value()) cl.usage_error(in_flag_terms(created.status().message(), key_flags));
  }
  require_cmf_destination(cl, recipe.output, "OUT");
  const Status destination = check_destination(cl, recipe.output, {recipe.model}, "OUT");
  if (!destination.is_ok()) return report_failure(doc, destination);

  pipeline::RecipeRunOptions run_options;
  run_options.model = cl.model_options();
  run_options.progress = !cl.vm()["quiet"].as<bool>();
  run_options.use_recipe_threads = false;
  auto run = pipeline::RecipeRun::prepare(std::move(recipe), run_options);
  if (!run.has_value()) return report_failure(doc, run.status());
  auto results = run->run_stages();
  if (!results.has_value()) return report_failure(doc, results.status());
  if (before_save) {
    const Status accepted = before_save(*results);
    if (!accepted.is_ok()) return report_failure(doc, accepted);
  }
  const Status saved = run->save_output();
  if (!saved.is_ok()) return report_failure(doc, saved);
  print(*run, *results);
  return kExitOk;
}

}  // namespace compress::cli
