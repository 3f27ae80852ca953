// `ctk distill --teacher T --student S OUT.cmf --data SPEC`: knowledge distillation into a student model.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <utility>

#include "commands.h"
#include "compress/pass/recipe.h"
#include "stage_command.h"

namespace compress::cli {

const CommandDoc kDistillDoc = {
    "distill",
    "knowledge distillation: train a student from a teacher (logits, features, attention)",
    "ctk distill --teacher T --student S OUT.cmf --data SPEC [--mean M --std S] [--epochs N | --steps N] [--seed N] "
    "[--lr X] [--batch N] [--temperature T] [--alpha A] [--logit-weight W] "
    "[--pair STUDENT_NODE=TEACHER_NODE[:mse|cosine|l1|at|attention_kl[:WEIGHT]]]... [--pair auto] "
    "[--balance static|ratio] [--teacher-cache FILE] [--teacher-backend auto|onednn|reference] [--no-shuffle]",
    "Runs distill.kd: trains the student S (a .cmf or TorchScript file, e.g. a\n"
    "narrower or shallower architecture, random init or pruned) on --data with\n"
    "  (1 - alpha) * CE(labels) + alpha * (logit KD at --temperature, T^2-scaled\n"
    "                                       + each --pair's loss)\n"
    "and writes it to OUT.cmf. --alpha 0 trains on the labels alone (the baseline\n"
    "to compare KD with). A pair names a student and a teacher node (or value, or\n"
    "a glob on both sides, paired by relative depth); shapes that differ get a\n"
    "trained adapter (1x1 conv, linear, pooling or interpolation), which is not in\n"
    "OUT. --pair auto pairs transformer attention maps (KL) and block outputs (MSE)\n"
    "by relative depth. --balance ratio scales each distillation term to WEIGHT\n"
    "times the label loss every step. The teacher runs on onednn without\n"
    "gradients, or from --teacher-cache (computed once, reused while the teacher\n"
    "and data are the same). Datasets as for ctk eval.",
    "  ctk distill --teacher fashion_resnet.cmf --student half.pt s.cmf --data fashion-mnist:train --mean 0.286 "
    "--std 0.353 --epochs 2\n"
    "  ctk distill --teacher t.cmf --student pruned.cmf r.cmf --data fashion-mnist:train --mean 0.286 --std 0.353 "
    "--pair 'block3.relu2=block3.relu2:mse' --balance ratio --teacher-cache /tmp/t.cache\n"
    "  ctk distill --teacher transformer4.pt --student transformer2.pt s.cmf --data fashion-mnist:train --mean "
    "0.286 --std 0.353 --pair auto\n",
};

int run_distill(const std::vector<std::string>& args) {
  CommandLine cl(kDistillDoc);
  cl.options().add_options()
      ("teacher", po::value<std::string>()->value_name("T"), "the teacher model (.cmf or TorchScript)")
      ("student", po::value<std::string>()->value_name("S"), "the student model to train (.cmf or TorchScript)")
      ("data,d", po::value<std::string>()->value_name("SPEC"), "labelled training data")
      ("epochs", po::value<std::string>()->value_name("N"), "training epochs (default 1)")
      ("steps", po::value<std::string>()->value_name("N"), "exactly N optimizer steps instead of --epochs")
      ("lr", po::value<std::string>()->value_name("X"), "learning rate (default 3e-3, adam, cosine)")
      ("batch", po::value<std::string>()->value_name("N"), "batch size (default 32)")
      ("temperature", po::value<std::string>()->value_name("T"), "logit KD temperature, > 0 (default 4)")
      ("alpha", po::value<std::string>()->value_name("A"),
       "weight of the distillation terms against the label loss, [0, 1] (default 0.5; 0: labels alone)")
      ("logit-weight", po::value<std::string>()->value_name("W"), "weight of logit KD among the terms (default 1)")
      ("pair", po::value<std::vector<std::string>>()->composing()->value_name("S=T[:LOSS[:W]]"),
       "a student/teacher value pair and its loss (repeatable; 'auto' for transformers)")
      ("balance", po::value<std::string>()->value_name("MODE"), "static (weights as given) | ratio (of the label loss)")
      ("teacher-cache", po::value<std::string>()->value_name("FILE"), "keep the teacher's outputs in FILE")
      ("teacher-backend", po::value<std::string>()->value_name("NAME"), "auto | onednn | reference (default auto)")
      ("no-shuffle", po::bool_switch()->default_value(false), "batches in data order every epoch")
      ("seed", po::value<uint64_t>()->default_value(0)->value_name("N"), "shuffle and adapter seed");
  add_dataset_options(cl, true);
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string out = cl.required_positional("out", "OUT.cmf");
  if (!cl.has("teacher")) cl.usage_error("missing --teacher T (the model to distill from)");
  if (!cl.has("student")) cl.usage_error("missing --student S (the model to train)");
  if (!cl.has("data")) cl.usage_error("missing --data SPEC (labelled training data)");
  const std::string student = cl.vm()["student"].as<std::string>();
  const std::string teacher = cl.vm()["teacher"].as<std::string>();

  StageFlags flags(cl);
  flags.forward("epochs", "epochs");
  flags.forward("steps", "steps");
  flags.forward("lr", "lr");
  flags.forward("batch", "batch");
  flags.forward("temperature", "temperature");
  flags.forward("alpha", "alpha");
  flags.forward("logit-weight", "logit_weight");
  flags.forward("balance", "balance");
  flags.forward("teacher-backend", "teacher_backend");
  // A JSON string or array of strings is a YAML flow scalar or sequence, with any name quoted.
  if (cl.has("pair")) {
    flags.set("pairs", nlohmann::json(cl.vm()["pair"].as<std::vector<std::string>>()).dump(), "--pair");
  } else {
    flags.name("pairs", "--pair");
  }
  if (cl.has("teacher-cache")) {
    flags.set("teacher_cache", nlohmann::json(cl.vm()["teacher-cache"].as<std::string>()).dump(), "--teacher-cache");
  }
  // The pass resolves model paths against the recipe's folder; here that is
  // the working directory.
  flags.set("teacher", nlohmann::json(std::filesystem::absolute(teacher).string()).dump(), "--teacher");
  if (cl.vm()["no-shuffle"].as<bool>()) flags.set("shuffle", "false", "--no-shuffle");
  pass::Recipe recipe = training_stage_recipe(cl, student, out, "distill.kd", flags.options(cl));
  return run_stage_command(
      kDistillDoc, cl, std::move(recipe), flags.key_flags(),
      [&](const pipeline::RecipeRun&, const std::vector<pass::StageResult>& results) {
        const pass::PassResult& r = results.front().result;
        auto counter = [&](const char* key) { return r.counters.count(key) ? r.counters.at(key) : 0.0; };
        std::cout << fmt::format("{} -> {}: distill.kd from {} ({:.0f} steps in {:.1f} s, {:.0f} samples/s; final "
                                 "loss {:.4f}, ce {:.4f}, kd {:.4f})\n",
                                 student, out, teacher, counter("steps"), counter("train_seconds"),
                                 counter("samples_per_second"), counter("final_loss"), counter("final_ce"),
                                 counter("final_kd"));
        if (r.counters.count("teacher_cache_bytes") != 0) {
          std::cout << fmt::format("  teacher cache: {:.1f} MB, {}\n", counter("teacher_cache_bytes") / 1e6,
                                   counter("teacher_cache_reused") > 0 ? "reused" : "computed");
        }
        if (r.layers.empty()) return;
        std::cout << fmt::format("  {:<32} {:>8} {:>12}\n", "student value", "adapter", "pair loss");
        for (const auto& [value, stats] : r.layers) {
          if (stats.count("pair_loss") == 0) continue;
          std::cout << fmt::format("  {:<32} {:>8} {:>12.6g}\n", value, stats.at("adapted") > 0 ? "yes" : "no",
                                   stats.at("pair_loss"));
        }
      });
}

}  // namespace compress::cli
