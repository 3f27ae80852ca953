// `ctk lowrank MODEL OUT.cmf --method svd|spatial_svd|tucker2|cp`: one factorization pass (and optional KD recovery).
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "commands.h"
#include "stage_command.h"
#include "compress/pass/recipe.h"
#include "compress/pipeline/recipe_runner.h"
#include "compress/pipeline/registry.h"

namespace compress::cli {

const CommandDoc kLowrankDoc = {
    "lowrank",
    "factorize layers into low-rank chains: SVD, spatial SVD, Tucker-2",
    "ctk lowrank MODEL OUT.cmf --method svd|spatial_svd|tucker2|cp [--rank R | --ratio F | --energy E] [--round-to N] "
    "[--layer PATTERN=F]... [--exclude PATTERN]... [--backend NAME] [--no-latency-gate] [--gate-batch B]... "
    "[--max-iterations N] [--activation-aware whiten|asvd --calib SPEC [--samples N]] "
    "[--finetune-data SPEC --epochs N]",
    "Runs one factorization pass on MODEL and writes OUT.cmf. --method svd\n"
    "(lowrank.svd) splits each linear and 1x1 conv into two layers of rank r;\n"
    "--method spatial_svd (lowrank.spatial_svd) each k x k conv into a k x 1 and\n"
    "a 1 x k conv; --method tucker2 (lowrank.tucker2) each k x k conv into a 1x1,\n"
    "a smaller k x k core and a 1x1 (HOSVD refined by HOOI, at most\n"
    "--max-iterations sweeps); --method cp (lowrank.cp) each k x k conv into a\n"
    "1x1, k x 1 and 1 x k depthwise convs and a 1x1 (CP-ALS; rank or ratio\n"
    "only). Grouped and depthwise convs are left alone. --activation-aware\n"
    "whiten (svd) factorizes W L, L L^T = X^T X of the layer inputs of the first\n"
    "--samples images of --calib (SVD-LLM), asvd scales by their RMS (ASVD):\n"
    "the output error, not the weight error, is what is minimized.\n"
    "The rank: --ratio F keeps at most the fraction F of each layer's MACs\n"
    "(default 0.5), --rank R sets it, --energy E keeps the fraction E of the\n"
    "squared singular values; --round-to N rounds it to a multiple of N;\n"
    "--layer 'conv*=0.3' sets the ratio per layer pattern, --exclude leaves\n"
    "layers dense (a pattern that matches no layer is an error). Each\n"
    "factorization is timed against its dense layer on --backend (onednn by\n"
    "default) at the model's shapes (or at each --gate-batch) and kept only\n"
    "where it is faster; the table shows both times (--no-latency-gate keeps\n"
    "every one). --finetune-data\n"
    "recovers accuracy with --epochs of distill.kd, the input model as the\n"
    "teacher (needs LibTorch). Datasets as for ctk eval. See docs/lowrank.md.",
    "  ctk lowrank resnet18.pt r18_tucker.cmf --method tucker2 --ratio 0.5\n"
    "  ctk lowrank fashion_resnet.cmf fr_lr.cmf --method tucker2 --ratio 0.5 --finetune-data fashion-mnist:train "
    "--mean 0.286 --std 0.353 --epochs 1\n"
    "  ctk lowrank encoder.cmf enc_svd.cmf --method svd --energy 0.9 --round-to 8 --exclude 'head*'\n",
};

namespace {

// The summary line, then one row per candidate layer in graph order.
void print_table(const std::string& path, const std::string& pass_name, const std::string& out,
                 const pass::PassResult& r) {
  auto counter = [&](const char* key) { return r.counters.count(key) ? r.counters.at(key) : 0.0; };
  const double before = counter("macs_before"), after = counter("macs_after");
  std::cout << fmt::format(
      "{}: {} -> {} ({:.0f} layers factorized, {:.0f} left dense; their MACs {:.4g} -> {:.4g}, "
      "{:.1f}%)\n",
      path, pass_name, out, counter("layers_factorized"), counter("layers_left_dense"), before, after,
      before > 0 ? 100.0 * after / before : 0.0);
  // "out error": with --activation-aware, the error on the calibration inputs (whiten) or in the scaled space (asvd).
  bool aware = false;
  for (const auto& [layer, s] : r.layers) aware = aware || s.count("output_error") != 0;
  std::cout << fmt::format("  {:<24} {:>9} {:>7} {:>9}{} {:>10} {:>10}  {}\n", "layer", "rank", "MACs", "error",
                           aware ? fmt::format(" {:>9}", "out error") : "", "dense ms", "chain ms", "result");
  std::vector<std::pair<double, std::string>> order;  // graph order
  for (const auto& [layer, s] : r.layers) order.emplace_back(s.count("layer_index") ? s.at("layer_index") : 0.0, layer);
  std::sort(order.begin(), order.end());
  for (const auto& [index, layer] : order) {
    const auto& s = r.layers.at(layer);
    auto get = [&](const char* key) { return s.count(key) ? s.at(key) : -1.0; };
    const std::string rank = s.count("rank_in") ? fmt::format("{:.0f}/{:.0f}", get("rank_in"), get("rank"))
                                                : fmt::format("{:.0f}", get("rank"));
    const double kept = get("macs_dense") > 0 ? 100.0 * get("macs_factorized") / get("macs_dense") : 0.0;
    const bool timed = s.count("dense_ms") != 0;
    const std::string out_error =
        !aware ? "" : s.count("output_error") ? fmt::format(" {:>9.4f}", get("output_error")) : fmt::format(" {:>9}", "-");
    std::cout << fmt::format("  {:<24} {:>9} {:>6.1f}% {:>9.4f}{} {:>10} {:>10}  {}\n", layer, rank, kept,
                             get("relative_error"), out_error, timed ? fmt::format("{:.4f}", get("dense_ms")) : "-",
                             timed ? fmt::format("{:.4f}", get("factorized_ms")) : "-",
                             get("factorized") > 0 ? "factorized" : "left dense (slower)");
  }
}

}  // namespace

int run_lowrank(const std::vector<std::string>& args) {
  CommandLine cl(kLowrankDoc);
  // clang-format off
  cl.options().add_options()
      ("method,m", po::value<std::string>()->value_name("NAME"), "svd | spatial_svd | tucker2 | cp")
      ("rank", po::value<std::string>()->value_name("R"), "the rank of every factorized layer")
      ("ratio,r", po::value<std::string>()->value_name("F"), "kept fraction of each layer's MACs, in (0, 1] (default 0.5)")
      ("energy", po::value<std::string>()->value_name("E"), "kept fraction of the squared singular values, in (0, 1]")
      ("round-to", po::value<std::string>()->value_name("N"), "ranks a multiple of N")
      ("layer", po::value<std::vector<std::string>>()->composing()->value_name("PATTERN=F"),
       "per-layer ratio by node-name pattern (repeatable)")
      ("exclude", po::value<std::vector<std::string>>()->composing()->value_name("PATTERN"),
       "leave layers matching PATTERN dense (repeatable)")
      ("backend", po::value<std::string>()->value_name("NAME"), "where the latency gate times layers (default onednn)")
      ("no-latency-gate", po::bool_switch(), "keep every factorization, faster or not")
      ("gate-batch", po::value<std::vector<int64_t>>()->composing()->value_name("B"),
       "time the gate at batch B (repeatable; kept only if faster at each; default: the model's batch)")
      ("max-iterations", po::value<std::string>()->value_name("N"), "tucker2: HOOI sweeps (default 20); cp: ALS sweeps (default 100)")
      ("activation-aware", po::value<std::string>()->value_name("NAME"),
       "svd: whiten (SVD-LLM) | asvd, from the inputs of --calib (default none)")
      ("calib,c", po::value<std::string>()->value_name("SPEC"), "calibration dataset (--activation-aware)")
      ("samples", po::value<std::string>()->value_name("N"), "calibration samples (default 128)")
      ("finetune-data", po::value<std::string>()->value_name("SPEC"), "recover with distill.kd on this labelled dataset")
      ("epochs", po::value<int64_t>()->default_value(1)->value_name("N"), "recovery epochs");
  // clang-format on
  add_dataset_options(cl, false);
  cl.add_positional("model");
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const std::string out = cl.required_positional("out", "OUT.cmf");
  if (!cl.has("method")) cl.usage_error("missing --method (svd, spatial_svd, tucker2 or cp)");
  const std::string method = cl.vm()["method"].as<std::string>();
  if (method != "svd" && method != "spatial_svd" && method != "tucker2" && method != "cp") {
    cl.usage_error(fmt::format("unknown --method '{}' (use svd, spatial_svd, tucker2 or cp)", method));
  }
  const std::string pass_name = "lowrank." + method;
  if (method != "tucker2" && method != "cp" && cl.has("max-iterations")) {
    cl.usage_error("--max-iterations is for --method tucker2 or cp");
  }

  StageFlags flags(cl);
  flags.forward("rank", "rank");
  flags.forward("ratio", "ratio");
  flags.forward("energy", "energy");
  flags.forward("round-to", "round_to");
  flags.forward("backend", "backend");
  flags.forward("max-iterations", "max_iterations");
  flags.forward("activation-aware", "activation_aware");
  flags.forward("samples", "samples");
  if (cl.has("activation-aware") && !cl.has("calib")) cl.usage_error("--activation-aware needs --calib SPEC");
  if (cl.vm()["no-latency-gate"].as<bool>()) {
    flags.set("latency_gate", "false", "--no-latency-gate");
  } else {
    flags.name("latency_gate", "--no-latency-gate");
  }
  if (cl.has("gate-batch")) {
    std::string list;
    for (int64_t b : cl.vm()["gate-batch"].as<std::vector<int64_t>>()) {
      list += (list.empty() ? "[" : ", ") + std::to_string(b);
    }
    flags.set("gate_batches", list + "]", "--gate-batch");
  }
  if (cl.has("layer")) {
    flags.set("layers",
              pattern_map(cl, "--layer", cl.vm()["layer"].as<std::vector<std::string>>(), "RATIO", "'conv*=0.3'"),
              "--layer");
  }
  if (cl.has("exclude")) flags.set("exclude", flow_list(cl.vm()["exclude"].as<std::vector<std::string>>()), "--exclude");

  // A recipe made of the flags: the factorization, then distill.kd with --finetune-data.
  pass::Recipe recipe;
  recipe.file = path;
  recipe.model = path;
  recipe.output = out;
  recipe.stages.push_back({pass_name, flags.options(cl), "--method " + method});
  if (cl.has("calib")) {
    const eval::DatasetOptions data_options = dataset_options(cl);
    recipe.calibration = pass::RecipeData{cl.vm()["calib"].as<std::string>(), data_options.normalization.mean,
                                          data_options.normalization.std, data_options.limit, "--calib"};
  }
  if (cl.has("finetune-data")) {
    const int64_t epochs = cl.vm()["epochs"].as<int64_t>();
    if (epochs < 1) cl.usage_error(fmt::format("bad --epochs {} (use >= 1)", epochs));
    auto kd_options = pass::PassOptions::from_pairs({{"epochs", std::to_string(epochs)}}, "distill.kd");
    if (!kd_options.has_value()) cl.usage_error(kd_options.status().message());
    const eval::DatasetOptions data_options = dataset_options(cl);
    recipe.training = pass::RecipeData{cl.vm()["finetune-data"].as<std::string>(), data_options.normalization.mean,
                                       data_options.normalization.std, data_options.limit, "--finetune-data"};
    recipe.stages.push_back({"distill.kd", *kd_options, "--finetune-data"});
  }
  auto counter = [](const pass::PassResult& r, const char* key) {
    return r.counters.count(key) ? r.counters.at(key) : 0.0;
  };
  const auto factorized_something = [&](const std::vector<pass::StageResult>& results) -> Status {
    const pass::PassResult& r = results.front().result;
    if (r.changed) return Status::ok();
    return invalid_argument(
        "{}: {} factorized no layer ({} left dense by the latency gate, {} not factorizable by this method); no "
        "output written",
        path, pass_name, counter(r, "layers_left_dense"), counter(r, "layers_skipped"));
  };
  return run_stage_command(
      kLowrankDoc, cl, std::move(recipe), flags.key_flags(),
      [&](const pipeline::RecipeRun&, const std::vector<pass::StageResult>& results) {
        print_table(path, pass_name, out, results.front().result);
      },
      factorized_something);
}


}  // namespace compress::cli
