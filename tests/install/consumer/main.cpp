// consumer MODEL.cmf OUT.cmf: prunes and quantizes a model with an installed compress, through a recipe given as text.
#include <compress/io/cmf.h>
#include <compress/pass/recipe.h>
#include <compress/pipeline/recipe_runner.h>
#include <compress/runtime/backend.h>

#include <cstdio>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer MODEL.cmf OUT.cmf\n");
    return 2;
  }
  using namespace compress;
  // The recipe a user would write in YAML; here as text, with the paths of
  // the command line. No data is needed by these two stages.
  const std::string text = std::string("model: ") + argv[1] + "\noutput: " + argv[2] +
                           "\nstages:\n  - prune.magnitude: {ratio: 0.5}\n  - transforms.fold_batch_norm\n";
  Expected<pass::Recipe> recipe = pass::parse_recipe(text, "consumer.yaml");
  if (!recipe) {
    std::fprintf(stderr, "%s\n", recipe.status().to_string().c_str());
    return 1;
  }
  pipeline::RecipeRunOptions options;
  options.progress = false;
  Expected<pipeline::RecipeOutcome> outcome = pipeline::run_recipe(std::move(*recipe), options);
  if (!outcome) {
    std::fprintf(stderr, "%s\n", outcome.status().to_string().c_str());
    return 1;
  }
  for (const pass::StageResult& stage : outcome->stages) {
    std::printf("%s: %s (%.3f s)\n", stage.pass.c_str(), stage.result.changed ? "changed" : "no change", stage.seconds);
  }

  // The written model loads back and runs on every backend this compress has.
  Expected<ir::Graph> written = io::load_cmf(argv[2]);
  if (!written) {
    std::fprintf(stderr, "%s\n", written.status().to_string().c_str());
    return 1;
  }
  const ir::Value* input = written->inputs().at(0);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(ir::numel(input->shape())));
  for (float& v : values) v = normal(rng);
  const ir::Tensor x = ir::Tensor::from_vector(ir::DType::kF32, input->shape(), values);
  for (const std::string& name : runtime::available_backends()) {
    auto backend = runtime::make_backend(name);
    if (!backend) return std::fprintf(stderr, "%s\n", backend.status().to_string().c_str()), 1;
    auto plan = (*backend)->compile(*written);
    if (!plan) return std::fprintf(stderr, "%s\n", plan.status().to_string().c_str()), 1;
    auto y = (*plan)->run({x});
    if (!y) return std::fprintf(stderr, "%s\n", y.status().to_string().c_str()), 1;
    std::printf("%s: output %s, first value %.6f\n", name.c_str(), ir::shape_to_string(y->at(0).shape()).c_str(),
                static_cast<double>(y->at(0).data<float>()[0]));
  }
  return 0;
}
