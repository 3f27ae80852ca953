// Fixture loading and comparison for the reference-backend op tests.
#include "op_fixtures.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>

#include "compress/io/npy.h"
#include "compress/runtime/reference.h"

namespace compress::test {
namespace {

using nlohmann::json;

const std::string& fixture_dir() {
  static const std::string dir = COMPRESS_OP_FIXTURES_DIR;
  return dir;
}

ir::Attribute to_attribute(const json& v) {
  if (v.is_number_integer()) return static_cast<int64_t>(v.get<int64_t>());
  if (v.is_number_float()) return v.get<double>();
  if (v.is_string()) return v.get<std::string>();
  REQUIRE(v.is_array());
  bool any_float = false;
  for (const json& e : v) any_float = any_float || e.is_number_float();
  if (any_float) return v.get<std::vector<double>>();
  return v.get<std::vector<int64_t>>();  // an empty list is an int list (zero_point: [])
}

std::shared_ptr<const ir::QuantParams> to_quant(const json& q) {
  ir::QuantParams::Spec spec;
  spec.storage = *ir::dtype_from_name(q.at("dtype").get<std::string>());
  const std::string g = q.at("granularity");
  spec.granularity = g == "per_tensor" ? ir::QuantGranularity::kPerTensor
                     : g == "per_axis" ? ir::QuantGranularity::kPerAxis
                                       : ir::QuantGranularity::kPerGroup;
  spec.axis = q.at("axis");
  spec.group_size = q.at("group_size");
  for (double s : q.at("scales")) spec.scales.push_back(static_cast<float>(s));
  for (int64_t z : q.at("zero_points")) spec.zero_points.push_back(static_cast<int32_t>(z));
  return std::make_shared<const ir::QuantParams>(ir::QuantParams::create(spec).value());
}

// A tensor described by a case entry: the .npy, optionally 4-bit packed, optionally quantized.
ir::Tensor entry_tensor(const json& e) {
  ir::Tensor t = load_fixture_tensor(e.at("file"));
  std::shared_ptr<const ir::QuantParams> quant = e.contains("quant") ? to_quant(e.at("quant")) : nullptr;
  if (e.contains("packed")) {
    const ir::DType dtype = *ir::dtype_from_name(e.at("packed").get<std::string>());
    auto storage = ir::Storage::allocate(t.nbytes()).value();
    std::memcpy(storage->data(), t.raw_data(), t.nbytes());
    return ir::Tensor::from_storage(dtype, e.at("shape").get<ir::Shape>(), storage, quant).value();
  }
  return quant ? t.with_quant(quant) : t;
}

}  // namespace

ir::Tensor load_fixture_tensor(const std::string& file) {
  auto t = io::load_npy(fixture_dir() + "/" + file);
  INFO(t.status().to_string());
  REQUIRE(t.has_value());
  return *t;
}

std::vector<OpFixture> load_op_fixtures(const std::string& family) {
  std::ifstream in(fixture_dir() + "/cases.json");
  INFO("op fixtures missing in " << fixture_dir() << ": they are generated at build time by "
                                 << "tests/fixtures/make_op_fixtures.py with /usr/bin/python3 (needs torch)");
  REQUIRE(in.good());
  const json manifest = json::parse(in);
  std::vector<OpFixture> out;
  for (const json& c : manifest.at("cases")) {
    if (!family.empty() && c.at("family") != family) continue;
    out.push_back({c.at("name"), c.at("family"), c});
  }
  return out;
}

BuiltFixture build_fixture(const OpFixture& fixture) {
  const json& c = fixture.spec;
  BuiltFixture b;
  b.graph.name = fixture.name;
  for (const json& e : c.at("inputs")) {
    ir::Tensor t = entry_tensor(e);
    ir::ValueType type{t.dtype(), t.shape(), t.quant()};
    if (e.contains("declared_shape")) type.shape = e.at("declared_shape").get<ir::Shape>();
    REQUIRE(b.graph.add_input(e.at("name"), type).has_value());
    b.inputs.push_back(t);
  }
  for (const json& e : c.at("constants")) REQUIRE(b.graph.add_constant(e.at("name"), entry_tensor(e)).has_value());
  for (const json& n : c.at("nodes")) {
    std::vector<ir::Value*> inputs;
    for (const std::string name : n.at("inputs")) {
      ir::Value* v = b.graph.find_value(name);
      INFO("node input " << name);
      REQUIRE(v != nullptr);
      inputs.push_back(v);
    }
    ir::AttributeMap attrs;
    for (const auto& [key, value] : n.at("attrs").items()) attrs[key] = to_attribute(value);
    auto node = b.graph.add_node(n.at("op").get<std::string>(), inputs, attrs, n.at("name").get<std::string>());
    INFO("add_node " << n.at("name").get<std::string>() << ": " << node.status().to_string());
    REQUIRE(node.has_value());
  }
  std::vector<ir::Value*> outputs;
  for (const json& o : c.at("outputs")) {
    ir::Value* v = b.graph.find_value(o.at("value"));
    REQUIRE(v != nullptr);
    outputs.push_back(v);
  }
  b.graph.set_outputs(outputs);
  return b;
}

void check_fixture(const OpFixture& fixture, const std::map<std::string, ErrorBound>& bounds,
                   const GraphRunner& runner) {
  INFO("case " << fixture.name);
  BuiltFixture b = build_fixture(fixture);
  auto result = runner ? runner(b.graph, b.inputs) : runtime::run_reference(b.graph, b.inputs);
  INFO(result.status().to_string());
  REQUIRE(result.has_value());
  const json& outputs = fixture.spec.at("outputs");
  REQUIRE(result->size() == outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const ir::Tensor& got = (*result)[i];
    for (const json& check : outputs[i].at("checks")) {
      const std::string bound_name = check.at("bound");
      INFO("output " << outputs[i].at("value").get<std::string>() << " vs " << check.at("against").get<std::string>()
                     << " (bound " << bound_name << ")");
      REQUIRE(bounds.count(bound_name) == 1);
      const ErrorBound bound = bounds.at(bound_name);
      const ir::Tensor want = load_fixture_tensor(check.at("file"));
      REQUIRE(ir::shape_to_string(got.shape()) == ir::shape_to_string(want.shape()));
      const bool packed_vs_unpacked = ir::is_packed(got.dtype()) && want.dtype() == ir::DType::kI8;
      if (!packed_vs_unpacked && !(bound_name == "step1")) REQUIRE(got.dtype() == want.dtype());
      int64_t violations = 0, first_bad = -1;
      double max_abs = 0.0, max_rel = 0.0;
      for (int64_t k = 0; k < want.numel(); ++k) {
        const double g = got.element_as_double(k), w = want.element_as_double(k);
        if (std::isnan(w) || std::isnan(g)) {
          if (std::isnan(w) != std::isnan(g)) violations++, first_bad = first_bad < 0 ? k : first_bad;
          continue;
        }
        if (std::isinf(w) || std::isinf(g)) {
          if (g != w) violations++, first_bad = first_bad < 0 ? k : first_bad;
          continue;
        }
        const double err = std::fabs(g - w);
        max_abs = std::max(max_abs, err);
        if (w != 0.0) max_rel = std::max(max_rel, err / std::fabs(w));
        if (err > bound.atol + bound.rtol * std::fabs(w)) violations++, first_bad = first_bad < 0 ? k : first_bad;
      }
      INFO("max abs error " << max_abs << ", max rel error " << max_rel << ", first violation at " << first_bad
                            << (first_bad >= 0 ? " got " + std::to_string(got.element_as_double(first_bad)) + " want " +
                                                     std::to_string(want.element_as_double(first_bad))
                                               : std::string()));
      CHECK(violations == 0);
    }
  }
}

}  // namespace compress::test
