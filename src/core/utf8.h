// UTF-8 validation for text that comes from outside (manifests, URLs, request bodies).
#pragma once

#include <cstddef>
#include <string_view>

namespace hafab {

// The offset of the first byte of `text` that does not start a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or npos when the
// whole text is valid UTF-8.
size_t FindInvalidUtf8(std::string_view text);

}  // namespace hafab
