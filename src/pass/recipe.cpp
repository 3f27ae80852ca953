// Recipe loading: YAML structure checks with file:line:key errors, then one configured pass per stage.
#include "compress/pass/recipe.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "compress/io/files.h"
#include "compress/runtime/backend.h"
#include "compress/support/check.h"
#include "compress/support/limits.h"
#include "compress/support/threads.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace compress::pass {
namespace {

namespace fs = std::filesystem;

std::string at(const std::string& file, const YAML::Node& node) {
  if (!node || node.Mark().is_null()) return file;
  return fmt::format("{}:{}:{}", file, node.Mark().line + 1, node.Mark().column + 1);
}

// Note [Aliases in recipes]
// YAML anchors and aliases (&a, *a) make a document a graph, not a tree:
// yaml-cpp resolves `*a` to the very node `&a` names, so `stages: &a [*a]`
// is a list that contains itself, and nine lines of aliases to aliases stand
// for 9^9 nodes. A walk over the whole document (check_duplicate_keys is the
// only one; everything else reads one level at a time) therefore refuses a
// node that contains itself, and stops after a node budget: twice the text's
// length (no alias-free document has more nodes than bytes, plus one) plus
// room for ordinary reuse of an anchored block.
struct Walk {
  std::vector<YAML::Node> path;  // the mappings and lists from the root down to the node
  uint64_t budget = 0;
  uint64_t limit = 0;
};

Walk walk_for(const std::string& text) {
  Walk w;
  w.limit = w.budget = 2 * static_cast<uint64_t>(text.size()) + 1024;
  return w;
}

// YAML allows a key twice in one mapping and yaml-cpp keeps both; which one
// a lookup finds differs between code paths (the last model: won, the first
// stages: won). A recipe is written by hand, so a repeated key is a mistake:
// refuse it, in every mapping of the document, naming both lines.
Status check_duplicate_keys(const YAML::Node& node, const std::string& file, Walk& walk) {
  if (walk.budget == 0) {
    return invalid_argument("{}: the aliases (*name) in this recipe expand to more than {} nodes; write the "
                            "repeated parts out",
                            file, walk.limit);
  }
  --walk.budget;
  if (!node.IsSequence() && !node.IsMap()) return Status::ok();
  for (const YAML::Node& outer : walk.path) {
    if (outer.is(node)) {
      return invalid_argument("{}: an alias (*name) refers to a mapping or list that contains it", at(file, node));
    }
  }
  walk.path.push_back(node);
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) COMPRESS_RETURN_IF_ERROR(check_duplicate_keys(item, file, walk));
  } else {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : node) {
      if (kv.first.IsScalar()) {
        const auto [it, inserted] = seen.emplace(kv.first.Scalar(), kv.first.Mark());
        if (!inserted) {
          return invalid_argument("{}: key '{}' is given twice (first at line {}); remove one", at(file, kv.first),
                                  kv.first.Scalar(), it->second.line + 1);
        }
      }
      // Keys that are mappings or lists are refused later (keys must be
      // words), but they are walked too: they can hold aliases as well.
      COMPRESS_RETURN_IF_ERROR(check_duplicate_keys(kv.first, file, walk));
      COMPRESS_RETURN_IF_ERROR(check_duplicate_keys(kv.second, file, walk));
    }
  }
  walk.path.pop_back();
  return Status::ok();
}

// idx:/npy: specs carry file paths after the colon; named datasets do not.
std::string resolve_spec(const std::string& recipe_file, const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return spec;
  const std::string kind = spec.substr(0, colon);
  if (kind != "idx" && kind != "npy") return spec;
  std::string out = kind + ":";
  std::stringstream parts(spec.substr(colon + 1));
  std::string part;
  bool first = true;
  while (std::getline(parts, part, ',')) {
    out += (first ? "" : ",") + resolve_recipe_path(recipe_file, part);
    first = false;
  }
  return out;
}

// The scalar keys of a mapping as PassOptions (so typed getters and unknown-key
// checks behave as for pass options); `nested` keys are checked separately.
Expected<PassOptions> scalar_keys(const YAML::Node& map, const std::string& file, const std::string& context,
                                  const std::set<std::string>& nested) {
  YAML::Node scalars(YAML::NodeType::Map);
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return invalid_argument("{}: {}: keys must be plain words", at(file, kv.first), context);
    if (nested.count(kv.first.Scalar()) == 0) scalars[kv.first.Scalar()] = kv.second;
  }
  return PassOptions::from_yaml(scalars, file, context);
}

Expected<RecipeData> parse_data(const YAML::Node& node, const std::string& file, const std::string& name) {
  const std::string context = "data." + name;
  RecipeData data;
  data.where = fmt::format("{}: {}", at(file, node), context);
  if (node.IsScalar()) {  // "calibration: fashion-mnist:train"
    data.spec = resolve_spec(file, node.Scalar());
    return data;
  }
  if (!node.IsMap()) {
    return invalid_argument("{}: {}: expected a dataset spec or a mapping with spec, mean, std, samples", at(file, node),
                            context);
  }
  COMPRESS_ASSIGN_OR_RETURN(PassOptions o, PassOptions::from_yaml(node, file, context));
  if (!o.has("spec")) return invalid_argument("{}: {}: missing key 'spec' (e.g. spec: fashion-mnist:test)", at(file, node), context);
  COMPRESS_ASSIGN_OR_RETURN(std::string spec, o.string("spec", ""));
  data.spec = resolve_spec(file, spec);
  COMPRESS_ASSIGN_OR_RETURN(double mean, o.number("mean", 0.0));
  COMPRESS_ASSIGN_OR_RETURN(double std_dev, o.number("std", 1.0, Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(data.samples, o.integer("samples", -1, 1));
  data.mean = static_cast<float>(mean);
  data.std = static_cast<float>(std_dev);
  COMPRESS_RETURN_IF_ERROR(o.finish());
  return data;
}

Expected<RecipeReport> parse_report(const YAML::Node& node, const std::string& file) {
  if (!node.IsMap()) return invalid_argument("{}: report: expected a mapping (out, backend, batch_sizes, ...)", at(file, node));
  COMPRESS_ASSIGN_OR_RETURN(PassOptions o, PassOptions::from_yaml(node, file, "report"));
  RecipeReport r;
  if (!o.has("out")) return invalid_argument("{}: report: missing key 'out' (the folder for report.md/.json/.html)", at(file, node));
  COMPRESS_ASSIGN_OR_RETURN(std::string out, o.string("out", ""));
  r.out_dir = resolve_recipe_path(file, out);
  COMPRESS_ASSIGN_OR_RETURN(r.backend, o.string("backend", r.backend, runtime::available_backends()));
  if (o.has("batch_sizes")) {
    COMPRESS_ASSIGN_OR_RETURN(r.batch_sizes, o.integer_list("batch_sizes", 1, 65536));
  }
  if (r.batch_sizes.empty()) return invalid_argument("{}: report: batch_sizes must not be empty", o.where("batch_sizes"));
  COMPRESS_ASSIGN_OR_RETURN(r.min_time_s, o.number("min_time", r.min_time_s, Range::closed(0.0, 3600.0)));
  COMPRESS_ASSIGN_OR_RETURN(r.baseline_name, o.string("baseline_name", r.baseline_name));
  COMPRESS_ASSIGN_OR_RETURN(r.variant_name, o.string("variant_name", r.variant_name));
  COMPRESS_RETURN_IF_ERROR(o.finish());
  return r;
}

Expected<RecipeStage> parse_stage(const YAML::Node& node, const std::string& file, size_t index) {
  RecipeStage stage;
  YAML::Node options;
  if (node.IsScalar()) {
    stage.pass = node.Scalar();
  } else if (node.IsMap() && node.size() == 1) {
    const auto kv = *node.begin();
    if (!kv.first.IsScalar()) return invalid_argument("{}: stage {}: the pass name must be a word", at(file, node), index + 1);
    stage.pass = kv.first.Scalar();
    options = kv.second;
  } else {
    return invalid_argument("{}: stage {}: expected a pass name or a one-key mapping 'pass.name: {{options}}'",
                            at(file, node), index + 1);
  }
  const std::string context = fmt::format("stage {} ({})", index + 1, stage.pass);
  stage.where = fmt::format("{}: {}", at(file, node), context);
  COMPRESS_ASSIGN_OR_RETURN(stage.options, PassOptions::from_yaml(options, file, context));
  return stage;
}

}  // namespace

Expected<Recipe> parse_recipe(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return invalid_argument("{}:{}:{}: not valid YAML: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg);
  } catch (const YAML::Exception& e) {
    return invalid_argument("{}: not valid YAML: {}", file, e.what());
  }
  if (!root.IsMap()) return invalid_argument("{}: a recipe must be a mapping (model:, output:, stages:, ...)", file);
  Walk walk = walk_for(text);
  COMPRESS_RETURN_IF_ERROR(check_duplicate_keys(root, file, walk));
  Recipe recipe;
  recipe.file = file;
  COMPRESS_ASSIGN_OR_RETURN(PassOptions top, scalar_keys(root, file, "recipe", {"data", "stages", "report"}));
  COMPRESS_ASSIGN_OR_RETURN(std::string model, top.string("model", ""));
  COMPRESS_ASSIGN_OR_RETURN(std::string output, top.string("output", ""));
  recipe.model = resolve_recipe_path(file, model);
  recipe.output = resolve_recipe_path(file, output);
  COMPRESS_ASSIGN_OR_RETURN(int64_t seed, top.integer("seed", 0, 0));
  recipe.seed = static_cast<uint64_t>(seed);
  COMPRESS_ASSIGN_OR_RETURN(int64_t threads, top.integer("threads", 0, 0, kMaxThreads));
  recipe.threads = static_cast<int>(threads);
  COMPRESS_RETURN_IF_ERROR(top.finish());

  if (const YAML::Node data = root["data"]) {
    if (!data.IsMap()) return invalid_argument("{}: data: expected a mapping of calibration/training/evaluation", at(file, data));
    for (const auto& kv : data) {
      const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      std::optional<RecipeData>* slot = name == "calibration" ? &recipe.calibration
                                        : name == "training"  ? &recipe.training
                                        : name == "evaluation" ? &recipe.evaluation
                                                               : nullptr;
      if (slot == nullptr) {
        return invalid_argument("{}: data: unknown key '{}' (known: calibration, training, evaluation)",
                                at(file, kv.first), name);
      }
      COMPRESS_ASSIGN_OR_RETURN(RecipeData d, parse_data(kv.second, file, name));
      *slot = std::move(d);
    }
  }
  const YAML::Node stages = root["stages"];
  if (!stages) return invalid_argument("{}: recipe: missing key 'stages' (a list of passes to run)", file);
  if (!stages.IsSequence() || stages.size() == 0) {
    return invalid_argument("{}: stages: expected a non-empty list of passes", at(file, stages));
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(RecipeStage stage, parse_stage(stages[i], file, i));
    recipe.stages.push_back(std::move(stage));
  }
  if (const YAML::Node report = root["report"]) {
    COMPRESS_ASSIGN_OR_RETURN(RecipeReport r, parse_report(report, file));
    recipe.report = std::move(r);
  }
  return recipe;
}

Expected<Recipe> load_recipe(const std::string& path) {
  // A regular file of bounded size (Note [Inputs and destinations]): a FIFO
  // or /dev/zero given as a recipe must not hang or fill memory.
  Expected<std::string> text = io::read_file(path, limit_bytes(Limit::kRecipeBytes));
  if (!text.has_value()) {
    if (text.status().code() == StatusCode::kResourceExhausted) {
      return text.status().with_context(fmt::format("recipe (raise the limit with {}=BYTES)",
                                                    limit_info(Limit::kRecipeBytes).env));
    }
    return text.status().with_context("recipe");
  }
  return parse_recipe(*text, path);
}

Expected<std::vector<std::unique_ptr<Pass>>> create_passes(const Recipe& recipe, const PassRegistry& registry) {
  std::vector<std::unique_ptr<Pass>> passes;
  for (const RecipeStage& stage : recipe.stages) {
    if (!registry.contains(stage.pass)) {
      return not_found("{}: unknown pass '{}' (known: {})", stage.where, stage.pass, fmt::join(registry.names(), ", "));
    }
    COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<Pass> pass, registry.create(stage.pass, stage.options));
    passes.push_back(std::move(pass));
  }
  return passes;
}

Status check_stage_needs(const Recipe& recipe, const std::vector<std::unique_ptr<Pass>>& passes) {
  COMPRESS_INTERNAL_ASSERT(passes.size() == recipe.stages.size(), "{} passes for {} stages", passes.size(),
                           recipe.stages.size());
  for (size_t i = 0; i < passes.size(); ++i) {
    const PassNeeds needs = passes[i]->needs();
    const RecipeStage& stage = recipe.stages[i];
    auto missing = [&](const char* what, const char* key) {
      return invalid_argument("{}: needs {}, but the recipe has no data.{} (add it under data:, see docs/recipes.md)",
                              stage.where, what, key);
    };
    if (needs.calibration && !recipe.calibration) return missing("calibration data", "calibration");
    if (needs.training && !recipe.training) return missing("training data", "training");
    if (needs.metric && !recipe.evaluation) return missing("evaluation data to score candidates", "evaluation");
  }
  return Status::ok();
}

// Relative paths in a recipe are relative to the recipe's folder, so a recipe
// works from any working directory.
std::string resolve_recipe_path(const std::string& recipe_file, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  const fs::path base = fs::path(recipe_file).parent_path();
  return (base / path).lexically_normal().string();
}

}  // namespace compress::pass
