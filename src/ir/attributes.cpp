#include "compress/ir/attributes.h"

#include <fmt/format.h>

namespace compress::ir {

std::string_view attr_kind_name(AttrKind kind) {
  switch (kind) {
    case AttrKind::kInt: return "int";
    case AttrKind::kFloat: return "float";
    case AttrKind::kString: return "string";
    case AttrKind::kInts: return "ints";
    case AttrKind::kFloats: return "floats";
  }
  return "?";
}

std::string attribute_to_string(const Attribute& a) {
  switch (attr_kind(a)) {
    case AttrKind::kInt: return std::to_string(std::get<int64_t>(a));
    case AttrKind::kFloat: return fmt::format("{:g}", std::get<double>(a));
    case AttrKind::kString: return fmt::format("\"{}\"", std::get<std::string>(a));
    case AttrKind::kInts: return fmt::format("[{}]", fmt::join(std::get<std::vector<int64_t>>(a), ","));
    case AttrKind::kFloats: {
      std::string s = "[";
      const auto& v = std::get<std::vector<double>>(a);
      for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:g}", i ? "," : "", v[i]);
      return s + "]";
    }
  }
  return "?";
}

}  // namespace compress::ir
