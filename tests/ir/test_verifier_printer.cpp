#include <catch2/catch.hpp>

#include <sstream>

#include "compress/ir/printer.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "ir_test_util.h"

using namespace compress;
using namespace compress::ir;

namespace {
ValueType f32(Shape shape) { return ValueType{DType::kF32, std::move(shape), nullptr}; }

bool mentions(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }
}  // namespace

TEST_CASE("verifier catches a cycle") {
  Graph g;
  Value* x = g.add_input("x", f32({2, 3})).value();
  Node* a = g.add_node("relu", {x}, {}, "a").value();
  Node* b = g.add_node("tanh", {a->output()}, {}, "b").value();
  g.set_outputs({b->output()});
  a->replace_input(0, b->output());  // a <- b <- a
  Status s = verify(g);
  REQUIRE_FALSE(s.is_ok());
  CHECK(mentions(s, "node 'a' (relu)"));
  CHECK(mentions(s, "does not come before it"));
  Status sorted = g.topological_sort();
  REQUIRE_FALSE(sorted.is_ok());
  CHECK(mentions(sorted, "cycle"));
}

TEST_CASE("verifier catches a dangling value") {
  Graph other;
  Value* foreign = other.add_input("y", f32({2, 3})).value();
  Graph g;
  Value* x = g.add_input("x", f32({2, 3})).value();
  Node* n = g.add_node_unchecked("add", {x, foreign}, {}, "sum", {f32({2, 3})});
  g.set_outputs({n->output()});
  Status s = verify(g);
  REQUIRE_FALSE(s.is_ok());
  CHECK(mentions(s, "node 'sum' (add): input 1"));
  CHECK(mentions(s, "dangling"));
}

TEST_CASE("verifier catches a shape mismatch") {
  Graph g;
  Value* x = g.add_input("x", f32({2, 3})).value();
  Node* n = g.add_node_unchecked("relu", {x}, {}, "r", {f32({3, 2})});
  g.set_outputs({n->output()});
  Status s = verify(g);
  REQUIRE_FALSE(s.is_ok());
  CHECK(mentions(s, "declared f32[3,2] but the op infers f32[2,3]"));
}

TEST_CASE("verifier catches a wrong arity, unknown op and bad attributes") {
  Graph g;
  Value* x = g.add_input("x", f32({2, 3})).value();
  Node* n = g.add_node_unchecked("add", {x}, {}, "lonely", {f32({2, 3})});
  g.set_outputs({n->output()});
  Status s = verify(g);
  CHECK(mentions(s, "add takes 2 to 2 inputs, got 1"));

  Graph h;
  Value* y = h.add_input("y", f32({2, 3})).value();
  Node* u = h.add_node_unchecked("frobnicate", {y}, {}, "f", {f32({2, 3})});
  h.set_outputs({u->output()});
  CHECK(verify(h).code() == StatusCode::kNotFound);
  CHECK(mentions(verify(h), "unknown op 'frobnicate'"));

  Graph k;
  Value* z = k.add_input("z", f32({2, 3})).value();
  Node* sm = k.add_node_unchecked("softmax", {z}, {{"axis", std::string("last")}}, "sm", {f32({2, 3})});
  k.set_outputs({sm->output()});
  CHECK(mentions(verify(k), "attribute 'axis' must be int"));
}

TEST_CASE("verifier checks constants, names and outputs") {
  Graph g = test::small_cnn();
  REQUIRE(verify(g).is_ok());
  // A constant whose tensor no longer matches its declared type.
  Value* w = g.find_value("fc.weight");
  w->set_type(f32({10, 255}));
  CHECK(mentions(verify(g), "constant 'fc.weight'"));
  w->set_type(f32({10, 256}));
  REQUIRE(verify(g).is_ok());
  g.find_node("relu1")->set_name("conv1");
  CHECK(mentions(verify(g), "duplicate"));
  Graph empty;
  empty.add_input("x", f32({1})).value();
  CHECK(mentions(verify(empty), "no outputs"));
}

TEST_CASE("printer output is readable and structural") {
  Graph g = test::small_cnn();
  const std::string text = print_graph(g);
  std::istringstream lines(text);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  REQUIRE(got.size() == 1 + 5 + 6);
  CHECK(got[0] == "graph small_cnn(%x: f32[1,3,8,8]) -> (%fc)");
  CHECK(got[1] == "  const %conv1.weight: f32[4,3,3,3]");
  CHECK(got[6] ==
        "  %conv1 = conv2d(%x, %conv1.weight, %conv1.bias) {dilation=[1,1], groups=1, padding=[1,1,1,1], "
        "stride=[1,1]} : f32[1,4,8,8]");
  CHECK(got[7] == "  %relu1 = relu(%conv1) : f32[1,4,8,8]");
  CHECK(got[9] == "  %residual = add(%conv2, %relu1) : f32[1,4,8,8]");
  CHECK(got[11] == "  %fc = linear(%flatten, %fc.weight, %fc.bias) : f32[1,10]");
}

TEST_CASE("printer shows quantization and sparsity") {
  Graph g;
  Value* x = g.add_input("x", f32({1, 8})).value();
  Tensor w = to_csr_layout(Tensor::from_vector(DType::kF32, {2, 8}, std::vector<float>{1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})).value();
  Value* wv = g.add_constant("w", w).value();
  Node* fc = g.add_node("linear", {x, wv}, {}, "fc").value();
  Node* q = g.add_node("quantize", {fc->output()},
                       {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.5}}, {"zero_point", std::vector<int64_t>{3}}},
                       "q")
                .value();
  g.set_outputs({q->output()});
  REQUIRE(verify(g).is_ok());
  const std::string text = print_graph(g);
  CHECK(text.find("const %w: f32[2,8] sparse(csr nnz=2)") != std::string::npos);
  CHECK(text.find(": u8[1,2]{u8 per_tensor scale=0.5 zp=3}") != std::string::npos);
}
