// .cmf round trips: every dtype, quant granularity and sparse layout, bit for bit, with and without mmap.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstring>
#include <random>

#include "cmf_test_util.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/printer.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"

using namespace compress;
using namespace compress::ir;
using compress::test::CmfImage;
using compress::test::TempDir;

namespace {

// Random bytes, except that bool stays 0/1 (the IR's bool representation).
Tensor random_tensor(DType dtype, Shape shape, uint32_t seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape)).value();
  std::mt19937 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dtype == DType::kBool ? rng() & 1 : rng());
  return t;
}

std::shared_ptr<const QuantParams> quant(QuantParams::Spec spec) {
  return std::make_shared<const QuantParams>(QuantParams::create(std::move(spec)).value());
}

// A graph whose constants are `tensors` (unused by the single relu node).
Graph graph_with_constants(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  Graph g;
  g.name = "constants";
  Value* x = g.add_input("x", ValueType{DType::kF32, {2, 3}, nullptr}).value();
  for (const auto& [name, t] : tensors) g.add_constant(name, t).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  REQUIRE(verify(g).is_ok());
  return g;
}

struct Loaded {
  std::string how;
  Graph graph;
};

// The graph through serialize+parse, save+load with mmap and save+load without.
std::vector<Loaded> round_trips(const Graph& g, const TempDir& dir) {
  std::vector<Loaded> out;
  const std::string bytes = io::serialize_cmf(g).value();
  out.push_back({"parse_cmf", io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).value()});
  const std::string path = dir.file("model.cmf");
  REQUIRE(io::save_cmf(g, path).is_ok());
  CHECK(test::read_bytes(path) == bytes);
  io::CmfLoadOptions mmap_opts;
  mmap_opts.use_mmap = true;
  out.push_back({"load_cmf mmap", io::load_cmf(path, mmap_opts).value()});
  io::CmfLoadOptions read_opts;
  read_opts.use_mmap = false;
  out.push_back({"load_cmf read", io::load_cmf(path, read_opts).value()});
  io::CmfLoadOptions unverified;
  unverified.verify_checksums = false;
  out.push_back({"load_cmf mmap unverified", io::load_cmf(path, unverified).value()});
  return out;
}

void check_same_constants(const Graph& a, const Graph& b, const std::string& how) {
  INFO(how);
  const auto ca = a.constants();
  const auto cb = b.constants();
  REQUIRE(ca.size() == cb.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    INFO("constant " << ca[i]->name());
    CHECK(ca[i]->name() == cb[i]->name());
    CHECK(ca[i]->constant().bitwise_equal(cb[i]->constant()));
    CHECK(ca[i]->type() == cb[i]->type());
    // Loaded data keeps the 64-byte alignment of owned tensors.
    CHECK(reinterpret_cast<uintptr_t>(cb[i]->constant().raw_data()) % kTensorAlignment == 0);
  }
  CHECK(print_graph(a) == print_graph(b));
}

}  // namespace

TEST_CASE("cmf round trip: every dtype, bit for bit") {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint32_t seed = 1;
  for (const DTypeTraits& t : kDTypeTable) {
    // Odd element counts exercise the half-used last byte of packed types.
    tensors.push_back({fmt::format("t.{}", t.name), random_tensor(t.dtype, {3, 5}, seed++)});
    tensors.push_back({fmt::format("t.{}.scalar", t.name), random_tensor(t.dtype, {}, seed++)});
    tensors.push_back({fmt::format("t.{}.empty", t.name), random_tensor(t.dtype, {0, 7}, seed++)});
    tensors.push_back({fmt::format("t.{}.big", t.name), random_tensor(t.dtype, {129, 3, 2, 1}, seed++)});
  }
  const Graph g = graph_with_constants(tensors);
  for (const Loaded& l : round_trips(g, dir)) check_same_constants(g, l.graph, l.how);
}

TEST_CASE("cmf round trip: every quant granularity, on constants and on value types") {
  TempDir dir;
  QuantParams::Spec per_tensor;
  per_tensor.storage = DType::kU8;
  per_tensor.scales = {0.0125f};
  per_tensor.zero_points = {128};
  QuantParams::Spec per_axis;
  per_axis.storage = DType::kI8;
  per_axis.granularity = QuantGranularity::kPerAxis;
  per_axis.axis = 1;
  per_axis.scales = {0.5f, 0.25f, 1e-30f, 3.0e30f, 1.0f};
  per_axis.zero_points = {0, 1, -1, 127, -127};
  per_axis.qmin = -127;
  per_axis.qmax = 127;
  QuantParams::Spec per_group;
  per_group.storage = DType::kI4;
  per_group.granularity = QuantGranularity::kPerGroup;
  per_group.axis = 1;
  per_group.group_size = 2;
  per_group.scales = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};  // 3 rows x (4 / 2) groups
  per_group.zero_points = {0, 1, 2, -1, -2, 7};
  QuantParams::Spec acc;
  acc.storage = DType::kI32;
  acc.scales = {1e-4f};

  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"q.per_tensor", random_tensor(DType::kU8, {4, 4}, 11).with_quant(quant(per_tensor))},
      {"q.per_axis", random_tensor(DType::kI8, {2, 5, 3}, 12).with_quant(quant(per_axis))},
      {"q.per_group", random_tensor(DType::kI4, {3, 4}, 13).with_quant(quant(per_group))},
      {"q.i32", random_tensor(DType::kI32, {7}, 14).with_quant(quant(acc))},
  };
  Graph g = graph_with_constants(tensors);
  // A quantized graph input and a quantize node give value types with params.
  Value* qx = g.add_input("qx", ValueType{DType::kU8, {4, 4}, quant(per_tensor)}).value();
  Value* x = g.inputs()[0];
  Node* q = g.add_node("quantize", {x},
                       {{"dtype", std::string("i8")},
                        {"scale", std::vector<double>{0.5, 0.25, 0.125}},
                        {"zero_point", std::vector<int64_t>{0, 1, 2}},
                        {"axis", int64_t{1}}},
                       "quant")
                .value();
  Node* dq = g.add_node("dequantize", {qx}, {}, "dq").value();
  g.set_outputs({g.outputs()[0], q->output(), dq->output()});
  REQUIRE(verify(g).is_ok());
  for (const Loaded& l : round_trips(g, dir)) {
    check_same_constants(g, l.graph, l.how);
    INFO(l.how);
    REQUIRE(l.graph.find_value("qx") != nullptr);
    CHECK(l.graph.find_value("qx")->type() == qx->type());
    CHECK(l.graph.find_value("quant")->type() == q->output()->type());
    REQUIRE(l.graph.find_value("quant")->type().quant != nullptr);
    CHECK(l.graph.find_value("quant")->type().quant->granularity() == QuantGranularity::kPerAxis);
  }
}

TEST_CASE("cmf round trip: every sparse layout, with and without quant params") {
  TempDir dir;
  // Half the entries zero, in a pattern that leaves some rows empty.
  Tensor dense = Tensor::zeros(DType::kF32, {8, 2, 2, 2}).value();
  for (int64_t i = 0; i < dense.numel(); ++i) {
    if ((i * 7) % 3 != 0 && i / 8 != 5) dense.data<float>()[i] = 0.25f * static_cast<float>(i) - 3.0f;
  }
  std::vector<float> block_values(24, 0.0f);
  for (size_t r = 0; r < 2; ++r) {
    for (size_t c = 2; c < 4; ++c) block_values[r * 6 + c] = static_cast<float>(r + c);
  }
  const Tensor blocky = Tensor::from_vector<float>(DType::kF32, {4, 6}, block_values);
  Tensor q = random_tensor(DType::kI8, {4, 8}, 21);
  for (int64_t i = 0; i < q.numel(); i += 3) q.data<int8_t>()[i] = 0;
  QuantParams::Spec spec;
  spec.storage = DType::kI8;
  spec.granularity = QuantGranularity::kPerAxis;
  spec.axis = 0;
  spec.scales = {0.1f, 0.2f, 0.3f, 0.4f};
  q = q.with_quant(quant(spec));

  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"s.mask", to_mask_layout(dense).value()},
      {"s.csr", to_csr_layout(dense).value()},
      {"s.nm", to_nm_layout(dense, 2, 4).value()},
      {"s.block", to_block_layout(blocky, 2, 2).value()},
      {"s.csr.quant", to_csr_layout(q).value()},
      {"s.nm.quant", to_nm_layout(q, 1, 4).value()},
      {"s.csr.empty", to_csr_layout(Tensor::zeros(DType::kF32, {3, 3}).value()).value()},
  };
  for (const auto& [name, t] : tensors) REQUIRE(t.is_sparse());
  const Graph g = graph_with_constants(tensors);
  for (const Loaded& l : round_trips(g, dir)) {
    check_same_constants(g, l.graph, l.how);
    for (const auto& [name, t] : tensors) {
      INFO(l.how << " " << name);
      const Tensor& back = l.graph.find_value(name)->constant();
      REQUIRE(back.is_sparse());
      CHECK(back.sparse_layout()->format == t.sparse_layout()->format);
      CHECK(back.to_dense().value().bitwise_equal(t.to_dense().value()));
    }
  }
}

TEST_CASE("cmf round trip: a graph with nodes and attributes of every kind prints identically") {
  TempDir dir;
  Graph g;
  g.name = "every_attribute";
  Value* x = g.add_input("image", ValueType{DType::kF32, {2, 3, 8, 8}, nullptr}).value();
  Value* w = g.add_constant("conv.weight", random_tensor(DType::kF32, {4, 3, 3, 3}, 5)).value();
  Value* conv = g.add_node("conv2d", {x, w},
                           {{"stride", std::vector<int64_t>{2, 2}},               // ints
                            {"padding", std::vector<int64_t>{1, 1, 1, 1}},
                            {"groups", int64_t{1}}},                               // int
                           "features.0.conv")
                    .value()
                    ->output();
  std::vector<Value*> bn_inputs = {conv};
  for (const char* p : {"bn.weight", "bn.bias", "bn.mean", "bn.var"}) {
    Tensor t = Tensor::from_vector<float>(DType::kF32, {4}, {1.0f, 0.5f, 0.25f, 2.0f});
    bn_inputs.push_back(g.add_constant(p, t).value());
  }
  Value* bn = g.add_node("batch_norm", bn_inputs, {{"eps", 1e-3}}, "features.0.bn").value()->output();  // float
  Value* act = g.add_node("gelu", {bn}, {{"approximate", std::string("tanh")}}, "features.0.act")        // string
                   .value()
                   ->output();
  Value* flat = g.add_node("flatten", {act}, {{"start_dim", int64_t{1}}}, "flatten").value()->output();
  Value* fw = g.add_constant("fc.weight", random_tensor(DType::kF32, {5, 64}, 6)).value();
  Value* fc = g.add_node("linear", {flat, fw}, {}, "fc").value()->output();
  Node* q = g.add_node("fake_quant", {fc},
                       {{"dtype", std::string("i8")},
                        {"scale", std::vector<double>{0.05}},                   // floats
                        {"zero_point", std::vector<int64_t>{3}}},
                       "fc.fake_quant")
                .value();
  Node* split = g.add_node("split", {q->output()}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{2, 3}}}, "split")
                    .value();
  Value* sm = g.add_node("softmax", {split->output(1)}, {{"axis", int64_t{-1}}}, "softmax").value()->output();
  g.set_outputs({split->output(0), sm});
  REQUIRE(verify(g).is_ok());
  const std::string printed = print_graph(g);
  for (const Loaded& l : round_trips(g, dir)) {
    INFO(l.how);
    CHECK(print_graph(l.graph) == printed);
    CHECK(l.graph.name == g.name);
    REQUIRE(l.graph.num_nodes() == g.num_nodes());
    const auto a = g.nodes();
    const auto b = l.graph.nodes();
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i]->name() == b[i]->name());
      CHECK(a[i]->attrs() == b[i]->attrs());
    }
    check_same_constants(g, l.graph, l.how);
  }
}

TEST_CASE("cmf bytes are canonical: serialize(load(file)) == file") {
  TempDir dir;
  const Graph g = test::tiny_graph();
  const std::string bytes = io::serialize_cmf(g).value();
  CHECK(io::serialize_cmf(g).value() == bytes);
  for (const Loaded& l : round_trips(g, dir)) {
    INFO(l.how);
    CHECK(io::serialize_cmf(l.graph).value() == bytes);
  }
}

TEST_CASE("cmf test field map agrees with the writer") {
  const Graph g = test::tiny_graph();
  const CmfImage image(io::serialize_cmf(g).value());
  CHECK(image.get_u64("tensor_count") == 3);
  CHECK(image.get_u64("constant_count") == 3);
  CHECK(image.get_u64("node_count") == 3);
  CHECK(image.get_u64("output_count") == 2);
  CHECK(image.data_start % io::cmf::kDataAlignment == 0);
  CHECK(image.bytes.substr(image.at("node.0.op"), 6) == "linear");
  // A tensor's index blobs precede its values in the data section.
  CHECK(image.get_u64("tensor.0.index.0.offset") == 0);
  CHECK(image.get_u64("tensor.0.offset") == 128);
}

TEST_CASE("mmap loading borrows copy-on-write pages that outlive the graph") {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors = {{"w", random_tensor(DType::kF32, {256, 64}, 3)}};
  const Graph g = graph_with_constants(tensors);
  const std::string path = dir.file("cow.cmf");
  REQUIRE(io::save_cmf(g, path).is_ok());
  const std::string before = test::read_bytes(path);

  Tensor kept;
  {
    Graph loaded = io::load_cmf(path).value();
    kept = loaded.find_value("w")->constant();
    REQUIRE(kept.storage()->is_borrowed());
  }
  // The graph is gone; the tensor's storage still holds the mapping open.
  CHECK(kept.bitwise_equal(tensors[0].second));
  // Writing through the mapping changes this process's copy, never the file.
  kept.data<float>()[0] = 12345.0f;
  kept.data<float>()[kept.numel() - 1] = -1.0f;
  CHECK(test::read_bytes(path) == before);
  CHECK(io::load_cmf(path).value().find_value("w")->constant().bitwise_equal(tensors[0].second));

  io::CmfLoadOptions read_opts;
  read_opts.use_mmap = false;
  CHECK_FALSE(io::load_cmf(path, read_opts).value().find_value("w")->constant().storage()->is_borrowed());
}

TEST_CASE("save_cmf refuses a graph that does not verify and leaves the old file") {
  TempDir dir;
  const std::string path = dir.file("model.cmf");
  REQUIRE(io::save_cmf(test::tiny_graph(), path).is_ok());
  const std::string before = test::read_bytes(path);
  Graph bad;
  bad.add_input("x", ValueType{DType::kF32, {2}, nullptr}).value();  // no outputs: fails verify
  const Status st = io::save_cmf(bad, path);
  REQUIRE_FALSE(st.is_ok());
  CHECK_THAT(st.message(), Catch::Matchers::Contains("does not verify"));
  CHECK(test::read_bytes(path) == before);
  CHECK(dir.list() == std::vector<std::string>{"model.cmf"});
}

TEST_CASE("load_cmf reports missing files and folders by name") {
  TempDir dir;
  auto missing = io::load_cmf(dir.file("nope.cmf"));
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Matchers::Contains("nope.cmf"));
  auto folder = io::load_cmf(dir.path());
  REQUIRE_FALSE(folder.has_value());
  CHECK_THAT(folder.status().message(), Catch::Matchers::Contains("directory"));
  // A FIFO must be refused, not waited on.
  const std::string fifo = dir.file("pipe.cmf");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (bool mmap : {true, false}) {
    io::CmfLoadOptions opts;
    opts.use_mmap = mmap;
    auto piped = io::load_cmf(fifo, opts);
    REQUIRE_FALSE(piped.has_value());
    CHECK_THAT(piped.status().message(), Catch::Matchers::Contains("not a regular file"));
  }
}

TEST_CASE("save_cmf refuses what load_cmf would refuse (rank above the maximum)") {
  TempDir dir;
  Graph g;
  Value* x = g.add_input("x", ValueType{DType::kF32, Shape(9, 1), nullptr}).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  if (!verify(g).is_ok()) return;  // the IR already refuses such graphs
  const Status st = io::save_cmf(g, dir.file("m.cmf"));
  REQUIRE_FALSE(st.is_ok());
  CHECK_THAT(st.message(), Catch::Matchers::Contains("rank 9 exceeds the maximum rank 8"));
  CHECK(dir.list().empty());
}
