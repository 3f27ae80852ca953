// The graph's annotation store: typed payloads keyed by (kind, target), and their lifetime (Note [Annotations]).
#include <catch2/catch.hpp>

#include "compress/ir/printer.h"
#include "compress/ir/verifier.h"
#include "ir_test_util.h"

using namespace compress;
using namespace compress::ir;

namespace {
Tensor scores(std::vector<float> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector<float>(DType::kF32, {n}, std::move(v));
}
}  // namespace

TEST_CASE("annotations: set, replace, find, erase, and list in name order") {
  Graph g = test::small_cnn();
  AnnotationStore& a = g.annotations();
  const AnnotationTarget conv2 = AnnotationTarget::node(*g.find_node("conv2"));
  const AnnotationTarget conv1 = AnnotationTarget::node(*g.find_node("conv1"));
  REQUIRE(a.set("test.k", conv2, scores({1, 2, 3, 4})).is_ok());
  REQUIRE(a.set("test.k", conv1, scores({5, 6, 7, 8})).is_ok());
  REQUIRE(a.set("test.k", conv1, scores({9, 9, 9, 9})).is_ok());  // replaces
  REQUIRE(a.set("test.k", AnnotationTarget::value(*g.find_value("relu1")), scores({0})).is_ok());
  REQUIRE(a.set("test.a", AnnotationTarget::graph("gone.value"), scores({0, 1})).is_ok());
  CHECK(a.size() == 4);
  CHECK(a.find("test.k", conv1)->data<float>()[0] == 9.0f);
  CHECK(a.find("test.other", conv1) == nullptr);
  // The node "relu1" and its output "relu1" are different targets.
  CHECK(a.find("test.k", AnnotationTarget::node(*g.find_node("relu1"))) == nullptr);
  std::vector<std::string> order;
  for (const Annotation& x : a.list()) order.push_back(x.kind + " " + x.target.to_string());
  CHECK(order == std::vector<std::string>{"test.a graph key 'gone.value'", "test.k node 'conv1'", "test.k node 'conv2'",
                                          "test.k value 'relu1'"});
  CHECK(a.list("test.a").size() == 1);
  CHECK(a.erase("test.k", conv2));
  CHECK_FALSE(a.erase("test.k", conv2));
  CHECK(a.size() == 3);
  CHECK_THAT(print_graph(g), Catch::Contains("annotation test.k of node 'conv1': f32[4]"));
}

TEST_CASE("annotations: bad kinds, payloads and targets of another graph are errors") {
  Graph g = test::small_cnn();
  Graph other = test::small_cnn();
  const AnnotationTarget conv1 = AnnotationTarget::node(*g.find_node("conv1"));
  CHECK_THAT(g.annotations().set("", conv1, scores({1})).message(), Catch::Contains("empty kind"));
  CHECK_THAT(g.annotations().set("test.k", conv1, Tensor()).message(), Catch::Contains("dense, unquantized"));
  const Tensor q = Tensor::from_vector<int8_t>(DType::kI8, {2}, {1, 2})
                       .with_quant(std::make_shared<const QuantParams>(QuantParams::per_tensor(DType::kI8, 0.5f, 0).value()));
  CHECK_THAT(g.annotations().set("test.k", conv1, q).message(), Catch::Contains("dense, unquantized"));
  const Status foreign = g.annotations().set("test.k", AnnotationTarget::node(*other.find_node("conv1")), scores({1}));
  CHECK_THAT(foreign.message(), Catch::Contains("node 'conv1' belongs to another graph"));
  CHECK(g.annotations().empty());
}

TEST_CASE("annotations: clone copies them onto the copies, renames keep them, moves keep them") {
  Graph g = test::small_cnn();
  Node* conv1 = g.find_node("conv1");
  REQUIRE(g.annotations().set("test.k", AnnotationTarget::node(*conv1), scores({1, 2, 3, 4})).is_ok());
  REQUIRE(g.annotations().set("test.v", AnnotationTarget::value(*g.find_value("x")), scores({1})).is_ok());
  REQUIRE(g.annotations().set("test.g", AnnotationTarget::graph("key"), scores({2})).is_ok());
  const Graph copy = g.clone();
  REQUIRE(copy.annotations().size() == 3);
  const Tensor* t = copy.annotations().find("test.k", AnnotationTarget::node(*copy.find_node("conv1")));
  REQUIRE(t != nullptr);
  CHECK(t->data<float>()[3] == 4.0f);
  CHECK(copy.annotations().find("test.v", AnnotationTarget::value(*copy.find_value("x"))) != nullptr);
  CHECK(copy.annotations().find("test.g", AnnotationTarget::graph("key")) != nullptr);
  CHECK(print_graph(copy) == print_graph(g));

  conv1->set_name("conv1.renamed");
  CHECK(g.annotations().list("test.k")[0].target.name() == "conv1.renamed");
  Graph moved = std::move(g);
  CHECK(moved.annotations().size() == 3);
  // The moved-to graph owns the store: targets of it are accepted.
  CHECK(moved.annotations().set("test.k", AnnotationTarget::node(*moved.find_node("conv2")), scores({1})).is_ok());
  // clone_node copies no annotations.
  Node* dup = moved.clone_node(*moved.find_node("conv1.renamed"), moved.find_node("conv1.renamed")->inputs());
  CHECK(moved.annotations().find("test.k", AnnotationTarget::node(*dup)) == nullptr);
}

TEST_CASE("annotations: removing a node or value drops its annotations, graph-level ones stay") {
  Graph g = test::small_cnn();
  REQUIRE(g.annotations().set("test.k", AnnotationTarget::node(*g.find_node("conv2")), scores({1})).is_ok());
  REQUIRE(g.annotations().set("test.k", AnnotationTarget::value(*g.find_value("conv2")), scores({1})).is_ok());
  REQUIRE(g.annotations().set("test.k", AnnotationTarget::node(*g.find_node("conv1")), scores({1})).is_ok());
  REQUIRE(g.annotations().set("test.g", AnnotationTarget::graph("conv2"), scores({1})).is_ok());
  // residual = conv2 + relu1 becomes relu1 + relu1: conv2 is dead.
  g.find_node("residual")->replace_input(0, g.find_value("relu1"));
  CHECK(g.remove_dead_nodes() == 1);
  CHECK(g.annotations().size() == 2);
  CHECK(g.annotations().find("test.k", AnnotationTarget::node(*g.find_node("conv1"))) != nullptr);
  CHECK(g.annotations().find("test.g", AnnotationTarget::graph("conv2")) != nullptr);
  // An unused constant removed takes its annotations along.
  REQUIRE(g.annotations().set("test.k", AnnotationTarget::value(*g.find_value("conv2.weight")), scores({1})).is_ok());
  CHECK(g.remove_unused_constants() == 1);
  CHECK(g.annotations().size() == 2);
  CHECK(verify(g).is_ok());
}
