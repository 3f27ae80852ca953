// `ctk infer MODEL --input x.npy --output y.npy`: run a model on NumPy data.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compress/io/files.h"
#include "compress/io/npy.h"
#include "compress/runtime/backend.h"
#include "compress/pipeline/model_loading.h"

namespace compress::cli {

const CommandDoc kInferDoc = {
    "infer",
    "run a model on .npy inputs and write its outputs as .npy",
    "ctk infer MODEL --input X.npy [--input ...] --output Y.npy [--output ...] [--backend NAME]",
    "Runs MODEL once on NumPy .npy inputs and writes each output as a .npy file,\n"
    "for comparing compress against PyTorch (np.load, torch.from_numpy).\n"
    "Give --input once per model input, in the model's input order; each must\n"
    "have the input's dtype (f64 files are read as f32) and shape, except that\n"
    "the batch (first) dimension may differ. Give --output once per model output,\n"
    "or once for a model with several outputs: then output i is written to the\n"
    "path with '.i' before its extension (y.npy -> y.0.npy, y.1.npy, ...).\n"
    "A TorchScript MODEL is imported with the inputs' shapes unless --input-shape\n"
    "gives others.",
    "  ctk infer model.pt --input x.npy --output y.npy\n"
    "  ctk infer model.cmf --input x.npy --output y.npy\n"
    "  ctk infer model.cmf --input x.npy --output y.npy --backend reference --threads 4\n"
    "  python3 -c \"import numpy as np; print(np.load('y.npy').argmax(1))\"\n",
};

namespace {

std::string indexed_path(const std::string& path, size_t index) {
  std::filesystem::path p(path);
  const std::string ext = p.has_extension() ? p.extension().string() : ".npy";
  p.replace_extension();
  return fmt::format("{}.{}{}", p.string(), index, ext);
}

std::string describe(const ir::Value& v) {
  return fmt::format("'{}' ({}{})", v.name(), ir::dtype_name(v.dtype()), ir::shape_to_string(v.shape()));
}

// The contract of ExecutionPlan::run: same dtype and rank, same dims except
// the batch.
Status check_input(const ir::Value& expected, const ir::Tensor& given, const std::string& path) {
  if (given.dtype() != expected.dtype()) {
    return invalid_argument("{}: dtype {} does not match model input {}", path, ir::dtype_name(given.dtype()),
                            describe(expected));
  }
  bool ok = given.rank() == static_cast<int64_t>(expected.shape().size());
  for (int64_t d = 1; ok && d < given.rank(); ++d) ok = given.dim(d) == expected.shape()[static_cast<size_t>(d)];
  if (given.rank() == 0 && !expected.shape().empty()) ok = false;
  if (!ok) {
    return invalid_argument("{}: shape {} does not match model input {} (only the batch dimension may differ)",
                            path, ir::shape_to_string(given.shape()), describe(expected));
  }
  return Status::ok();
}

}  // namespace

int run_infer(const std::vector<std::string>& args) {
  CommandLine cl(kInferDoc);
  cl.options().add_options()
      ("input,i", po::value<std::vector<std::string>>()->value_name("X.npy"), "input .npy file (once per model input)")
      ("output,o", po::value<std::vector<std::string>>()->value_name("Y.npy"),
       "output .npy file (once per model output, or one path that gets .0, .1, ... suffixes)")
      ("backend,b", po::value<std::string>()->default_value("reference")->value_name("NAME"),
       "backend to run on");
  cl.add_positional("model");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  if (!cl.has("input")) cl.usage_error("missing --input");
  if (!cl.has("output")) cl.usage_error("missing --output");
  const auto& input_paths = cl.vm()["input"].as<std::vector<std::string>>();
  const auto& output_paths = cl.vm()["output"].as<std::vector<std::string>>();
  const std::string& backend_name = cl.vm()["backend"].as<std::string>();
  const std::vector<std::string> backends = runtime::available_backends();
  if (std::find(backends.begin(), backends.end(), backend_name) == backends.end()) {
    cl.usage_error(fmt::format("unknown backend '{}' (available: {})", backend_name, fmt::join(backends, ", ")));
  }

  // A TorchScript model without --input-shape takes its input shapes from
  // the .npy inputs, which state them (the file may record none).
  std::vector<ir::Tensor> inputs;
  auto load_inputs = [&]() -> Status {
    for (const std::string& input_path : input_paths) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, io::load_npy(input_path));
      inputs.push_back(std::move(t));
    }
    return Status::ok();
  };
  pipeline::ModelLoadOptions model_options = cl.model_options();
  if (pipeline::is_torchscript_path(path) && model_options.input_shapes.empty()) {
    const Status loaded_inputs = load_inputs();
    if (!loaded_inputs.is_ok()) return report_failure(kInferDoc, loaded_inputs);
    model_options.input_shapes = pipeline::input_shapes_of(inputs);
  }
  Expected<ir::Graph> graph = pipeline::load_model(path, model_options);
  if (!graph.has_value()) return report_failure(kInferDoc, graph.status());
  const auto& graph_inputs = graph->inputs();
  const auto& graph_outputs = graph->outputs();
  if (input_paths.size() != graph_inputs.size()) {
    cl.usage_error(fmt::format("{} has {} input(s) but {} --input given", path, graph_inputs.size(),
                               input_paths.size()));
  }
  if (output_paths.size() != graph_outputs.size() && output_paths.size() != 1) {
    cl.usage_error(fmt::format("{} has {} output(s); give --output once per output or once in all", path,
                               graph_outputs.size()));
  }

  // Every destination is checked before anything runs; none may be an input
  // or another output (Note [Inputs and destinations]).
  std::vector<std::string> out_paths;
  for (size_t i = 0; i < graph_outputs.size(); ++i) {
    out_paths.push_back(output_paths.size() == graph_outputs.size() ? output_paths[i] : indexed_path(output_paths[0], i));
  }
  std::vector<std::string> sources = input_paths;
  sources.push_back(path);
  for (size_t i = 0; i < out_paths.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (out_paths[i] == out_paths[j] || io::same_file(out_paths[i], out_paths[j])) {
        cl.usage_error(fmt::format("--output '{}' is given for two outputs", out_paths[i]));
      }
    }
    const Status destination = check_destination(cl, out_paths[i], sources, "--output");
    if (!destination.is_ok()) return report_failure(kInferDoc, destination);
  }

  if (inputs.empty()) {
    const Status loaded_inputs = load_inputs();
    if (!loaded_inputs.is_ok()) return report_failure(kInferDoc, loaded_inputs);
  }
  for (size_t i = 0; i < input_paths.size(); ++i) {
    const Status fits = check_input(*graph_inputs[i], inputs[i], input_paths[i]);
    if (!fits.is_ok()) return report_failure(kInferDoc, fits);
  }

  Expected<std::unique_ptr<runtime::Backend>> backend = runtime::make_backend(backend_name);
  if (!backend.has_value()) return report_failure(kInferDoc, backend.status());
  Expected<std::unique_ptr<runtime::ExecutionPlan>> plan = (*backend)->compile(*graph);
  if (!plan.has_value()) return report_failure(kInferDoc, plan.status().with_context(path));
  Expected<std::vector<ir::Tensor>> outputs = (*plan)->run(inputs);
  if (!outputs.has_value()) return report_failure(kInferDoc, outputs.status().with_context(path));

  const bool quiet = cl.vm()["quiet"].as<bool>();
  for (size_t i = 0; i < outputs->size(); ++i) {
    const std::string& out_path = out_paths[i];
    const Status saved = io::save_npy((*outputs)[i], out_path);
    if (!saved.is_ok()) return report_failure(kInferDoc, saved);
    if (!quiet) {
      std::cout << fmt::format("wrote {}: {}{}\n", out_path, ir::dtype_name((*outputs)[i].dtype()),
                               ir::shape_to_string((*outputs)[i].shape()));
    }
  }
  return kExitOk;
}

}  // namespace compress::cli
