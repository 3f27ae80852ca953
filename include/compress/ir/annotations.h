// Typed data one pass leaves on a graph for later ones (importance scores, observed ranges), saved in .cmf.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::ir {

class Graph;
class Node;
class Value;

// Note [Annotations]
// Pass-to-pass data is not part of the computation, so it is not a constant
// (which backends, statistics and surgery would have to recognize and skip)
// but an annotation: (kind, target) -> payload, owned by the Graph.
// - kind: "<family>.<what>", a string the owning family defines a typed
//   accessor for (prune::stored_channel_importance, quant::observed_ranges);
//   the strings are stored in .cmf files, so a kind is never renamed.
// - target: a node or a value of the graph, by pointer, so renaming a node
//   keeps its annotations; or the graph as a whole under a free key, for data
//   about things that may no longer exist (quant.ptq's ranges of values of
//   the f32 graph that int8 conversion fuses away).
// - payload: a dense, unquantized tensor (the .cmf record holds no layout or
//   quant params); the kind's accessor checks dtype and shape.
// Lifetime: Graph::clone() copies annotations onto the copies of their
// targets; removing a node or value (remove_node, remove_dead_nodes,
// remove_unused_constants) drops its annotations, so an annotation never
// names a node that is gone. A pass that replaces a node (BN folding, int8
// conversion: rename the old node, add the new one under the layer's name,
// remove the old) therefore drops the old node's annotations, which described
// the node it replaced; a pass that changes what an annotation describes
// without removing its target transforms it explicitly (prune.structured
// slices channel importance along with the channels). Graph::clone_node
// copies no annotations. Graph-level annotations are never dropped
// implicitly. In a .cmf file targets are stored by name, and a name that is
// not in the file's graph is a corrupt file (docs/cmf-format.md).

// The kinds compress's passes exchange. Defined here, beside the store,
// because the .cmf reader turns version-1 constants into them.
// f32 [out_channels] per conv2d/linear node (Note [Stored importance]).
inline constexpr const char* kChannelImportanceKind = "prune.channel_importance";
// f32 [2] = {min, max} per graph key V, V a value name of the calibrated
// f32 graph (Note [Observed ranges in the model]).
inline constexpr const char* kObservedRangeKind = "quant.observed_range";

// What an annotation describes: the graph (under a key), a node or a value.
class AnnotationTarget {
 public:
  // The codes are the .cmf encoding: append only.
  enum class Kind : uint8_t { kGraph = 0, kNode = 1, kValue = 2 };

  static AnnotationTarget graph(std::string key) { return AnnotationTarget(Kind::kGraph, nullptr, std::move(key)); }
  static AnnotationTarget node(const Node& node) { return AnnotationTarget(Kind::kNode, &node, {}); }
  static AnnotationTarget value(const Value& value) { return AnnotationTarget(Kind::kValue, &value, {}); }

  Kind kind() const { return kind_; }
  const Node* node() const { return kind_ == Kind::kNode ? static_cast<const Node*>(object_) : nullptr; }
  const Value* value() const { return kind_ == Kind::kValue ? static_cast<const Value*>(object_) : nullptr; }
  // The graph key, or the node's or value's current name (what .cmf stores).
  std::string name() const;
  // "node 'fc1'", "value 'x'", "graph key 'relu'": for messages.
  std::string to_string() const;

  bool operator==(const AnnotationTarget& o) const {
    return kind_ == o.kind_ && object_ == o.object_ && key_ == o.key_;
  }
  bool operator<(const AnnotationTarget& o) const {
    if (kind_ != o.kind_) return kind_ < o.kind_;
    if (object_ != o.object_) return std::less<const void*>()(object_, o.object_);
    return key_ < o.key_;
  }

 private:
  friend class AnnotationStore;
  AnnotationTarget(Kind kind, const void* object, std::string key)
      : kind_(kind), object_(object), key_(std::move(key)) {}
  Kind kind_;
  const void* object_;  // the Node or Value; null for kGraph
  std::string key_;     // kGraph only
};

const char* annotation_target_kind_name(AnnotationTarget::Kind kind);  // "graph", "node", "value"
// "node 'fc1'", "value 'x'", "graph key 'relu'" (AnnotationTarget::to_string, and the .cmf reader's messages).
std::string annotation_target_to_string(AnnotationTarget::Kind kind, const std::string& name);

struct Annotation {
  std::string kind;
  AnnotationTarget target;
  Tensor payload;
};

// The annotations of one graph (Graph::annotations()).
class AnnotationStore {
 public:
  // Adds or replaces the payload of (kind, target). Errors: an empty kind, a
  // node or value of another graph, an undefined, sparse or quantized payload.
  Status set(const std::string& kind, const AnnotationTarget& target, Tensor payload);
  // The payload of (kind, target), or nullptr. Valid until that entry is
  // replaced or dropped.
  const Tensor* find(const std::string& kind, const AnnotationTarget& target) const;
  // Removes (kind, target); whether it was there.
  bool erase(const std::string& kind, const AnnotationTarget& target);
  // The annotations of `kind` (every kind when empty) in a canonical order:
  // by kind, target kind and target name (the order of a .cmf file).
  std::vector<Annotation> list(const std::string& kind = {}) const;
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  friend class Graph;
  using Key = std::pair<std::string, AnnotationTarget>;
  explicit AnnotationStore(const Graph* owner) : owner_(owner) {}
  // The graph calls this when it removes a node or value.
  void drop_target(const void* object);

  const Graph* owner_;
  std::map<Key, Tensor> entries_;
};

}  // namespace compress::ir
