// Import state shared by the TorchScript importer and its per-op handlers.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::torch {

// What a TorchScript value stands for while importing: an IR value (data
// that depends on the model input), a compile-time constant (numbers, lists,
// parameters and anything computed only from them), a submodule, or a list
// that mixes IR values (the input of aten::cat), or an IR value padded by
// aten::constant_pad_nd, which only a conv2d or max_pool2d may read: the
// padding becomes theirs (how export writes asymmetric padding).
struct Known {
  enum class Kind { kUnset, kIr, kConstant, kModule, kList, kPadded };
  Kind kind = Kind::kUnset;
  ir::Value* ir = nullptr;
  std::vector<int64_t> pad;  // kPadded: [top, left, bottom, right]
  double pad_value = 0.0;    // kPadded
  c10::IValue constant;
  std::string path;  // module path, or the parameter path of a constant tensor
  std::vector<Known> items;
};

class ImportContext {
 public:
  ImportContext(ir::Graph* graph, std::string source) : graph_(graph), source_(std::move(source)) {}

  ir::Graph& graph() { return *graph_; }
  Known& known(const ::torch::jit::Value* v) { return values_[v]; }
  void bind(const ::torch::jit::Value* v, Known k) { values_[v] = std::move(k); }
  void bind_ir(const ::torch::jit::Value* v, ir::Value* value) {
    Known k;
    k.kind = Known::Kind::kIr;
    k.ir = value;
    values_[v] = std::move(k);
  }
  bool is_constant(const ::torch::jit::Value* v) { return known(v).kind == Known::Kind::kConstant; }
  bool is_none(const ::torch::jit::Value* v) { return is_constant(v) && known(v).constant.isNone(); }

  // The node being imported (for names and error messages).
  void set_current(const ::torch::jit::Node* node, std::string module_path) {
    current_ = node;
    module_path_ = std::move(module_path);
  }
  const ::torch::jit::Node* current() const { return current_; }
  const std::string& module_path() const { return module_path_; }

  // Input i of the current node as an IR value; a constant tensor or number
  // becomes an IR constant (parameters keep their module path as name).
  Expected<ir::Value*> ir_input(size_t i);
  Expected<ir::Value*> as_ir(const Known& k, const std::string& fallback_name);
  Expected<int64_t> int_input(size_t i);
  Expected<double> double_input(size_t i);
  Expected<bool> bool_input(size_t i);
  Expected<std::vector<int64_t>> ints_input(size_t i);
  Expected<std::string> string_input(size_t i);
  Expected<c10::IValue> constant_input(size_t i);

  // Adds an IR node named after the module path and returns its first output.
  Expected<ir::Node*> emit_node(ir::OpKind op, const std::vector<ir::Value*>& inputs, ir::AttributeMap attrs);
  Expected<ir::Value*> emit(ir::OpKind op, const std::vector<ir::Value*>& inputs, ir::AttributeMap attrs = {});
  Expected<ir::Value*> scalar_constant(double value);

  // "aten::foo at model.py:12:4 in module layer1.0.conv1": where errors point.
  std::string where() const;
  Status error(StatusCode code, const std::string& message) const;

 private:
  ir::Graph* graph_;
  std::string source_;
  std::unordered_map<const ::torch::jit::Value*, Known> values_;
  std::unordered_map<const void*, ir::Value*> tensor_constants_;  // TensorImpl* -> IR constant
  const ::torch::jit::Node* current_ = nullptr;
  std::string module_path_;
};

// A handler maps one aten op onto IR nodes and binds the node's outputs
// (the tables are in op_lowering.h).
using OpHandler = std::function<Status(ImportContext&, const ::torch::jit::Node*)>;

}  // namespace compress::torch
