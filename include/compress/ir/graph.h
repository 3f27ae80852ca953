// Graph, Node and Value: the shared tensor-graph IR every pass and backend works on.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compress/ir/annotations.h"
#include "compress/ir/attributes.h"
#include "compress/ir/op_kind.h"
#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::ir {

class Graph;
class Node;
struct OpSchema;

// The static type of a value: what shape inference computes and checks.
struct ValueType {
  DType dtype = DType::kF32;
  Shape shape;
  std::shared_ptr<const QuantParams> quant;  // set for quantized integer values

  bool operator==(const ValueType& other) const;
  bool operator!=(const ValueType& other) const { return !(*this == other); }
  std::string to_string() const;
};

struct Use {
  Node* user;
  int input_index;
  bool operator==(const Use& o) const { return user == o.user && input_index == o.input_index; }
};

// Note [Values]
// A Value is one of: a graph input, a constant (holds a Tensor: weights,
// biases, folded scalars), or output `index` of a node. It knows every use.
// Names are unique within a graph; constants take the name of the parameter
// they came from ("layer1.0.conv1.weight") so recipes and reports can name them.
class Value {
 public:
  enum class Kind { kInput, kConstant, kNodeOutput };

  Kind kind() const { return kind_; }
  bool is_input() const { return kind_ == Kind::kInput; }
  bool is_constant() const { return kind_ == Kind::kConstant; }
  const std::string& name() const { return name_; }
  const ValueType& type() const { return type_; }
  DType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }
  Node* producer() const { return producer_; }
  int output_index() const { return output_index_; }
  const std::vector<Use>& uses() const { return uses_; }
  bool has_uses() const { return !uses_.empty(); }
  const Tensor& constant() const { return constant_; }
  int64_t id() const { return id_; }
  Graph* owner() const { return owner_; }

  // Replaces a constant's tensor (type follows the tensor).
  void set_constant(Tensor tensor);
  void set_type(ValueType type) { type_ = std::move(type); }

 private:
  friend class Graph;
  friend class Node;
  Value() = default;
  Graph* owner_ = nullptr;
  int64_t id_ = 0;
  Kind kind_ = Kind::kInput;
  std::string name_;
  ValueType type_;
  Node* producer_ = nullptr;
  int output_index_ = 0;
  Tensor constant_;
  std::vector<Use> uses_;
};

class Node {
 public:
  const std::string& op() const { return op_; }  // the op's name, for messages, printing and files
  // The interned op (Note [Op kinds]): what passes and backends compare.
  OpKind kind() const { return kind_; }
  bool is(OpKind kind) const { return kind_ == kind; }
  const OpSchema* schema() const { return schema_; }  // null only for unknown ops
  const std::string& name() const { return name_; }
  void set_name(std::string name);
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  Value* input(size_t i) const { return inputs_.at(i); }
  Value* output(size_t i = 0) const { return outputs_.at(i); }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  Graph* owner() const { return owner_; }

  const AttributeMap& attrs() const { return attrs_; }
  bool has_attr(const std::string& name) const { return attrs_.count(name) != 0; }
  // Typed getters; a missing attribute or a wrong kind is a bug (the op
  // table filled defaults and checked kinds when the node was created).
  int64_t attr_int(const std::string& name) const;
  double attr_float(const std::string& name) const;
  const std::string& attr_string(const std::string& name) const;
  const std::vector<int64_t>& attr_ints(const std::string& name) const;
  const std::vector<double>& attr_floats(const std::string& name) const;
  void set_attr(const std::string& name, Attribute value) { attrs_[name] = std::move(value); }

  // Rewiring; keeps use lists consistent.
  void replace_input(size_t index, Value* value);
  void add_input(Value* value);
  // Drops input `index` (shifts later ones down).
  void remove_input(size_t index);

 private:
  friend class Graph;
  Node() = default;
  Graph* owner_ = nullptr;
  std::string op_;
  OpKind kind_ = OpKind::kUnknown;
  const OpSchema* schema_ = nullptr;
  std::string name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  AttributeMap attrs_;
  std::list<std::unique_ptr<Node>>::iterator position_;
};

// Note [Graph invariants]
// - nodes() is in topological order: every input of a node is a graph input,
//   a constant, or an output of an earlier node. verify() checks it;
//   topological_sort() restores it after rewrites that append out of order.
// - Every Value and Node is owned by exactly one Graph; pointers stay valid
//   until the node/value is removed.
// - Use lists mirror node inputs exactly.
// - Every annotation's node or value target is owned by the graph: removing
//   a node or value drops its annotations (Note [Annotations]).
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // Moves re-point every node's and value's owner at the new Graph object.
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;

  std::string name;  // model name, free text

  // --- building ---
  Expected<Value*> add_input(const std::string& name, ValueType type);
  Expected<Value*> add_constant(const std::string& name, Tensor tensor);
  // Creates a node through the op table: checks arity and attribute kinds,
  // fills attribute defaults, infers output types. Appended at the end unless
  // `before` is given. Output values are named "<node name>" (one output) or
  // "<node name>.<i>"; the node name is made unique if taken.
  Expected<Node*> add_node(const std::string& op, const std::vector<Value*>& inputs, AttributeMap attrs,
                           const std::string& name, Node* before = nullptr);
  // The same by interned kind: passes name the op they create as
  // OpKind::quantize, so a misspelt op does not compile.
  Expected<Node*> add_node(OpKind op, const std::vector<Value*>& inputs, AttributeMap attrs, const std::string& name,
                           Node* before = nullptr);
  // Creates a node with given output types and no checks at all (the file
  // reader, tests that build broken graphs). Run verify() afterwards.
  Node* add_node_unchecked(const std::string& op, const std::vector<Value*>& inputs, AttributeMap attrs,
                           const std::string& name, const std::vector<ValueType>& output_types,
                           const std::vector<std::string>& output_names = {});
  void set_outputs(std::vector<Value*> outputs);
  void add_output(Value* value) { outputs_.push_back(value); }

  // --- rewriting ---
  // Every use of `from` (node inputs and graph outputs) now uses `to`.
  void replace_all_uses_with(Value* from, Value* to);
  // Removes a node whose outputs have no uses and are not graph outputs.
  Status remove_node(Node* node);
  // Removes nodes whose outputs are unused (transitively), then unused constants.
  int remove_dead_nodes();
  int remove_unused_constants();
  // Moves `node` to just before `before`.
  void move_before(Node* node, Node* before);
  // Re-runs shape inference on every node in order (after changing input shapes).
  Status infer_types();
  // Reorders nodes topologically; an error naming a node on the cycle if there is one.
  Status topological_sort();
  // Deep copy, annotations included; tensors share storage (they are
  // immutable by convention).
  Graph clone() const;
  // Copies `node` (possibly from another graph) into this graph before
  // `before` (or at the end) with the given inputs; returns the copy, which
  // has no annotations.
  Node* clone_node(const Node& node, const std::vector<Value*>& new_inputs, Node* before = nullptr);

  // --- access ---
  const std::list<std::unique_ptr<Node>>& node_list() const { return nodes_; }
  std::vector<Node*> nodes() const;
  size_t num_nodes() const { return nodes_.size(); }
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  // Whether `v` is one of the graph's outputs.
  bool is_output(const Value* v) const;
  std::vector<Value*> constants() const;
  std::vector<Value*> values() const;
  Value* find_value(const std::string& name) const;
  Node* find_node(const std::string& name) const;
  bool owns(const Value* value) const;
  bool owns(const Node* node) const;

  // A name not yet used by any value or node, derived from `base`.
  std::string unique_name(const std::string& base) const;

  // Data passes hand to later passes (Note [Annotations]).
  AnnotationStore& annotations() { return annotations_; }
  const AnnotationStore& annotations() const { return annotations_; }

 private:
  friend class Node;
  Value* new_value(Value::Kind kind, const std::string& name, ValueType type);
  void destroy_value(Value* value);
  void forget_value(const Value* value);

  std::list<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  int64_t next_value_id_ = 0;
  // Name and ownership indexes, so building and rewriting large graphs stays
  // linear (the verifier still checks names from scratch).
  std::unordered_map<std::string, Value*> value_by_name_;
  std::unordered_set<const Value*> value_set_;
  std::unordered_map<std::string, int> node_name_count_;
  AnnotationStore annotations_{this};
};

}  // namespace compress::ir
