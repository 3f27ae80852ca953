// The LibTorch layer's op table: every op kind can be trained and exported to
// TorchScript or says why not, every imported aten op has one handler, and
// docs/torch.md lists every aten op the importer reads.
#include <fstream>
#include <sstream>
#include <string>

#include "torch_catch.h"  // first: glog's CHECK must not replace Catch's

#include "../../src/torch/op_lowering.h"
#include "compress/ir/op_schema.h"

using namespace compress;
namespace ctorch = compress::torch;

TEST_CASE("torch lowering: every op is trainable and exportable, or says why not", "[coverage]") {
  for (const ir::OpSchema& schema : ir::op_table()) {
    const ctorch::TorchLowering& row = ctorch::torch_lowering(schema.kind);
    INFO("op " << schema.name << ": " << row.not_supported_reason);
    // run and emit come together: what trains must also export, and back.
    CHECK(static_cast<bool>(row.run) == static_cast<bool>(row.emit));
    CHECK((static_cast<bool>(row.run) || !row.not_supported_reason.empty()));
    CHECK((!row.run || row.not_supported_reason.empty()));
    for (const auto& [name, handler] : row.imports) {
      CHECK(name.rfind("aten::", 0) == 0);
      CHECK(static_cast<bool>(handler));
    }
  }
  CHECK_FALSE(ctorch::torch_lowering(ir::OpKind::kUnknown).run);
}

TEST_CASE("torch lowering: the importer's table is the rows' imports and the decompositions", "[coverage]") {
  size_t expected = ctorch::aten_decompositions().size();
  for (const ir::OpSchema& schema : ir::op_table()) expected += ctorch::torch_lowering(schema.kind).imports.size();
  // No aten op is claimed twice (building the table asserts it; sizes agree).
  CHECK(ctorch::aten_handlers().size() == expected);
  for (const auto& [name, handler] : ctorch::aten_decompositions()) {
    INFO(name);
    CHECK(ctorch::aten_handlers().count(name) == 1);
  }
}

TEST_CASE("docs/torch.md lists every aten op the importer reads", "[coverage]") {
  std::ifstream file(COMPRESS_TEST_SOURCE_DIR "/docs/torch.md");
  REQUIRE(file.good());
  std::stringstream stream;
  stream << file.rdbuf();
  const std::string text = stream.str();
  for (const auto& entry : ctorch::aten_handlers()) {
    const std::string bare = entry.first.substr(std::string("aten::").size());
    const bool listed = text.find("`" + bare + "`") != std::string::npos;
    INFO("aten op " << bare);
    CHECK(listed);
  }
}
