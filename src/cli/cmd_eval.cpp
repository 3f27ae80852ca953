// `ctk eval MODEL --data SPEC`: top-1 accuracy of a model over a dataset, on a backend.
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/runtime/backend.h"
#include "compress/support/threads.h"
#include "compress/pipeline/model_loading.h"

namespace compress::cli {

const CommandDoc kEvalDoc = {
    "eval",
    "measure a model's top-1 accuracy on a dataset",
    "ctk eval MODEL --data SPEC [--mean M --std S] [--backend onednn|reference] [--dtype f32|bf16] "
    "[--batch B] [--limit N] [--json]",
    "Runs MODEL over every sample of the dataset on the backend and prints the\n"
    "top-1 accuracy in percent (argmax of the first output against the labels).\n"
    "Datasets: fashion-mnist:train, fashion-mnist:test (Debian's\n"
    "dataset-fashion-mnist package, or $COMPRESS_FASHION_MNIST_DIR),\n"
    "idx:IMAGES,LABELS (IDX files, .gz allowed) and npy:SAMPLES,LABELS (f32\n"
    "samples taken as they are, or i64/i32 token ids). Image pixels are scaled\n"
    "to [0, 1] and normalized as (x - mean) / std. With\n"
    "--json, one object: top1, correct, samples, dataset, backend, dtype,\n"
    "threads, seconds.",
    "  ctk eval fashion_cnn.cmf --data fashion-mnist:test --mean 0.286 --std 0.353\n"
    "  ctk eval fashion_cnn.cmf --data fashion-mnist:test --mean 0.286 --std 0.353 --backend onednn --json\n"
    "  ctk eval model.cmf --data npy:x.npy,y.npy --backend reference\n",
};

int run_eval(const std::vector<std::string>& args) {
  CommandLine cl(kEvalDoc);
  cl.options().add_options()
      ("data,d", po::value<std::string>()->value_name("SPEC"), "dataset (see above)")
      ("backend,b", po::value<std::string>()->default_value("onednn")->value_name("NAME"), "backend to run on")
      ("dtype", po::value<std::string>()->default_value("f32")->value_name("f32|bf16"), "compute type (bf16: onednn)")
      ("batch", po::value<int64_t>()->default_value(256)->value_name("B"), "samples per run")
      ("json", po::bool_switch(), "print one JSON object on stdout");
  add_dataset_options(cl, true);
  cl.add_positional("model");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  if (!cl.has("data")) cl.usage_error("missing --data");
  const std::string spec = cl.vm()["data"].as<std::string>();
  const std::string backend_name = cl.vm()["backend"].as<std::string>();
  const std::string dtype = cl.vm()["dtype"].as<std::string>();
  const int64_t batch = cl.vm()["batch"].as<int64_t>();
  const eval::DatasetOptions options = dataset_options(cl);
  if (batch < 1) cl.usage_error(fmt::format("bad --batch {} (use >= 1)", batch));
  const std::vector<std::string> backends = runtime::available_backends();
  if (std::find(backends.begin(), backends.end(), backend_name) == backends.end()) {
    cl.usage_error(fmt::format("unknown backend '{}' (available: {})", backend_name, fmt::join(backends, ", ")));
  }

  Expected<ir::Graph> graph = pipeline::load_model(path, cl.model_options());
  if (!graph.has_value()) return report_failure(kEvalDoc, graph.status());
  auto data = eval::open_dataset(spec, options);
  if (!data.has_value()) return report_failure(kEvalDoc, data.status());
  runtime::BackendOptions backend_options;
  backend_options.compute = dtype;
  auto backend = runtime::make_backend(backend_name, backend_options);
  if (!backend.has_value()) return report_failure(kEvalDoc, backend.status());
  auto plan = (*backend)->compile(*graph);
  if (!plan.has_value()) return report_failure(kEvalDoc, plan.status().with_context(path));
  const auto start = std::chrono::steady_clock::now();
  const bool want_json = cl.vm()["json"].as<bool>();
  auto result = eval::evaluate_top1(**plan, **data, batch, !want_json && !cl.vm()["quiet"].as<bool>());
  if (!result.has_value()) return report_failure(kEvalDoc, result.status().with_context(path));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (want_json) {
    nlohmann::json j = {{"model", path},          {"dataset", spec},       {"top1", result->top1()},
                        {"correct", result->correct}, {"samples", result->samples}, {"backend", backend_name},
                        {"dtype", dtype},         {"threads", num_threads()}, {"seconds", seconds}};
    std::cout << json_text(j, -1) << "\n";
  } else {
    std::cout << fmt::format("{}: top-1 {:.2f}% ({}/{}) on {} [{} {}, {} threads, {:.1f} s]\n", path, result->top1(),
                             result->correct, result->samples, (*data)->describe(), backend_name, dtype,
                             num_threads(), seconds);
  }
  return kExitOk;
}

}  // namespace compress::cli
