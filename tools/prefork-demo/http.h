// A small HTTP/1.1 request parser and response writer: what curl and wrk
// send, no more.
//
// Accepted: a request line "METHOD SP /target SP HTTP/1.x", header lines
// "name: value" ending in CRLF, and a body delimited by Content-Length.
// Refused: a bare LF, a header name with a space (so also obsolete line
// folding) or any other malformed head (400), an HTTP/1.1 request without
// exactly one Host (400), a head over kMaxHeadBytes (431), a body over
// kMaxBodyBytes (413), Transfer-Encoding (501: a server that cannot decode
// it cannot tell where the body ends), another HTTP version (505). After an
// error the connection must be closed: where the next request starts is
// unknown.
#ifndef SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_
#define SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace shmkit::demo {

inline constexpr size_t kMaxHeadBytes = 8192;  // request line and headers
inline constexpr size_t kMaxBodyBytes = 16384;

struct HttpRequest {
  std::string method;
  std::string target;     // as sent: "/task/7?verbose=1"
  int minor_version = 1;  // HTTP/1.<minor_version>
  // In order of arrival; names lower-cased, values trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // HTTP/1.1: unless "Connection: close"; HTTP/1.0: only with "keep-alive".
  bool keep_alive = true;

  absl::string_view path() const;  // the target without its query
  std::optional<absl::string_view> Header(absl::string_view lower_name) const;
  std::optional<absl::string_view> Cookie(absl::string_view name) const;
};

struct ParseResult {
  enum class State { kNeedMore, kDone, kError };
  State state = State::kNeedMore;
  size_t consumed = 0;   // kDone: the bytes of input the request took
  int error_status = 0;  // kError: 400, 413, 431, 501 or 505
  std::string error{};   // kError: what was wrong
};

// Parses the request at the start of `input` into `*request`. Pipelined
// requests after it are left for the next call.
ParseResult ParseRequest(absl::string_view input, HttpRequest* request);

struct HttpResponse {
  int status = 200;
  std::string body{};
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers{};  // extra ones
};

// Appends `response` to `*out` with Content-Length, plus "Connection: close"
// when !keep_alive (or "Connection: keep-alive" for an HTTP/1.0 client).
void AppendResponse(const HttpResponse& response, bool keep_alive,
                    int minor_version, std::string* out);

}  // namespace shmkit::demo

#endif  // SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_
