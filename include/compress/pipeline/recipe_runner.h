// Runs a recipe as a library call: check it, load the model and data, run the stages, save the output, write the report.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/eval/report.h"
#include "compress/ir/graph.h"
#include "compress/pass/pass_manager.h"
#include "compress/pass/recipe.h"
#include "compress/pipeline/model_loading.h"

namespace compress::pipeline {

struct RecipeRunOptions {
  ModelLoadOptions model;                // TorchScript input shapes
  pass::PassInstrumentation instrument;  // print the IR after a stage, stop after one
  bool progress = true;                  // progress bars and per-variant report lines
  // The recipe's threads: key sets compress::set_num_threads() for the
  // process; false when the caller has chosen a count (ctk's --threads wins).
  bool use_recipe_threads = true;
};

// One recipe, step by step: prepare() validates everything that can be
// validated before work (every stage's pass and options, what each stage
// needs, the output and report destinations, the model, the datasets) and
// writes nothing; run_stages(), save_output() and write_report() then do
// the work, so a caller (ctk run) can say what happened between them.
// run_recipe() below does all four.
class RecipeRun {
 public:
  static Expected<RecipeRun> prepare(pass::Recipe recipe, const RecipeRunOptions& options = {});
  RecipeRun(RecipeRun&&) noexcept;
  RecipeRun& operator=(RecipeRun&&) noexcept;
  ~RecipeRun();

  const pass::Recipe& recipe() const;
  const ir::Graph& original() const;  // the model as loaded
  const ir::Graph& graph() const;     // the model as the stages left it

  // Runs every stage (the graph is verified after each); one result per
  // stage that ran (fewer with stop_after).
  Expected<std::vector<pass::StageResult>> run_stages();
  // Writes the graph to the recipe's output .cmf, atomically.
  Status save_output() const;
  // Measures the original and the compressed model side by side and writes
  // the report files; an error when the recipe has no report: block.
  Expected<eval::Report> write_report() const;

 private:
  struct State;
  explicit RecipeRun(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct RecipeOutcome {
  std::vector<pass::StageResult> stages;
  ir::Graph graph;                    // what was written to recipe.output
  std::optional<eval::Report> report;  // when the recipe has a report: block
};

// prepare(), run_stages(), save_output() and, with a report: block,
// write_report().
Expected<RecipeOutcome> run_recipe(pass::Recipe recipe, const RecipeRunOptions& options = {});

}  // namespace compress::pipeline
