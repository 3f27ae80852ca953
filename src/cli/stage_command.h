// Commands that run one recipe stage on a model (ctk qat, ctk distill): the checks, the run and the output, once.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"
#include "compress/pass/recipe.h"
#include "compress/pipeline/recipe_runner.h"

namespace compress::cli {

// Runs `recipe` (built from the command line; its model is the input, its
// output OUT) for a command: every stage's pass must be in this build (else
// exit 1 saying which pass and that it needs LibTorch), every stage's options
// are checked in flag terms (`key_flags`, a usage error), OUT is checked
// before any work, then the stages run, the output is saved and `print`
// writes the command's summary. Returns the exit code.
using StagePrinter = std::function<void(const pipeline::RecipeRun& run, const std::vector<pass::StageResult>& results)>;
int run_stage_command(const CommandDoc& doc, CommandLine& cl, pass::Recipe recipe,
                      const std::vector<std::pair<std::string, std::string>>& key_flags, const StagePrinter& print);

}  // namespace compress::cli
