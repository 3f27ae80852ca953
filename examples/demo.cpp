// compress demo: build a small CNN with the C++ API, save/reload it as .cmf,
// run it on the reference backend and print its inspection.
//
// Later issues grow this into: train or load a Fashion-MNIST model, compress
// it, and print the accuracy/latency/size comparison report.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "compress/analysis/model_stats.h"
#include "compress/analysis/stats_report.h"
#include "compress/io/cmf.h"
#include "compress/ir/graph.h"
#include "compress/runtime/reference.h"

namespace {

using compress::value_or_throw;
using compress::ir::DType;
using compress::ir::Graph;
using compress::ir::Shape;
using compress::ir::Tensor;
using compress::ir::Value;

// Builds the demo network node by node. Every constant is named after the
// layer that owns it ("layer1.conv1.weight"), as a TorchScript import would.
class DemoCnnBuilder {
 public:
  explicit DemoCnnBuilder(uint32_t seed) : rng_(seed) {}

  Graph build(int64_t batch, int64_t channels, int64_t size, int64_t classes) {
    Graph g;
    g.name = "demo_cnn";
    compress::ir::ValueType image;
    image.shape = {batch, channels, size, size};
    Value* x = value_or_throw(g.add_input("x", image));
    Value* h = conv_bn_relu(g, x, "stem", channels, 8);
    h = node(g, "max_pool2d", {h}, {{"kernel", ints({2, 2})}, {"stride", ints({2, 2})}}, "stem.pool");
    // A basic residual block: relu(bn(conv(relu(bn(conv(h))))) + h).
    Value* r = conv_bn_relu(g, h, "layer1.0", 8, 8, /*suffix=*/"1");
    r = conv_bn(g, r, "layer1.0", 8, 8, "2");
    h = node(g, "add", {r, h}, {}, "layer1.0.add");
    h = node(g, "relu", {h}, {}, "layer1.0.relu2");
    h = node(g, "adaptive_avg_pool2d", {h}, {{"output_size", ints({1, 1})}}, "avgpool");
    h = node(g, "flatten", {h}, {}, "flatten");
    Value* w = constant(g, "fc.weight", {classes, 8}, 1.0f / std::sqrt(8.0f));
    Value* b = constant(g, "fc.bias", {classes}, 0.1f);
    h = node(g, "linear", {h, w, b}, {}, "fc");
    h = node(g, "softmax", {h}, {{"axis", int64_t{-1}}}, "probs");
    g.set_outputs({h});
    return g;
  }

  Tensor random_tensor(Shape shape, float stddev) {
    std::normal_distribution<float> normal(0.0f, stddev);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = normal(rng_);
    return Tensor::from_vector(DType::kF32, std::move(shape), values);
  }

 private:
  static compress::ir::Attribute ints(std::vector<int64_t> v) { return v; }

  Value* node(Graph& g, const std::string& op, const std::vector<Value*>& inputs, compress::ir::AttributeMap attrs,
              const std::string& name) {
    return value_or_throw(g.add_node(op, inputs, std::move(attrs), name))->output(0);
  }

  Value* constant(Graph& g, const std::string& name, Shape shape, float stddev) {
    return value_or_throw(g.add_constant(name, random_tensor(std::move(shape), stddev)));
  }

  Value* positive_constant(Graph& g, const std::string& name, int64_t n) {
    std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = uniform(rng_);
    return value_or_throw(g.add_constant(name, Tensor::from_vector(DType::kF32, {n}, values)));
  }

  Value* conv_bn(Graph& g, Value* x, const std::string& prefix, int64_t cin, int64_t cout,
                 const std::string& suffix = "") {
    const std::string conv = prefix + ".conv" + suffix;
    const std::string bn = prefix + ".bn" + suffix;
    // He initialisation keeps activations in a sensible range through relu.
    Value* w = constant(g, conv + ".weight", {cout, cin, 3, 3}, std::sqrt(2.0f / static_cast<float>(cin * 9)));
    Value* y = node(g, "conv2d", {x, w}, {{"padding", ints({1, 1, 1, 1})}}, conv);
    Value* gamma = positive_constant(g, bn + ".weight", cout);
    Value* beta = constant(g, bn + ".bias", {cout}, 0.1f);
    Value* mean = constant(g, bn + ".running_mean", {cout}, 0.1f);
    Value* var = positive_constant(g, bn + ".running_var", cout);
    return node(g, "batch_norm", {y, gamma, beta, mean, var}, {}, bn);
  }

  Value* conv_bn_relu(Graph& g, Value* x, const std::string& prefix, int64_t cin, int64_t cout,
                      const std::string& suffix = "") {
    Value* y = conv_bn(g, x, prefix, cin, cout, suffix);
    return node(g, "relu", {y}, {}, prefix + ".relu" + suffix);
  }

  std::mt19937 rng_;
};

bool same_values(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

int run_demo(const std::filesystem::path& out_dir) {
  DemoCnnBuilder builder(/*seed=*/42);
  const Graph model = builder.build(/*batch=*/2, /*channels=*/3, /*size=*/16, /*classes=*/10);

  std::filesystem::create_directories(out_dir);
  const std::string path = (out_dir / "demo_cnn.cmf").string();
  compress::throw_if_error(compress::io::save_cmf(model, path));
  const Graph reloaded = value_or_throw(compress::io::load_cmf(path));
  std::printf("saved and reloaded %s\n\n", path.c_str());

  const Tensor input = builder.random_tensor({2, 3, 16, 16}, 1.0f);
  const auto expected = value_or_throw(compress::runtime::run_reference(model, {input}));
  const auto actual = value_or_throw(compress::runtime::run_reference(reloaded, {input}));
  if (expected.size() != actual.size() || !same_values(expected[0], actual[0])) {
    std::fprintf(stderr, "demo: the reloaded model's output differs from the in-memory model's\n");
    return 1;
  }

  compress::analysis::StatsReportOptions options;
  options.source = path;
  options.file_size_bytes = std::filesystem::file_size(path);
  std::fputs(compress::analysis::format_model_stats(compress::analysis::compute_model_stats(reloaded), options).c_str(),
             stdout);

  const Tensor& probs = actual[0];
  std::printf("\nreference backend, %lld random images: reloaded output equals the in-memory model's, bit for bit\n",
              static_cast<long long>(probs.dim(0)));
  for (int64_t i = 0; i < probs.dim(0); ++i) {
    const float* row = probs.data<float>() + i * probs.dim(1);
    int64_t best = 0;
    for (int64_t c = 1; c < probs.dim(1); ++c) best = row[c] > row[best] ? c : best;
    std::printf("  image %lld: class %lld (p = %.3f)\n", static_cast<long long>(i), static_cast<long long>(best),
                static_cast<double>(row[best]));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0))) {
    std::fprintf(argc > 2 ? stderr : stdout, "usage: compress_demo [OUTPUT_DIR]  (default: ./demo-out)\n");
    return argc > 2 ? 2 : 0;
  }
  try {
    return run_demo(argc == 2 ? argv[1] : "demo-out");
  } catch (const std::exception& e) {
    // compress::Error from the convenience API, or a filesystem error.
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 1;
  }
}
