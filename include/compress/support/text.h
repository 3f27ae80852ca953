// Text that came from outside (file, node and tensor names) made safe to print on a terminal or embed in UTF-8 output.
#pragma once

#include <string>
#include <string_view>

namespace compress {

// Note [Printing outside text]
// File names and the names inside a model are bytes chosen by whoever made
// them: an escape sequence in a file name would recolour or retitle the
// user's terminal when an error message echoes it, and a byte that is not
// UTF-8 breaks JSON and HTML writers. What compress prints to a terminal goes
// through printable(): control characters (C0 except newline and tab, DEL,
// C1) become \xNN, as do bytes that are not valid UTF-8; everything else,
// other scripts included, is kept as it is.
std::string printable(std::string_view text);

// The same text with every byte sequence that is not valid UTF-8 replaced by
// U+FFFD (for JSON, HTML and Markdown writers, whose output must be UTF-8).
std::string valid_utf8(std::string_view text);

}  // namespace compress
