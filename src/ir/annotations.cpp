// The graph's annotation store (Note [Annotations]).
#include "compress/ir/annotations.h"

#include <algorithm>
#include <tuple>

#include "compress/ir/graph.h"
#include "compress/support/check.h"

namespace compress::ir {

const char* annotation_target_kind_name(AnnotationTarget::Kind kind) {
  switch (kind) {
    case AnnotationTarget::Kind::kGraph: return "graph";
    case AnnotationTarget::Kind::kNode: return "node";
    case AnnotationTarget::Kind::kValue: return "value";
  }
  return "?";
}

std::string AnnotationTarget::name() const {
  if (const Node* n = node()) return n->name();
  if (const Value* v = value()) return v->name();
  return key_;
}

std::string annotation_target_to_string(AnnotationTarget::Kind kind, const std::string& name) {
  return fmt::format("{} '{}'", kind == AnnotationTarget::Kind::kGraph ? "graph key" : annotation_target_kind_name(kind),
                     name);
}

std::string AnnotationTarget::to_string() const { return annotation_target_to_string(kind_, name()); }

Status AnnotationStore::set(const std::string& kind, const AnnotationTarget& target, Tensor payload) {
  COMPRESS_CHECK(!kind.empty(), StatusCode::kInvalidArgument, "annotation of {}: empty kind", target.to_string());
  const Graph* owner = target.node() ? target.node()->owner() : target.value() ? target.value()->owner() : owner_;
  COMPRESS_CHECK(owner == owner_, StatusCode::kInvalidArgument, "annotation '{}': {} belongs to another graph", kind,
                 target.to_string());
  COMPRESS_CHECK(payload.defined() && !payload.is_sparse() && !payload.is_quantized(), StatusCode::kInvalidArgument,
                 "annotation '{}' of {}: the payload must be a dense, unquantized tensor", kind, target.to_string());
  entries_.insert_or_assign(Key{kind, target}, std::move(payload));
  return Status::ok();
}

const Tensor* AnnotationStore::find(const std::string& kind, const AnnotationTarget& target) const {
  auto it = entries_.find(Key{kind, target});
  return it == entries_.end() ? nullptr : &it->second;
}

bool AnnotationStore::erase(const std::string& kind, const AnnotationTarget& target) {
  return entries_.erase(Key{kind, target}) != 0;
}

std::vector<Annotation> AnnotationStore::list(const std::string& kind) const {
  std::vector<Annotation> out;
  for (const auto& [key, payload] : entries_) {
    if (kind.empty() || key.first == kind) out.push_back(Annotation{key.first, key.second, payload});
  }
  // The map orders targets by address; names give an order that does not
  // depend on the allocator (node and value names are unique in a verified graph).
  auto order = [](const Annotation& a) { return std::make_tuple(a.kind, a.target.kind(), a.target.name()); };
  std::sort(out.begin(), out.end(), [&](const Annotation& a, const Annotation& b) { return order(a) < order(b); });
  return out;
}

void AnnotationStore::drop_target(const void* object) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->first.second.object_ == object ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace compress::ir
