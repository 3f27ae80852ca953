// Recipe: a YAML file naming the model, the data, the stages (passes with options), the output and the report.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compress/pass/options.h"
#include "compress/pass/registry.h"

namespace compress::pass {

// A dataset reference as written in a recipe; opened by the caller (the pass
// layer does not read data). `line` is where it was written, for messages.
struct RecipeData {
  std::string spec;           // "fashion-mnist:test", "idx:IMAGES,LABELS", "npy:FILE[,LABELS]"
  float mean = 0.0f;          // normalization of pixels in [0, 1]
  float std = 1.0f;
  int64_t samples = -1;       // -1: all
  std::string where;          // "recipe.yaml:7:3: data.calibration"
};

struct RecipeStage {
  std::string pass;     // registry name
  PassOptions options;  // checked when the pass is created
  std::string where;    // "recipe.yaml:12:5: stage 2 (quant.ptq)"
};

struct RecipeReport {
  std::string out_dir;                         // relative paths resolve against the recipe's folder
  std::string backend = "onednn";              // the one the tool has; reference when onednn is missing
  std::vector<int64_t> batch_sizes = {1, 32};
  double min_time_s = 1.0;                     // per latency measurement
  std::string baseline_name = "original";
  std::string variant_name = "compressed";
};

// Note [Recipes]
// A recipe is a mapping with these keys (docs/recipes.md has the full
// reference and examples/recipes/ has working ones):
//   model: PATH                     required (or --model)
//   output: PATH                    required (or --out)
//   seed: N, threads: N             optional
//   data: {calibration|training|evaluation: {spec, mean, std, samples}}
//   stages: [NAME | {NAME: {options}}]   at least one
//   report: {out, backend, batch_sizes, min_time, baseline_name, variant_name}
// Relative paths are relative to the recipe file's folder. Every error names
// the file, line and key; unknown keys are errors. Loading a recipe checks
// its structure only; create_passes() then checks every stage's pass name
// and options, so a recipe fails before anything runs.
struct Recipe {
  std::string file;  // the recipe's path
  std::string model;
  std::string output;
  uint64_t seed = 0;
  int threads = 0;  // 0: the process default
  std::optional<RecipeData> calibration, training, evaluation;
  std::vector<RecipeStage> stages;
  std::optional<RecipeReport> report;
};

Expected<Recipe> load_recipe(const std::string& path);
// A path written in `recipe_file` (a model, a dataset file, a stage option
// naming a file): relative paths are relative to the recipe's folder.
std::string resolve_recipe_path(const std::string& recipe_file, const std::string& path);
// The same from YAML text; `file` is used for messages and relative paths.
Expected<Recipe> parse_recipe(const std::string& text, const std::string& file);

// One configured pass per stage, in order; the first unknown pass or bad
// option is an error naming its stage and line.
Expected<std::vector<std::unique_ptr<Pass>>> create_passes(const Recipe& recipe, const PassRegistry& registry);

// Each stage's needs (Pass::needs, for the options it was made with) against
// the data the recipe gives: the first stage that needs data the recipe
// lacks is an error naming the stage, its line and the missing data: key,
// found by `ctk run --check` before anything runs. `passes` are
// create_passes(recipe, ...).
Status check_stage_needs(const Recipe& recipe, const std::vector<std::unique_ptr<Pass>>& passes);

}  // namespace compress::pass
