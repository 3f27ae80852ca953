// `ctk quantize MODEL OUT.cmf --calib SPEC`: the default PTQ pipeline (fold batch norm, quant.ptq).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"
#include "compress/quant/ptq_pass.h"
#include "compress/pipeline/model_loading.h"

namespace compress::cli {

const CommandDoc kQuantizeDoc = {
    "quantize",
    "post-training int8 quantization with calibration data",
    "ctk quantize MODEL OUT.cmf --calib SPEC [--mean M --std S] [--samples N] [--batch B] [--observer minmax|moving_average|percentile|kl|mse] "
    "[--keep-f32 LAYER]... [--weight-granularity per_channel|per_tensor] [--weight-bits 8|7] [--fake-quant]",
    "Folds batch norms into the preceding conv2d/linear, calibrates activation\n"
    "ranges on the first N samples of the dataset (f32 graph on the reference\n"
    "backend, or --calib-backend onednn) and writes the int8 graph: u8\n"
    "asymmetric activations per tensor, s8 symmetric weights per output channel\n"
    "(or one scale per weight tensor with --weight-granularity per_tensor;\n"
    "--weight-bits 7 keeps them in [-63, 63], which oneDNN's int8 kernels sum\n"
    "exactly on CPUs without VNNI: see docs/onednn.md),\n"
    "f32 bias, a following ReLU, ReLU6 or clamp(0, M) fused into the output\n"
    "range, f32 logits. It runs on the onednn and reference backends with\n"
    "identical results. --fake-quant writes\n"
    "the f32 simulation of the same int8 graph instead (fake_quant nodes with\n"
    "the same params; see docs/quantization.md). Datasets as for ctk eval.\n"
    "A model whose reshapes were fixed to one batch at conversion (ctk convert\n"
    "--input-shape) calibrates with --batch equal to it.",
    "  ctk quantize fashion_cnn.cmf fashion_int8.cmf --calib fashion-mnist:train --mean 0.286 --std 0.353\n"
    "  ctk quantize fashion_cnn.cmf int8_mixed.cmf --calib fashion-mnist:train --mean 0.286 --std 0.353 --keep-f32 conv1\n"
    "  ctk quantize fashion_cnn.cmf sim.cmf --calib fashion-mnist:train --mean 0.286 --std 0.353 --fake-quant\n"
    "  ctk quantize encoder_b32.cmf encoder_int8.cmf --calib npy:tokens.npy,labels.npy --batch 32\n",
};

int run_quantize(const std::vector<std::string>& args) {
  CommandLine cl(kQuantizeDoc);
  cl.options().add_options()
      ("calib,c", po::value<std::string>()->value_name("SPEC"), "calibration dataset (see ctk eval --help)")
      ("samples", po::value<int64_t>()->default_value(512)->value_name("N"), "calibration samples")
      ("batch", po::value<int64_t>()->default_value(64)->value_name("B"), "calibration batch size")
      ("observer", po::value<std::string>()->default_value("minmax")->value_name("NAME"), "minmax | moving_average | percentile | kl | mse")
      ("calib-backend", po::value<std::string>()->default_value("reference")->value_name("NAME"),
       "backend that runs the f32 graph during calibration")
      ("keep-f32", po::value<std::vector<std::string>>()->composing()->value_name("LAYER"),
       "leave this conv2d/linear in f32 (repeatable)")
      ("weight-granularity", po::value<std::string>()->default_value("per_channel")->value_name("G"),
       "s8 weight scales: per_channel (one per output channel) | per_tensor (one per weight)")
      ("weight-bits", po::value<int64_t>()->default_value(8)->value_name("N"),
       "s8 weight codes: 8 ([-127, 127]) | 7 ([-63, 63], native int8 on CPUs without VNNI)")
      ("fake-quant", po::bool_switch(), "write the fake-quant simulation instead of the int8 graph");
  add_dataset_options(cl, false);
  cl.add_positional("model");
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const std::string out = cl.required_positional("out", "OUT.cmf");
  if (!cl.has("calib")) cl.usage_error("missing --calib");
  // The options go through quant.ptq's own parser, so the command line and
  // recipes accept exactly the same values (and say the same on errors).
  // Each option as (recipe key, value), and (recipe key, flag) to word the
  // pass's errors in flags.
  std::vector<std::pair<std::string, std::string>> pairs, key_flags;
  auto forward = [&](const char* flag, const char* key, std::string value) {
    pairs.emplace_back(key, std::move(value));
    key_flags.emplace_back(key, std::string("--") + flag);
  };
  forward("samples", "samples", std::to_string(cl.vm()["samples"].as<int64_t>()));
  forward("batch", "batch", std::to_string(cl.vm()["batch"].as<int64_t>()));
  forward("observer", "observer", cl.vm()["observer"].as<std::string>());
  forward("calib-backend", "calibration_backend", cl.vm()["calib-backend"].as<std::string>());
  forward("fake-quant", "fake_quant", cl.vm()["fake-quant"].as<bool>() ? "true" : "false");
  forward("weight-granularity", "weight_granularity", cl.vm()["weight-granularity"].as<std::string>());
  forward("weight-bits", "weight_bits", std::to_string(cl.vm()["weight-bits"].as<int64_t>()));
  if (cl.has("keep-f32")) {
    std::string list;
    for (const std::string& layer : cl.vm()["keep-f32"].as<std::vector<std::string>>()) {
      list += (list.empty() ? "[" : ", ") + nlohmann::json(layer).dump();  // a JSON string is a YAML scalar
    }
    forward("keep-f32", "keep_f32", list + "]");
  }
  auto pass_options = pass::PassOptions::from_pairs(pairs, "");
  if (!pass_options.has_value()) cl.usage_error(in_flag_terms(pass_options.status().message(), key_flags));
  auto parsed = quant::PtqPass::parse_options(*pass_options);
  if (!parsed.has_value()) cl.usage_error(in_flag_terms(parsed.status().message(), key_flags));
  const quant::PtqPass::Options ptq = *parsed;
  eval::DatasetOptions options = dataset_options(cl);
  options.limit = ptq.samples;
  require_cmf_destination(cl, out, "OUT");
  const Status destination = check_destination(cl, out, {path}, "OUT");
  if (!destination.is_ok()) return report_failure(kQuantizeDoc, destination);

  Expected<ir::Graph> graph = pipeline::load_model(path, cl.model_options());
  if (!graph.has_value()) return report_failure(kQuantizeDoc, graph.status());
  auto data = eval::open_dataset(cl.vm()["calib"].as<std::string>(), options);
  if (!data.has_value()) return report_failure(kQuantizeDoc, data.status());

  pass::PassContext context;
  context.progress = !cl.vm()["quiet"].as<bool>();
  auto result = quant::quantize_ptq(*graph, **data, ptq, context);
  if (!result.has_value()) return report_failure(kQuantizeDoc, result.status().with_context(path));
  const pass::PassResult& ptq_result = *result;
  if (!ptq_result.changed) {
    return report_failure(kQuantizeDoc,
                          invalid_argument("{}: nothing to quantize (no conv2d/linear with constant f32 weights); "
                                           "no output written",
                                           path));
  }
  Status saved = io::save_cmf(*graph, out);
  if (!saved.is_ok()) return report_failure(kQuantizeDoc, saved);
  std::cout << fmt::format("{}: {} layers quantized ({}), {} calibration samples of {}, {} observer -> {}\n", path,
                           ptq_result.layers.size(), ptq.fake_quant ? "fake-quant simulation" : "int8",
                           ptq_result.counters.at("calibration_samples"), (*data)->describe(), ptq.observer, out);
  for (const auto& [layer, s] : ptq_result.layers) {
    std::cout << fmt::format("  {:<12} in scale {:.6g} zp {:g}, weight scales [{:.3g}, {:.3g}]{}{}\n", layer,
                             s.at("input_scale"), s.at("input_zero_point"), s.at("weight_scale_min"),
                             s.at("weight_scale_max"),
                             s.count("output_scale") ? fmt::format(", out scale {:.6g}", s.at("output_scale"))
                                                     : std::string(", f32 out"),
                             s.at("relu_fused") != 0.0 ? " (activation fused)" : "");
  }
  return kExitOk;
}

}  // namespace compress::cli
