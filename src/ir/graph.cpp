#include "compress/ir/graph.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/check.h"

namespace compress::ir {

// ---- ValueType -------------------------------------------------------------------

bool ValueType::operator==(const ValueType& o) const {
  if (dtype != o.dtype || shape != o.shape) return false;
  if ((quant == nullptr) != (o.quant == nullptr)) return false;
  return quant == nullptr || *quant == *o.quant;
}

std::string ValueType::to_string() const {
  std::string s = fmt::format("{}{}", dtype_name(dtype), shape_to_string(shape));
  if (quant) s += fmt::format("{{{}}}", quant->to_string());
  return s;
}

// ---- Value / Node ------------------------------------------------------------------

void Value::set_constant(Tensor tensor) {
  COMPRESS_INTERNAL_ASSERT(kind_ == Kind::kConstant, "set_constant on non-constant value '{}'", name_);
  type_ = ValueType{tensor.dtype(), tensor.shape(), tensor.quant()};
  constant_ = std::move(tensor);
}

namespace {
const Attribute& find_attr(const Node& node, const std::string& name) {
  auto it = node.attrs().find(name);
  COMPRESS_INTERNAL_ASSERT(it != node.attrs().end(), "node '{}' ({}) has no attribute '{}'", node.name(), node.op(),
                           name);
  return it->second;
}
template <typename T>
const T& typed_attr(const Node& node, const std::string& name) {
  const Attribute& a = find_attr(node, name);
  const T* v = std::get_if<T>(&a);
  COMPRESS_INTERNAL_ASSERT(v != nullptr, "node '{}' ({}): attribute '{}' has kind {}", node.name(), node.op(), name,
                           attr_kind_name(attr_kind(a)));
  return *v;
}
}  // namespace

void Node::set_name(std::string name) {
  if (owner_ != nullptr) {
    if (--owner_->node_name_count_[name_] <= 0) owner_->node_name_count_.erase(name_);
    owner_->node_name_count_[name]++;
  }
  name_ = std::move(name);
}

int64_t Node::attr_int(const std::string& name) const { return typed_attr<int64_t>(*this, name); }
double Node::attr_float(const std::string& name) const { return typed_attr<double>(*this, name); }
const std::string& Node::attr_string(const std::string& name) const { return typed_attr<std::string>(*this, name); }
const std::vector<int64_t>& Node::attr_ints(const std::string& name) const {
  return typed_attr<std::vector<int64_t>>(*this, name);
}
const std::vector<double>& Node::attr_floats(const std::string& name) const {
  return typed_attr<std::vector<double>>(*this, name);
}

void Node::replace_input(size_t index, Value* value) {
  COMPRESS_INTERNAL_ASSERT(index < inputs_.size(), "replace_input: index {} of {}", index, inputs_.size());
  Value* old = inputs_[index];
  if (old != nullptr) {
    auto& uses = old->uses_;
    auto it = std::find(uses.begin(), uses.end(), Use{this, static_cast<int>(index)});
    if (it != uses.end()) uses.erase(it);
  }
  inputs_[index] = value;
  if (value != nullptr) value->uses_.push_back(Use{this, static_cast<int>(index)});
}

void Node::add_input(Value* value) {
  inputs_.push_back(value);
  if (value != nullptr) value->uses_.push_back(Use{this, static_cast<int>(inputs_.size() - 1)});
}

void Node::remove_input(size_t index) {
  COMPRESS_INTERNAL_ASSERT(index < inputs_.size(), "remove_input: index {} of {}", index, inputs_.size());
  // Drop all uses of this node, then re-add them with the shifted indices.
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (Value* v = inputs_[i]) {
      auto& uses = v->uses_;
      uses.erase(std::remove(uses.begin(), uses.end(), Use{this, static_cast<int>(i)}), uses.end());
    }
  }
  inputs_.erase(inputs_.begin() + static_cast<std::ptrdiff_t>(index));
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (Value* v = inputs_[i]) v->uses_.push_back(Use{this, static_cast<int>(i)});
  }
}

// ---- Graph: moving keeps owner pointers right ---------------------------------------

Graph::Graph(Graph&& other) noexcept { *this = std::move(other); }

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this == &other) return *this;
  name = std::move(other.name);
  nodes_ = std::move(other.nodes_);
  values_ = std::move(other.values_);
  inputs_ = std::move(other.inputs_);
  outputs_ = std::move(other.outputs_);
  next_value_id_ = other.next_value_id_;
  value_by_name_ = std::move(other.value_by_name_);
  value_set_ = std::move(other.value_set_);
  node_name_count_ = std::move(other.node_name_count_);
  annotations_.entries_ = std::move(other.annotations_.entries_);  // the store keeps its owner: this graph
  for (auto& n : nodes_) n->owner_ = this;
  for (auto& v : values_) v->owner_ = this;
  return *this;
}

// ---- Graph: building ------------------------------------------------------------------

Value* Graph::new_value(Value::Kind kind, const std::string& name, ValueType type) {
  auto value = std::unique_ptr<Value>(new Value());
  value->owner_ = this;
  value->id_ = next_value_id_++;
  value->kind_ = kind;
  value->name_ = name;
  value->type_ = std::move(type);
  value_by_name_.emplace(name, value.get());
  value_set_.insert(value.get());
  values_.push_back(std::move(value));
  return values_.back().get();
}

void Graph::forget_value(const Value* value) {
  auto named = value_by_name_.find(value->name());
  if (named != value_by_name_.end() && named->second == value) value_by_name_.erase(named);
  value_set_.erase(value);
  annotations_.drop_target(value);
}

void Graph::destroy_value(Value* value) {
  auto it = std::find_if(values_.begin(), values_.end(), [&](const auto& v) { return v.get() == value; });
  COMPRESS_INTERNAL_ASSERT(it != values_.end(), "destroy_value: value not owned");
  forget_value(value);
  values_.erase(it);
}

std::string Graph::unique_name(const std::string& base) const {
  const std::string stem = base.empty() ? std::string("v") : base;
  auto taken = [&](const std::string& name) { return value_by_name_.count(name) || node_name_count_.count(name); };
  if (!taken(stem)) return stem;
  for (int64_t i = 1;; ++i) {
    std::string candidate = fmt::format("{}_{}", stem, i);
    if (!taken(candidate)) return candidate;
  }
}

Expected<Value*> Graph::add_input(const std::string& name, ValueType type) {
  COMPRESS_CHECK(!name.empty(), StatusCode::kInvalidArgument, "graph input needs a name");
  COMPRESS_CHECK(find_value(name) == nullptr, StatusCode::kInvalidArgument, "graph input '{}': name already used",
                 name);
  COMPRESS_CHECK(checked_numel(type.shape).has_value(), StatusCode::kInvalidArgument,
                 "graph input '{}': invalid shape {}", name, shape_to_string(type.shape));
  Value* v = new_value(Value::Kind::kInput, name, std::move(type));
  inputs_.push_back(v);
  return v;
}

Expected<Value*> Graph::add_constant(const std::string& name, Tensor tensor) {
  COMPRESS_CHECK(!name.empty(), StatusCode::kInvalidArgument, "constant needs a name");
  COMPRESS_CHECK(tensor.defined(), StatusCode::kInvalidArgument, "constant '{}' has no tensor", name);
  COMPRESS_CHECK(find_value(name) == nullptr, StatusCode::kInvalidArgument, "constant '{}': name already used", name);
  Value* v = new_value(Value::Kind::kConstant, name, ValueType{tensor.dtype(), tensor.shape(), tensor.quant()});
  v->constant_ = std::move(tensor);
  return v;
}

Node* Graph::add_node_unchecked(const std::string& op, const std::vector<Value*>& inputs, AttributeMap attrs,
                                const std::string& name, const std::vector<ValueType>& output_types,
                                const std::vector<std::string>& output_names) {
  auto node = std::unique_ptr<Node>(new Node());
  Node* raw = node.get();
  raw->owner_ = this;
  raw->op_ = op;
  raw->schema_ = find_op(op);
  if (raw->schema_ != nullptr) raw->kind_ = raw->schema_->kind;
  raw->name_ = name;
  node_name_count_[name]++;
  raw->attrs_ = std::move(attrs);
  for (Value* v : inputs) raw->add_input(v);
  for (size_t i = 0; i < output_types.size(); ++i) {
    std::string out_name = i < output_names.size() ? output_names[i]
                                                   : (output_types.size() == 1 ? name : fmt::format("{}.{}", name, i));
    Value* out = new_value(Value::Kind::kNodeOutput, out_name, output_types[i]);
    out->producer_ = raw;
    out->output_index_ = static_cast<int>(i);
    raw->outputs_.push_back(out);
  }
  nodes_.push_back(std::move(node));
  raw->position_ = std::prev(nodes_.end());
  return raw;
}

Expected<Node*> Graph::add_node(OpKind op, const std::vector<Value*>& inputs, AttributeMap attrs,
                                const std::string& name, Node* before) {
  return add_node(std::string(op_name(op)), inputs, std::move(attrs), name, before);
}

Expected<Node*> Graph::add_node(const std::string& op, const std::vector<Value*>& inputs, AttributeMap attrs,
                                const std::string& name, Node* before) {
  const OpSchema* schema = find_op(op);
  const std::string where = name.empty() ? op : fmt::format("{} ({})", name, op);
  COMPRESS_CHECK(schema != nullptr, StatusCode::kNotFound, "node {}: unknown op '{}'", where, op);
  for (size_t i = 0; i < inputs.size(); ++i) {
    COMPRESS_CHECK(inputs[i] != nullptr && owns(inputs[i]), StatusCode::kInvalidArgument,
                   "node {}: input {} is null or belongs to another graph", where, i);
  }
  COMPRESS_RETURN_IF_ERROR(normalize_attributes(*schema, &attrs).with_context("node " + where));
  // Infer on a detached description first so a failure leaves the graph untouched.
  InferContext ctx{schema->name, {}, attrs, {}};
  const int n = static_cast<int>(inputs.size());
  COMPRESS_CHECK(n >= schema->min_inputs && (schema->max_inputs < 0 || n <= schema->max_inputs),
                 StatusCode::kInvalidArgument, "node {}: {} takes {} to {} inputs, got {}", where, op,
                 schema->min_inputs,
                 schema->max_inputs < 0 ? std::string("any number of") : std::to_string(schema->max_inputs), n);
  for (Value* v : inputs) {
    ctx.inputs.push_back(&v->type());
    ctx.constant_inputs.push_back(v->is_constant() ? &v->constant() : nullptr);
  }
  auto types = schema->infer(ctx);
  if (!types) return types.status().with_context("node " + where);
  const std::string node_name = unique_name(name.empty() ? op : name);
  std::vector<std::string> out_names;
  for (size_t i = 0; i < types->size(); ++i) {
    out_names.push_back(types->size() == 1 ? node_name : unique_name(fmt::format("{}.{}", node_name, i)));
  }
  Node* node = add_node_unchecked(op, inputs, std::move(attrs), node_name, *types, out_names);
  if (before != nullptr) move_before(node, before);
  return node;
}

void Graph::set_outputs(std::vector<Value*> outputs) { outputs_ = std::move(outputs); }

bool Graph::is_output(const Value* v) const { return std::find(outputs_.begin(), outputs_.end(), v) != outputs_.end(); }

// ---- Graph: rewriting -------------------------------------------------------------------

void Graph::replace_all_uses_with(Value* from, Value* to) {
  if (from == to) return;
  const std::vector<Use> uses = from->uses_;
  for (const Use& use : uses) use.user->replace_input(static_cast<size_t>(use.input_index), to);
  for (Value*& out : outputs_) {
    if (out == from) out = to;
  }
}

Status Graph::remove_node(Node* node) {
  COMPRESS_CHECK(node != nullptr && node->owner_ == this, StatusCode::kInvalidArgument,
                 "remove_node: node is not in this graph");
  for (Value* out : node->outputs_) {
    COMPRESS_CHECK(!out->has_uses(), StatusCode::kFailedPrecondition,
                   "remove_node '{}': output '{}' still has {} use(s)", node->name(), out->name(), out->uses().size());
    COMPRESS_CHECK(std::find(outputs_.begin(), outputs_.end(), out) == outputs_.end(),
                   StatusCode::kFailedPrecondition, "remove_node '{}': output '{}' is a graph output", node->name(),
                   out->name());
  }
  for (size_t i = node->inputs_.size(); i-- > 0;) node->replace_input(i, nullptr);
  for (Value* out : node->outputs_) destroy_value(out);
  annotations_.drop_target(node);
  if (--node_name_count_[node->name_] <= 0) node_name_count_.erase(node->name_);
  nodes_.erase(node->position_);
  return Status::ok();
}

int Graph::remove_dead_nodes() {
  int removed = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    for (auto it = nodes_.rbegin(); it != nodes_.rend();) {
      Node* node = it->get();
      ++it;
      const bool dead = std::all_of(node->outputs_.begin(), node->outputs_.end(), [&](Value* v) {
        return !v->has_uses() && std::find(outputs_.begin(), outputs_.end(), v) == outputs_.end();
      });
      if (dead) {
        // Erasing through a reverse iterator: `it` already points past the node.
        (void)remove_node(node);
        ++removed;
        changed = true;
        break;
      }
    }
  }
  return removed;
}

int Graph::remove_unused_constants() {
  int removed = 0;
  for (size_t i = 0; i < values_.size();) {
    Value* v = values_[i].get();
    if (v->is_constant() && !v->has_uses() && std::find(outputs_.begin(), outputs_.end(), v) == outputs_.end()) {
      forget_value(v);
      values_.erase(values_.begin() + static_cast<std::ptrdiff_t>(i));
      ++removed;
    } else {
      ++i;
    }
  }
  return removed;
}

void Graph::move_before(Node* node, Node* before) {
  COMPRESS_INTERNAL_ASSERT(node->owner_ == this && before->owner_ == this, "move_before across graphs");
  if (node == before) return;
  nodes_.splice(before->position_, nodes_, node->position_);
}

Status Graph::infer_types() {
  for (const auto& node : nodes_) {
    auto types = infer_node_types(*node);
    if (!types) return types.status().with_context(fmt::format("node {} ({})", node->name(), node->op()));
    COMPRESS_CHECK(types->size() == node->outputs_.size(), StatusCode::kInvalidArgument,
                   "node {} ({}): infers {} outputs, has {}", node->name(), node->op(), types->size(),
                   node->outputs_.size());
    for (size_t i = 0; i < types->size(); ++i) node->outputs_[i]->type_ = (*types)[i];
  }
  return Status::ok();
}

Status Graph::topological_sort() {
  // Kahn's algorithm over node dependencies, stable with respect to the
  // current order so that an already sorted graph is unchanged.
  std::unordered_map<const Node*, int> pending;
  std::unordered_map<const Node*, std::vector<Node*>> users;
  for (const auto& node : nodes_) {
    int count = 0;
    for (Value* in : node->inputs_) {
      if (in != nullptr && in->producer_ != nullptr) {
        ++count;
        users[in->producer_].push_back(node.get());
      }
    }
    pending[node.get()] = count;
  }
  std::vector<Node*> order;
  std::vector<Node*> ready;
  for (const auto& node : nodes_) {
    if (pending[node.get()] == 0) ready.push_back(node.get());
  }
  std::unordered_map<const Node*, size_t> position;
  size_t index = 0;
  for (const auto& node : nodes_) position[node.get()] = index++;
  auto by_position = [&](Node* a, Node* b) { return position[a] > position[b]; };
  std::make_heap(ready.begin(), ready.end(), by_position);
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), by_position);
    Node* node = ready.back();
    ready.pop_back();
    order.push_back(node);
    for (Node* user : users[node]) {
      if (--pending[user] == 0) {
        ready.push_back(user);
        std::push_heap(ready.begin(), ready.end(), by_position);
      }
    }
  }
  if (order.size() != nodes_.size()) {
    for (const auto& node : nodes_) {
      if (pending[node.get()] > 0) {
        return invalid_argument("graph has a cycle through node '{}' ({})", node->name(), node->op());
      }
    }
  }
  for (Node* node : order) nodes_.splice(nodes_.end(), nodes_, node->position_);
  return Status::ok();
}

Node* Graph::clone_node(const Node& node, const std::vector<Value*>& new_inputs, Node* before) {
  std::vector<ValueType> types;
  for (Value* out : node.outputs_) types.push_back(out->type());
  std::vector<std::string> names;
  for (Value* out : node.outputs_) names.push_back(unique_name(out->name()));
  Node* copy = add_node_unchecked(node.op_, new_inputs, node.attrs_, unique_name(node.name_), types, names);
  if (before != nullptr) move_before(copy, before);
  return copy;
}

Graph Graph::clone() const {
  Graph g;
  g.name = name;
  std::unordered_map<const Value*, Value*> map;
  std::unordered_map<const Node*, const Node*> node_map;
  for (const auto& v : values_) {
    if (v->is_input()) continue;
    if (!v->is_constant()) continue;
    Value* copy = g.new_value(Value::Kind::kConstant, v->name_, v->type_);
    copy->constant_ = v->constant_;
    map[v.get()] = copy;
  }
  for (Value* in : inputs_) {
    Value* copy = g.new_value(Value::Kind::kInput, in->name_, in->type_);
    g.inputs_.push_back(copy);
    map[in] = copy;
  }
  for (const auto& node : nodes_) {
    std::vector<Value*> inputs;
    for (Value* in : node->inputs_) inputs.push_back(in == nullptr ? nullptr : map.at(in));
    std::vector<ValueType> types;
    std::vector<std::string> names;
    for (Value* out : node->outputs_) {
      types.push_back(out->type_);
      names.push_back(out->name_);
    }
    Node* copy = g.add_node_unchecked(node->op_, inputs, node->attrs_, node->name_, types, names);
    node_map[node.get()] = copy;
    for (size_t i = 0; i < node->outputs_.size(); ++i) map[node->outputs_[i]] = copy->outputs_[i];
  }
  for (Value* out : outputs_) g.outputs_.push_back(map.at(out));
  for (const auto& [key, payload] : annotations_.entries_) {
    const AnnotationTarget& t = key.second;
    const AnnotationTarget copy = t.node()    ? AnnotationTarget::node(*node_map.at(t.node()))
                                  : t.value() ? AnnotationTarget::value(*map.at(t.value()))
                                              : t;
    g.annotations_.entries_.emplace(AnnotationStore::Key{key.first, copy}, payload);
  }
  return g;
}

// ---- Graph: access -----------------------------------------------------------------------

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

std::vector<Value*> Graph::constants() const {
  std::vector<Value*> out;
  for (const auto& v : values_) {
    if (v->is_constant()) out.push_back(v.get());
  }
  return out;
}

std::vector<Value*> Graph::values() const {
  std::vector<Value*> out;
  out.reserve(values_.size());
  for (const auto& v : values_) out.push_back(v.get());
  return out;
}

Value* Graph::find_value(const std::string& name) const {
  auto it = value_by_name_.find(name);
  return it == value_by_name_.end() ? nullptr : it->second;
}

Node* Graph::find_node(const std::string& name) const {
  for (const auto& n : nodes_) {
    if (n->name() == name) return n.get();
  }
  return nullptr;
}

bool Graph::owns(const Value* value) const { return value != nullptr && value_set_.count(value) != 0; }

bool Graph::owns(const Node* node) const {
  return node != nullptr && std::any_of(nodes_.begin(), nodes_.end(), [&](const auto& n) { return n.get() == node; });
}

}  // namespace compress::ir
