// `ctk qat MODEL OUT.cmf --data SPEC`: quantization-aware training to the deployable int8 model.
#include <fmt/format.h>

#include <iostream>
#include <utility>

#include "commands.h"
#include "compress/pass/recipe.h"
#include "stage_command.h"

namespace compress::cli {

const CommandDoc kQatDoc = {
    "qat",
    "quantization-aware training to an int8 model (LSQ, LSQ+, PACT, STE)",
    "ctk qat MODEL OUT.cmf --data SPEC [--mean M --std S] [--epochs N | --steps N] [--weight-bits B] "
    "[--activation-bits B] [--layer-bits PATTERN=B]... [--method lsq|lsq+|pact|ste] [--lr X] [--calib-samples N] "
    "[--no-kd] [--no-shuffle] [--seed N]",
    "Runs quant.qat on MODEL: calibrates on the first --calib-samples images of\n"
    "--data, inserts learned fake-quantizers where the int8 backends quantize\n"
    "(batch norm simulated-folded), trains on --data with cross-entropy plus\n"
    "logit distillation from MODEL itself (--no-kd: cross-entropy only), and\n"
    "writes the converted int8 model to OUT.cmf. Weights take 2..8 bits (<= 4\n"
    "stored packed), activations 4..8; --layer-bits 'conv1=8' keeps a layer at\n"
    "more bits (the first and last layer at 8 is the usual practice). The model\n"
    "as trained is what is deployed: the same integers, no second calibration.\n"
    "Datasets as for ctk eval.",
    "  ctk qat fashion_cnn.cmf q.cmf --data fashion-mnist:train --mean 0.286 --std 0.353\n"
    "  ctk qat fashion_resnet.cmf w4.cmf --data fashion-mnist:train --mean 0.286 --std 0.353 --weight-bits 4 "
    "--epochs 2 --layer-bits 'stem.0=8' --layer-bits fc=8\n",
};

int run_qat(const std::vector<std::string>& args) {
  CommandLine cl(kQatDoc);
  cl.options().add_options()
      ("data,d", po::value<std::string>()->value_name("SPEC"), "labelled training data (also calibrates)")
      ("epochs", po::value<std::string>()->value_name("N"), "training epochs (default 1; 0: convert untrained, PTQ at these widths)")
      ("steps", po::value<std::string>()->value_name("N"), "exactly N optimizer steps instead of --epochs")
      ("weight-bits", po::value<std::string>()->value_name("B"), "weight bits, 2..8 (default 8)")
      ("activation-bits", po::value<std::string>()->value_name("B"), "activation bits, 4..8 (default 8)")
      ("layer-bits", po::value<std::vector<std::string>>()->composing()->value_name("PATTERN=B"),
       "bits of the layers matching PATTERN, weights and activations (repeatable)")
      ("method", po::value<std::string>()->value_name("NAME"), "lsq | lsq+ | pact | ste (default lsq)")
      ("lr", po::value<std::string>()->value_name("X"), "learning rate (default 1e-4, adam, cosine)")
      ("batch", po::value<std::string>()->value_name("N"), "batch size (default 32)")
      ("calib-samples", po::value<std::string>()->value_name("N"), "calibration samples for the initial ranges (512)")
      ("freeze-bn-step", po::value<std::string>()->value_name("N"),
       "batch norm on running statistics from step N (default 0; -1: never)")
      ("no-kd", po::bool_switch()->default_value(false), "train on cross-entropy only (no distillation from MODEL)")
      ("no-shuffle", po::bool_switch()->default_value(false), "batches in data order every epoch")
      ("seed", po::value<uint64_t>()->default_value(0)->value_name("N"), "shuffle and init seed");
  add_dataset_options(cl, true);
  cl.add_positional("model");
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const std::string out = cl.required_positional("out", "OUT.cmf");
  if (!cl.has("data")) cl.usage_error("missing --data SPEC (labelled training data)");

  StageFlags flags(cl);
  flags.forward("epochs", "epochs");
  flags.forward("steps", "steps");
  flags.forward("weight-bits", "weight_bits");
  flags.forward("activation-bits", "activation_bits");
  flags.forward("method", "method");
  flags.forward("lr", "lr");
  flags.forward("batch", "batch");
  flags.forward("calib-samples", "calibration_samples");
  flags.forward("freeze-bn-step", "freeze_bn_step");
  if (cl.has("layer-bits")) {
    flags.set("layer_bits",
              pattern_map(cl, "--layer-bits", cl.vm()["layer-bits"].as<std::vector<std::string>>(), "BITS", "'conv1=8'"),
              "--layer-bits");
  } else {
    flags.name("layer_bits", "--layer-bits");
  }
  if (cl.vm()["no-kd"].as<bool>()) flags.set("kd", "false", "--no-kd");
  if (cl.vm()["no-shuffle"].as<bool>()) flags.set("shuffle", "false", "--no-shuffle");
  pass::Recipe recipe = training_stage_recipe(cl, path, out, "quant.qat", flags.options(cl));

  return run_stage_command(
      kQatDoc, cl, std::move(recipe), flags.key_flags(),
      [&](const pipeline::RecipeRun& run, const std::vector<pass::StageResult>& results) {
        const pass::PassResult& r = results.front().result;
        auto counter = [&](const char* key) { return r.counters.count(key) ? r.counters.at(key) : 0.0; };
        std::cout << fmt::format(
            "{}: quant.qat -> {} ({:.0f} layers, W{:.0f}A{:.0f}, {:.0f} steps in {:.1f} s, final loss "
            "{:.4f})\n",
            path, out, counter("quantized_layers"), counter("weight_bits"), counter("activation_bits"),
            counter("steps"), counter("train_seconds"), counter("final_loss"));
        std::cout << fmt::format("  {:<24} {:>5} {:>14} {:>14}\n", "layer", "bits", "scale min", "scale max");
        for (const ir::Node* node : run.graph().nodes()) {
          auto it = r.layers.find(node->name());
          if (it == r.layers.end() || it->second.count("weight_bits") == 0) continue;
          std::cout << fmt::format("  {:<24} {:>5.0f} {:>14.6g} {:>14.6g}\n", node->name(),
                                   it->second.at("weight_bits"), it->second.at("weight_scale_min"),
                                   it->second.at("weight_scale_max"));
        }
      });
}

}  // namespace compress::cli
