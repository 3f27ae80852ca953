// Typed node attributes (ints, floats, strings and lists of them).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace compress::ir {

enum class AttrKind : uint8_t { kInt = 0, kFloat = 1, kString = 2, kInts = 3, kFloats = 4 };
std::string_view attr_kind_name(AttrKind kind);

using Attribute = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
inline AttrKind attr_kind(const Attribute& a) { return static_cast<AttrKind>(a.index()); }

// Sorted by name, so printing and serialization are deterministic.
using AttributeMap = std::map<std::string, Attribute>;

std::string attribute_to_string(const Attribute& a);

}  // namespace compress::ir
