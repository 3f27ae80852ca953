// `ctk prune MODEL OUT.cmf --method magnitude|nm|structured`: one pruning pass (and optional fine-tuning) from the command line.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "commands.h"
#include "compress/eval/dataset.h"
#include "compress/pass/recipe.h"
#include "compress/pass/registry.h"
#include "compress/pipeline/model_loading.h"
#include "compress/pipeline/recipe_runner.h"
#include "compress/pipeline/registry.h"

namespace compress::cli {

const CommandDoc kPruneDoc = {
    "prune",
    "prune weights: unstructured, N:M, or whole channels",
    "ctk prune MODEL OUT.cmf --method magnitude|nm|structured [--ratio R] [--pattern N:M] "
    "[--target-flops F | --target-params F] [--round-to N] [--min-channels N] "
    "[--criterion magnitude|wanda|sparsegpt] [--scope layer|global] [--layer PATTERN=R]... [--exclude PATTERN]... "
    "[--format csr|mask|nm] [--calib SPEC --mean M --std S --samples N] [--finetune-data SPEC --epochs N]",
    "Runs one pruning pass on MODEL and writes OUT.cmf. --method magnitude\n"
    "(prune.magnitude) zeroes the fraction R of each conv2d/linear/matmul\n"
    "weight (exactly; --scope global ranks all layers together); --method nm\n"
    "(prune.nm) keeps N of every M consecutive input weights (--pattern 2:4);\n"
    "--method structured (prune.structured) removes whole channels: --ratio R of\n"
    "every group, or the fewest that remove the fraction F of the FLOPs\n"
    "(--target-flops) or parameters (--target-params); --round-to N keeps a\n"
    "multiple of N channels (16 suits AVX-512 oneDNN). Weights keep\n"
    "their shape and are stored sparse (csr by default; --format mask, or nm for\n"
    "N:M). --criterion wanda or sparsegpt scores weights with input activations\n"
    "of the first --samples images of --calib (sparsegpt also updates the weights\n"
    "that stay). --layer 'layer1.*=0.3' sets a ratio per layer pattern and\n"
    "--exclude leaves layers dense; a pattern that matches no layer is an error.\n"
    "--finetune-data fine-tunes the pruned model for --epochs (needs the\n"
    "distill.finetune pass, built with LibTorch). Prints per-layer sparsity.\n"
    "Datasets as for ctk eval.",
    "  ctk prune fashion_cnn.cmf pruned.cmf --method magnitude --ratio 0.5\n"
    "  ctk prune fashion_cnn.cmf p24.cmf --method nm --pattern 2:4 --criterion sparsegpt --calib fashion-mnist:train "
    "--mean 0.286 --std 0.353\n"
    "  ctk prune fashion_cnn.cmf p.cmf --method magnitude --ratio 0.7 --layer 'conv*=0.3' --exclude fc2\n"
    "  ctk prune resnet18.pt half.cmf --method structured --target-flops 0.5 --round-to 16\n",
};


int run_prune(const std::vector<std::string>& args) {
  CommandLine cl(kPruneDoc);
  cl.options().add_options()
      ("method,m", po::value<std::string>()->value_name("NAME"), "magnitude | nm | structured")
      ("ratio,r", po::value<std::string>()->value_name("R"), "target sparsity (magnitude) or channel ratio (structured), in [0, 1)")
      ("pattern", po::value<std::string>()->value_name("N:M"), "N:M pattern for --method nm (default 2:4)")
      ("target-flops", po::value<std::string>()->value_name("F"), "structured: remove this fraction of the FLOPs")
      ("target-params", po::value<std::string>()->value_name("F"), "structured: remove this fraction of the parameters")
      ("round-to", po::value<std::string>()->value_name("N"), "structured: kept channels a multiple of N")
      ("min-channels", po::value<std::string>()->value_name("N"), "structured: channels every group keeps (default 1)")
      ("criterion", po::value<std::string>()->value_name("NAME"),
       "magnitude | wanda | sparsegpt (structured: its importance criteria, e.g. l1)")
      ("scope", po::value<std::string>()->value_name("NAME"), "layer | global (magnitude)")
      ("format", po::value<std::string>()->value_name("NAME"), "weight layout: csr | mask (| nm for --method nm)")
      ("comparison", po::value<std::string>()->value_name("NAME"),
       "which weights compete (magnitude): auto | layer | row")
      ("layer", po::value<std::vector<std::string>>()->composing()->value_name("PATTERN=R"),
       "per-layer ratio by node-name pattern (repeatable)")
      ("exclude", po::value<std::vector<std::string>>()->composing()->value_name("PATTERN"),
       "leave layers matching PATTERN dense (repeatable)")
      ("calib,c", po::value<std::string>()->value_name("SPEC"), "calibration dataset (wanda, sparsegpt)")
      ("samples", po::value<int64_t>()->default_value(128)->value_name("N"), "calibration samples")
      ("finetune-data", po::value<std::string>()->value_name("SPEC"), "fine-tune after pruning on this labelled dataset")
      ("epochs", po::value<int64_t>()->default_value(1)->value_name("N"), "fine-tuning epochs");
  add_dataset_options(cl, false);
  cl.add_positional("model");
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const std::string out = cl.required_positional("out", "OUT.cmf");
  if (!cl.has("method")) cl.usage_error("missing --method (magnitude, nm or structured)");
  const std::string method = cl.vm()["method"].as<std::string>();
  std::string pass_name;
  if (method == "magnitude") {
    pass_name = "prune.magnitude";
  } else if (method == "nm") {
    pass_name = "prune.nm";
  } else if (method == "structured") {
    pass_name = "prune.structured";
  } else {
    cl.usage_error(fmt::format("unknown --method '{}' (use magnitude, nm or structured)", method));
  }

  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<std::pair<std::string, std::string>> key_flags = {{"layers", "--layer"}, {"exclude", "--exclude"},
                                                                 {"samples", "--samples"}};
  auto forward = [&](const char* flag, const char* key) {
    if (cl.has(flag)) pairs.emplace_back(key, cl.vm()[flag].as<std::string>());
    key_flags.emplace_back(key, std::string("--") + flag);
  };
  if (method == "nm") {
    if (cl.has("ratio")) cl.usage_error("--method nm takes its sparsity from --pattern, not --ratio");
    forward("pattern", "pattern");
  } else if (method == "structured") {
    // prune.structured itself says when more than one of these is given.
    if (!cl.has("ratio") && !cl.has("target-flops") && !cl.has("target-params")) {
      cl.usage_error("--method structured needs --ratio, --target-flops or --target-params");
    }
    if (cl.has("pattern")) cl.usage_error("--pattern is for --method nm");
    forward("ratio", "ratio");
    forward("target-flops", "target_flops");
    forward("target-params", "target_params");
    forward("round-to", "round_to");
    forward("min-channels", "min_channels");
  } else {
    if (!cl.has("ratio")) cl.usage_error(fmt::format("--method {} needs --ratio", method));
    if (cl.has("pattern")) cl.usage_error("--pattern is for --method nm");
    forward("ratio", "ratio");
  }
  if (method != "structured") {
    for (const char* flag : {"target-flops", "target-params", "round-to", "min-channels"}) {
      if (cl.has(flag)) cl.usage_error(fmt::format("--{} is for --method structured", flag));
    }
  }
  forward("criterion", "criterion");
  forward("scope", "scope");
  forward("format", "format");
  forward("comparison", "comparison");
  if (cl.has("layer")) {
    pairs.emplace_back("layers", pattern_map(cl, "--layer", cl.vm()["layer"].as<std::vector<std::string>>(), "RATIO",
                                             "'layer1.*=0.3'"));
  }
  if (cl.has("exclude")) pairs.emplace_back("exclude", flow_list(cl.vm()["exclude"].as<std::vector<std::string>>()));
  const int64_t samples = cl.vm()["samples"].as<int64_t>();
  if (samples < 1) cl.usage_error(fmt::format("bad --samples {} (use >= 1)", samples));
  if (cl.has("calib")) pairs.emplace_back("samples", std::to_string(samples));

  // ctk prune is a recipe made of its flags: the prune stage, then
  // distill.finetune with --finetune-data. The library prepares and runs it
  // (pipeline::RecipeRun, as for ctk run); this command only words the
  // stages' option errors in flags and prints the outcome.
  auto options = pass::PassOptions::from_pairs(pairs, "");
  if (!options.has_value()) cl.usage_error(in_flag_terms(options.status().message(), key_flags));
  const eval::DatasetOptions data_options = dataset_options(cl);
  auto data_flag = [&](const char* flag, int64_t limit) {
    return pass::RecipeData{cl.vm()[flag].as<std::string>(), data_options.normalization.mean,
                            data_options.normalization.std, limit, std::string("--") + flag};
  };
  pass::Recipe recipe;
  recipe.file = path;
  recipe.model = path;
  recipe.output = out;
  recipe.stages.push_back({pass_name, *options, "--method " + method});
  if (cl.has("calib")) recipe.calibration = data_flag("calib", samples);
  const bool finetune = cl.has("finetune-data");
  if (finetune) {
    const int64_t epochs = cl.vm()["epochs"].as<int64_t>();
    if (epochs < 1) cl.usage_error(fmt::format("bad --epochs {} (use >= 1)", epochs));
    auto ft_options = pass::PassOptions::from_pairs({{"epochs", std::to_string(epochs)}}, "distill.finetune");
    if (!ft_options.has_value()) cl.usage_error(ft_options.status().message());
    recipe.training = data_flag("finetune-data", data_options.limit);
    recipe.stages.push_back({"distill.finetune", *ft_options, "--finetune-data"});
  }

  // Which passes this build has (prune.structured and, with LibTorch,
  // distill.finetune only when compiled in), and the stages' options checked
  // here so that a bad value is a usage error in flag terms.
  Expected<pass::PassRegistry> registry = pipeline::make_pass_registry();
  if (!registry.has_value()) return report_failure(kPruneDoc, registry.status());
  if (!registry->contains(pass_name)) {
    return report_failure(kPruneDoc, unsupported("--method {} needs the {} pass, which this build of ctk does not have",
                                                 method, pass_name));
  }
  if (finetune && !registry->contains("distill.finetune")) {
    return report_failure(kPruneDoc, unsupported("--finetune-data needs the distill.finetune pass (built with "
                                                 "LibTorch); this build of ctk does not have it"));
  }
  for (const pass::RecipeStage& stage : recipe.stages) {
    auto created = registry->create(stage.pass, stage.options);
    if (!created.has_value()) cl.usage_error(in_flag_terms(created.status().message(), key_flags));
    if ((*created)->needs().calibration && !recipe.calibration) {
      const std::string criterion = cl.has("criterion") ? " --criterion " + cl.vm()["criterion"].as<std::string>() : "";
      return report_failure(kPruneDoc, invalid_argument("{}: --method {}{} needs calibration data: give --calib SPEC "
                                                        "(with --mean, --std and --samples)",
                                                        path, method, criterion));
    }
  }

  require_cmf_destination(cl, out, "OUT");
  const Status destination = check_destination(cl, out, {path}, "OUT");
  if (!destination.is_ok()) return report_failure(kPruneDoc, destination);

  pipeline::RecipeRunOptions run_options;
  run_options.model = cl.model_options();
  run_options.progress = !cl.vm()["quiet"].as<bool>();
  run_options.use_recipe_threads = false;
  auto run = pipeline::RecipeRun::prepare(std::move(recipe), run_options);
  if (!run.has_value()) return report_failure(kPruneDoc, run.status());
  auto results = run->run_stages();
  if (!results.has_value()) return report_failure(kPruneDoc, results.status());
  const pass::PassResult& pruned = results->front().result;
  if (!pruned.changed) {
    return report_failure(kPruneDoc, invalid_argument("{}: {} pruned nothing (no selected conv2d/linear/matmul with "
                                                      "constant f32 weights); no output written",
                                                      path, pass_name));
  }
  Status saved = run->save_output();
  if (!saved.is_ok()) return report_failure(kPruneDoc, saved);
  const ir::Graph* graph = &run->graph();

  auto counter = [&](const char* key) { return pruned.counters.count(key) ? pruned.counters.at(key) : 0.0; };
  if (pruned.counters.count("flops_before") != 0) {
    std::cout << fmt::format("{}: {} -> {} (FLOPs {:.4g} -> {:.4g}, params {:.0f} -> {:.0f}{})\n", path, pass_name, out,
                             counter("flops_before"), counter("flops_after"), counter("params_before"),
                             counter("params_after"), finetune ? ", fine-tuned" : "");
  } else {
    std::cout << fmt::format("{}: {} -> {} ({} layers, {:.2f}% of their {:.0f} weights zero{})\n", path, pass_name,
                             out, counter("pruned_layers"), 100.0 * counter("sparsity"), counter("pruned_params"),
                             finetune ? ", fine-tuned" : "");
  }
  // Params and sparsity are read from the written graph (after fine-tuning,
  // after channels were removed); target and channels from the pass.
  std::cout << fmt::format("  {:<24} {:>10} {:>9} {:>9} {:>14}\n", "layer", "params", "target", "sparsity", "channels");
  // In graph order (the result's map is sorted by name: features.10 before features.2).
  std::vector<std::string> order;
  for (const ir::Node* node : graph->nodes()) {
    if (pruned.layers.count(node->name()) != 0) order.push_back(node->name());
  }
  for (const auto& entry : pruned.layers) {
    if (std::find(order.begin(), order.end(), entry.first) == order.end()) order.push_back(entry.first);
  }
  for (const std::string& layer : order) {
    const auto& s = pruned.layers.at(layer);
    auto get = [&](const char* key) { return s.count(key) ? s.at(key) : 0.0; };
    double params = get("params"), sparsity = get("sparsity");
    const ir::Node* node = graph->find_node(layer);
    if (node != nullptr && node->num_inputs() > 1 && node->input(1)->is_constant()) {
      const ir::Tensor& w = node->input(1)->constant();
      params = static_cast<double>(w.numel());
      sparsity = w.sparsity();
    }
    const std::string target = s.count("skipped") ? std::string("skipped")
                               : s.count("target") ? fmt::format("{:.2f}%", 100.0 * get("target"))
                                                   : std::string("-");
    const std::string channels = s.count("channels_before") != 0
                                     ? fmt::format("{:.0f} -> {:.0f}", get("channels_before"), get("channels_after"))
                                     : std::string("-");
    std::cout << fmt::format("  {:<24} {:>10.0f} {:>9} {:>8.2f}% {:>14}\n", layer, params, target, 100.0 * sparsity,
                             channels);
  }
  return kExitOk;
}

}  // namespace compress::cli
