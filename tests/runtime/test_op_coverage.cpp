// Op coverage: every op of the op table has, in every available backend, an
// implementation or an explicit "not supported, because ..." entry, and the
// op table itself is consistent with the interned op kinds.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "compress/ir/op_schema.h"
#include "compress/runtime/backend.h"

using namespace compress;

TEST_CASE("op table: one entry per op kind, names and kinds round-trip", "[coverage]") {
  const auto& table = ir::op_table();
  REQUIRE(table.size() == ir::kNumOpKinds);
  std::set<std::string> names;
  for (size_t i = 0; i < table.size(); ++i) {
    const ir::OpSchema& schema = table[i];
    INFO("op " << schema.name);
    CHECK(static_cast<size_t>(schema.kind) == i);
    CHECK(ir::op_name(schema.kind) == schema.name);
    CHECK(ir::op_kind_from_name(schema.name) == schema.kind);
    CHECK(&ir::op_schema(schema.kind) == &schema);
    CHECK(ir::find_op(schema.name) == &schema);
    CHECK(names.insert(std::string(schema.name)).second);
    // Every op states how it is counted and how channels cross it; only the
    // quantized layers and quantization boundaries are untraceable on purpose.
    CHECK(schema.cost.rule != ir::CostRule::kUncounted);
    if (schema.channel_flow == ir::ChannelFlow::kBlocked) {
      CHECK((schema.weighted.quantized || schema.kind == ir::OpKind::qadd || schema.kind == ir::OpKind::quantize ||
             schema.kind == ir::OpKind::dequantize || schema.kind == ir::OpKind::fake_quant));
    }
  }
  CHECK_FALSE(ir::op_kind_from_name("conv3d").has_value());
  CHECK_FALSE(ir::op_kind_from_name("").has_value());
  CHECK(ir::op_name(ir::OpKind::kUnknown) == "<unknown>");
}

TEST_CASE("every backend implements every op or says why not", "[coverage]") {
  for (const std::string& name : runtime::available_backends()) {
    auto backend = runtime::make_backend(name);
    REQUIRE(backend.has_value());
    for (const ir::OpSchema& schema : ir::op_table()) {
      const runtime::OpCoverage c = (*backend)->op_coverage(schema.kind);
      INFO("backend " << name << ", op " << schema.name << ": " << c.not_supported_reason);
      CHECK((c.implemented || !c.not_supported_reason.empty()));
      CHECK((!c.implemented || c.not_supported_reason.empty()));
    }
    // Unknown ops are never implemented.
    CHECK_FALSE((*backend)->op_coverage(ir::OpKind::kUnknown).implemented);
  }
}

TEST_CASE("the reference backend implements every op", "[coverage]") {
  auto backend = runtime::make_backend("reference");
  REQUIRE(backend.has_value());
  for (const ir::OpSchema& schema : ir::op_table()) {
    INFO("op " << schema.name);
    CHECK((*backend)->op_coverage(schema.kind).implemented);
  }
}
