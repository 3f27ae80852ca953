// Commands that run recipe stages made of their flags (ctk qat, ctk distill, ctk lowrank): the checks, the run and the output, once.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"
#include "compress/pass/recipe.h"
#include "compress/pipeline/recipe_runner.h"

namespace compress::cli {

// The flags a command forwards to its stage as recipe keys, with the
// (key, flag) names that turn a pass's option errors into flag terms.
class StageFlags {
 public:
  explicit StageFlags(const CommandLine& cl) : cl_(cl) {}
  // `--flag VALUE` becomes `key: VALUE` (VALUE parsed as a YAML scalar) when given.
  void forward(const char* flag, const char* key);
  // `key: yaml` set by the command itself; errors about it name `flag`.
  void set(const std::string& key, std::string yaml, const std::string& flag);
  // Names `flag` for `key` in errors without setting it.
  void name(const std::string& key, const std::string& flag) { key_flags_.emplace_back(key, flag); }
  // The options, or a usage error in flag terms.
  pass::PassOptions options(CommandLine& cl) const;
  const std::vector<std::pair<std::string, std::string>>& key_flags() const { return key_flags_; }

 private:
  const CommandLine& cl_;
  std::vector<std::pair<std::string, std::string>> options_;
  std::vector<std::pair<std::string, std::string>> key_flags_;
};

// A one-stage recipe: `pass` with `options` on `model`, written to `out`,
// trained on --data (with --mean, --std, --limit), seeded by --seed.
pass::Recipe training_stage_recipe(const CommandLine& cl, const std::string& model, const std::string& out,
                                   const std::string& pass, pass::PassOptions options);

// Runs `recipe` (built from the command line; its model is the input, its
// output OUT) for a command: every stage's pass must be in this build (else
// exit 1 saying which pass and that it needs LibTorch), every stage's options
// are checked in flag terms (`key_flags`, a usage error), OUT is checked
// before any work, then the stages run, `before_save` (when given) may
// refuse the result (exit 1, nothing written), the output is saved and
// `print` writes the command's summary. Returns the exit code.
using StagePrinter = std::function<void(const pipeline::RecipeRun& run, const std::vector<pass::StageResult>& results)>;
using StageCheck = std::function<Status(const std::vector<pass::StageResult>& results)>;
int run_stage_command(const CommandDoc& doc, CommandLine& cl, pass::Recipe recipe,
                      const std::vector<std::pair<std::string, std::string>>& key_flags, const StagePrinter& print,
                      const StageCheck& before_save = nullptr);

}  // namespace compress::cli
