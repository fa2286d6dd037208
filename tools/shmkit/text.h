// How the shmkit tool prints and reads bytes: keys and values are binary-safe
// in a table, but terminals, CSV and JSON are not.
//
// Printing (text and CSV): valid UTF-8 is printed as is; control
// characters, backslashes and bytes that are not UTF-8 are C-escaped (\n,
// \t, \\, \x00...), so the printed form names every byte exactly.
// Printing (JSON): text that is valid UTF-8 becomes a JSON string; anything
// else becomes {"hex": "<two hex digits per byte>"}, so no byte is lost or
// guessed. Bytes columns are always {"hex": ...}.
// Reading: with --escaped, C escapes in keys and string values are decoded;
// values of bytes columns are always given in hex.
#ifndef SHMKIT_TOOLS_SHMKIT_TEXT_H_
#define SHMKIT_TOOLS_SHMKIT_TEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit::cli {

bool IsUtf8(absl::string_view text);
// The printable, exact form described above.
std::string EscapeBytes(absl::string_view bytes);
// Lower-case hex, two digits per byte.
std::string ToHex(absl::string_view bytes);
// (The inverse, for a bytes column's value, is ParseColumnValue in
// table/schema.h.)
// absl::CUnescape with an InvalidArgument naming `what` on bad escapes.
absl::StatusOr<std::string> Unescape(absl::string_view text,
                                     absl::string_view what);
// A CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF.
std::string CsvField(absl::string_view field);
// "1.5 KiB", "131.2 MiB".
std::string HumanBytes(uint64_t bytes);
// "3.41 M", "812 k" (for rates).
std::string HumanCount(double value);
// "38 ns", "1.2 us", "3.4 ms", "1.25 s".
std::string HumanNanos(double ns);
// Left-aligned text columns; each row has as many cells as the header.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_align);

// A small streaming JSON writer: values, arrays and objects, with commas
// placed automatically. Non-finite doubles are written as null.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);  // must be UTF-8
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A string if `bytes` is UTF-8, else {"hex": ...} (see the file comment).
  JsonWriter& Text(absl::string_view bytes);
  JsonWriter& Hex(absl::string_view bytes);  // {"hex": ...}

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Separate();
  std::string out_;
  // One entry per open container: whether it has an element yet.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

// The JSON string literal for UTF-8 `text` (quotes included).
std::string JsonQuote(absl::string_view text);

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_TEXT_H_
