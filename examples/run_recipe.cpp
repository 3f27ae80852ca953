// run_recipe RECIPE.yaml [STAGE]: what `ctk run` does, as a C++ program using compress's pipeline API.
#include <compress/pass/recipe.h>
#include <compress/pipeline/recipe_runner.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: run_recipe RECIPE.yaml [STAGE (print the IR after it: a pass name, number or all)]\n");
    return 2;
  }
  using namespace compress;
  // Everything in a recipe (stages and options, data, output, report) is
  // checked when it is loaded and prepared, before any stage runs.
  Expected<pass::Recipe> recipe = pass::load_recipe(argv[1]);
  if (!recipe) return std::fprintf(stderr, "%s\n", recipe.status().to_string().c_str()), 1;

  pipeline::RecipeRunOptions options;
  if (argc == 3) options.instrument.print_ir_after = argv[2];
  Expected<pipeline::RecipeOutcome> outcome = pipeline::run_recipe(std::move(*recipe), options);
  if (!outcome) return std::fprintf(stderr, "%s\n", outcome.status().to_string().c_str()), 1;

  for (const pass::StageResult& stage : outcome->stages) {
    std::printf("%-28s %-18s %8.3f s\n", stage.pass.c_str(), stage.result.changed ? "changed the model" : "no change",
                stage.seconds);
  }
  if (outcome->report) {
    for (const eval::VariantReport& v : outcome->report->variants) std::printf("measured %s\n", v.name.c_str());
  }
  return 0;
}
