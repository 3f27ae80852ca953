// A LibTorch training program that hands its model to compress in-process.
//
// 1. Trains a small CNN on Fashion-MNIST with LibTorch (torch::nn::Sequential,
//    Adam), reading the data through compress's eval/ dataset reader.
// 2. Imports the trained module into the IR with
//    compress::torch::import_sequential — no file round trip.
// 3. Continues training the imported model through the trainable executor
//    (compress::torch::TrainableModel, a torch::nn::Module) with a LibTorch
//    optimizer, writes the weights back into the IR.
// 4. Measures test accuracy of both with the reference backend and saves .cmf.
//
//   fashion_mnist_pipeline --out fashion_cnn.cmf [--epochs 2] [--finetune-epochs 1] [--seed 0] [--threads 2]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/runtime/backend.h"
#include "compress/support/progress.h"
#include "compress/support/threads.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainable_model.h"

namespace {

// The Fashion-MNIST normalization used by every fixture and recipe.
constexpr float kMean = 0.2860f;
constexpr float kStd = 0.3530f;

struct Options {
  std::string out = "fashion_cnn.cmf";
  int epochs = 2;
  int finetune_epochs = 1;
  int seed = 0;
  int threads = 0;
  int64_t batch = 128;
};

::torch::nn::Sequential make_cnn() {
  namespace nn = ::torch::nn;
  nn::Sequential model;
  model->push_back("conv1", nn::Conv2d(nn::Conv2dOptions(1, 16, 3).padding(1).bias(false)));
  model->push_back("bn1", nn::BatchNorm2d(16));
  model->push_back("relu1", nn::ReLU());
  model->push_back("pool1", nn::MaxPool2d(2));
  model->push_back("conv2", nn::Conv2d(nn::Conv2dOptions(16, 32, 3).padding(1).bias(false)));
  model->push_back("bn2", nn::BatchNorm2d(32));
  model->push_back("relu2", nn::ReLU());
  model->push_back("pool2", nn::MaxPool2d(2));
  model->push_back("flatten", nn::Flatten());
  model->push_back("fc1", nn::Linear(32 * 7 * 7, 128));
  model->push_back("relu3", nn::ReLU());
  model->push_back("dropout", nn::Dropout(0.2));
  model->push_back("fc2", nn::Linear(128, 10));
  return model;
}

struct Data {
  at::Tensor images;  // [N, 1, 28, 28]
  at::Tensor labels;  // [N] int64
};

Data load(const std::string& spec) {
  compress::eval::DatasetOptions options;
  options.normalization = {kMean, kStd};
  auto source = compress::value_or_throw(compress::eval::open_dataset(spec, options));
  auto batch = compress::value_or_throw(source->batch(0, source->size()));
  Data d;
  d.images = compress::value_or_throw(compress::torch::to_aten(batch.inputs));
  d.labels = at::tensor(batch.labels, at::kLong);
  return d;
}

// One epoch of minibatch training; `forward` is any module's forward.
template <typename Forward>
double train_epoch(Forward&& forward, ::torch::optim::Optimizer& optimizer, const Data& train, int64_t batch,
                   const std::string& label) {
  const int64_t n = train.images.size(0);
  const at::Tensor order = at::randperm(n, at::kLong);
  compress::ProgressReporter progress(label, n);
  double total_loss = 0;
  int64_t steps = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const at::Tensor idx = order.slice(0, start, std::min(n, start + batch));
    optimizer.zero_grad();
    at::Tensor loss = at::cross_entropy_loss(forward(train.images.index_select(0, idx)), train.labels.index_select(0, idx));
    loss.backward();
    optimizer.step();
    total_loss += loss.item<double>();
    ++steps;
    progress.advance(idx.size(0));
  }
  progress.finish();
  return total_loss / static_cast<double>(steps);
}

double accuracy_reference(const compress::ir::Graph& graph) {
  compress::eval::DatasetOptions options;
  options.normalization = {kMean, kStd};
  auto test = compress::value_or_throw(compress::eval::open_dataset("fashion-mnist:test", options));
  auto backend = compress::value_or_throw(compress::runtime::make_backend("reference"));
  auto plan = compress::value_or_throw(backend->compile(graph));
  return compress::value_or_throw(compress::eval::evaluate_top1(*plan, *test, 500)).top1();
}

int run(const Options& o) {
  ::torch::manual_seed(o.seed);
  compress::set_num_threads(o.threads);
  at::set_num_threads(compress::num_threads());
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("loading Fashion-MNIST from %s\n", compress::eval::kFashionMnistDir);
  const Data train = load("fashion-mnist:train");
  const Data test = load("fashion-mnist:test");

  // 1. Plain LibTorch training.
  ::torch::nn::Sequential cnn = make_cnn();
  ::torch::optim::Adam adam(cnn->parameters(), ::torch::optim::AdamOptions(1e-3));
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    cnn->train();
    const double loss = train_epoch([&](const at::Tensor& x) { return cnn->forward(x); }, adam, train, o.batch,
                                    "libtorch epoch " + std::to_string(epoch + 1));
    std::printf("libtorch epoch %d: mean loss %.4f\n", epoch + 1, loss);
  }
  cnn->eval();
  double libtorch_top1 = 0;
  {
    ::torch::NoGradGuard no_grad;
    const at::Tensor predictions = cnn->forward(test.images).argmax(1);
    libtorch_top1 = 100.0 * predictions.eq(test.labels).sum().item<double>() / static_cast<double>(test.labels.size(0));
  }
  std::printf("libtorch test top-1: %.2f%%\n", libtorch_top1);

  // 2. Hand-over: the trained module becomes IR in-process.
  compress::ir::Graph graph = compress::value_or_throw(
      compress::torch::import_sequential(cnn, compress::torch::InputSpec{"image", {1, 1, 28, 28}}));
  graph.name = "fashion_cnn";
  const double imported_top1 = accuracy_reference(graph);
  std::printf("imported graph (reference backend) test top-1: %.2f%%\n", imported_top1);

  // 3. Keep training the imported model through the trainable executor.
  auto trainable = compress::value_or_throw(compress::torch::TrainableModel::create(graph));
  ::torch::optim::Adam finetune(trainable->parameters(), ::torch::optim::AdamOptions(2e-4));
  for (int epoch = 0; epoch < o.finetune_epochs; ++epoch) {
    trainable->train();
    const double loss = train_epoch([&](const at::Tensor& x) { return trainable->forward(x); }, finetune, train,
                                    o.batch, "compress epoch " + std::to_string(epoch + 1));
    std::printf("trainable executor epoch %d: mean loss %.4f\n", epoch + 1, loss);
  }
  trainable->eval();
  compress::throw_if_error(trainable->write_back());
  const double final_top1 = accuracy_reference(trainable->graph());
  std::printf("after training through compress (reference backend) test top-1: %.2f%%\n", final_top1);

  // 4. Save.
  compress::throw_if_error(compress::io::save_cmf(trainable->graph(), o.out));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s (%.1f s in all)\n", o.out.c_str(), seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fashion_mnist_pipeline: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (arg == "--out") o.out = value();
      else if (arg == "--epochs") o.epochs = std::stoi(value());
      else if (arg == "--finetune-epochs") o.finetune_epochs = std::stoi(value());
      else if (arg == "--seed") o.seed = std::stoi(value());
      else if (arg == "--threads") o.threads = std::stoi(value());
      else if (arg == "--help" || arg == "-h") {
        std::printf("usage: fashion_mnist_pipeline [--out FILE.cmf] [--epochs N] [--finetune-epochs N] [--seed S] "
                    "[--threads T]\n");
        return 0;
      } else {
        std::fprintf(stderr, "fashion_mnist_pipeline: unknown option %s (see --help)\n", arg.c_str());
        return 2;
      }
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "fashion_mnist_pipeline: %s needs a number\n", arg.c_str());
      return 2;
    }
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_pipeline: %s\n", e.what());
    return 1;
  }
}
