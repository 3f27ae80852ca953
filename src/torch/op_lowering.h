// The LibTorch layer's op table: per IR op, the aten ops imported as it, how
// the trainable executor runs it with ATen, and how TorchScript export writes it.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"
#include "import_context.h"

namespace compress::torch {

// Note [Torch lowering table]
// One row per ir::OpKind (src/torch/op_lowering.cpp), like the reference
// kernel table and oneDNN's op mappings: adding an op to the op set adds one
// row here. A row that cannot run or export states why (integer ops train and
// export in their fake-quant form); tests/torch/test_torch_coverage.cpp fails
// on a row that has neither code nor a reason. aten ops that import as several
// IR ops (addmm, select, the fused encoder layer, ...) are not any one op's
// row: they are the importer's decompositions (aten_ops.cpp).

struct TorchRunContext {
  bool training = false;
  double batch_norm_momentum = 0.1;
};

using TorchOutputs = std::vector<at::Tensor>;

// What an op's TorchScript emitter writes into: the source names of a node's
// values, fresh temporaries, and the lines of forward().
class ScriptBuilder {
 public:
  std::string in(const ir::Node& n, size_t i) const { return names_.at(n.input(i)); }
  // Input i, or "None" when the node has no such (optional) input.
  std::string opt(const ir::Node& n, size_t i) const { return n.num_inputs() > i ? in(n, i) : std::string("None"); }
  std::string out(const ir::Node& n, size_t i = 0) const { return names_.at(n.output(i)); }
  std::string temp(const char* prefix) { return prefix + std::to_string(next_++); }
  void line(const std::string& text) { source_ += "    " + text + "\n"; }

  void name(const ir::Value* value, std::string source_name) { names_[value] = std::move(source_name); }
  const std::string& name_of(const ir::Value* value) const { return names_.at(value); }
  std::string& source() { return source_; }

 private:
  std::unordered_map<const ir::Value*, std::string> names_;
  std::string source_;
  int next_ = 0;
};

using TorchRunFn = std::function<TorchOutputs(const ir::Node&, const TorchOutputs&, const TorchRunContext&)>;
using ScriptEmitFn = std::function<Status(ScriptBuilder&, const ir::Node&)>;

struct TorchLowering {
  std::vector<std::pair<std::string, OpHandler>> imports;  // aten op name -> handler producing this op
  TorchRunFn run;                                          // empty: not trainable
  ScriptEmitFn emit;                                       // empty: not exportable
  std::string_view not_supported_reason;                   // why run or emit is empty
};

// The row of an op kind; kUnknown gets an empty row.
const TorchLowering& torch_lowering(ir::OpKind kind);

// Runs one IR node with ATen ops (autograd-friendly): the trainable executor's kernels.
Expected<TorchOutputs> run_torch_node(const ir::Node& node, const TorchOutputs& inputs, const TorchRunContext& context);

// Appends the TorchScript lines computing `node` (its input names must be set).
Status emit_torchscript(ScriptBuilder& script, const ir::Node& node);

// The importer's table: every row's aten imports plus the decompositions
// (in-place variants are looked up without the trailing underscore).
const std::unordered_map<std::string, OpHandler>& aten_handlers();

// aten ops that import as more than one IR op, or as none (dropout, detach).
std::vector<std::pair<std::string, OpHandler>> aten_decompositions();

}  // namespace compress::torch
