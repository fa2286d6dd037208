// A small, strict HTTP/1.1 request parser and response writer: just what the
// demo server needs, no framework.
//
// What the parser accepts (RFC 9112, simplified on purpose):
//   - a request line "METHOD SP target SP HTTP/1.x" with a token method and
//     an origin-form target ("/path?query");
//   - header lines "name: value" ending in CRLF (a bare LF, a space before
//     the colon and obsolete line folding are 400, as RFC 9112 allows);
//   - a body only by Content-Length (Transfer-Encoding is 501: a server that
//     does not implement chunked must not guess where the body ends);
//   - HTTP/1.1 requests must carry Host.
// Limits: the request line plus headers may take at most max_header_bytes
// (431 beyond), a body at most max_body_bytes (413 beyond). Any other
// malformed input is 400. After an error the connection must be closed: the
// parser cannot know where the next request would start.
#ifndef SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_
#define SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace shmkit::demo {

struct HttpLimits {
  size_t max_header_bytes = 8192;  // request line + headers + blank line
  size_t max_body_bytes = 16384;
};

struct HttpRequest {
  std::string method;
  std::string target;     // as sent: "/task/7?verbose=1"
  int minor_version = 1;  // HTTP/1.<minor_version>
  // In order of arrival; names lower-cased, values without surrounding
  // spaces.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Whether the connection stays open after the response (HTTP/1.1: unless
  // "Connection: close"; HTTP/1.0: only with "Connection: keep-alive").
  bool keep_alive = true;

  // The target without its query string.
  absl::string_view path() const;
  // The first value of header `lower_name`, if present.
  std::optional<absl::string_view> Header(absl::string_view lower_name) const;
  // The value of cookie `name` in the Cookie header, if present.
  std::optional<absl::string_view> Cookie(absl::string_view name) const;
};

struct ParseResult {
  enum class State {
    kNeedMore,  // `input` holds the start of a request: read more
    kDone,      // a whole request; `consumed` bytes of input belong to it
    kError,     // malformed: answer `error_status` and close
  };
  State state = State::kNeedMore;
  size_t consumed = 0;
  int error_status = 0;  // 400, 413, 431, 501 or 505
  std::string error;     // what was wrong, for the response body
};

// Parses the request at the start of `input` into `*request` (overwritten
// when the result is kDone). Never reads past `input`; pipelined requests
// after the first are left for the next call.
ParseResult ParseRequest(absl::string_view input, const HttpLimits& limits,
                         HttpRequest* request);

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra headers ("Set-Cookie", "Location", "Allow", ...).
  std::vector<std::pair<std::string, std::string>> headers;
};

// "OK", "Not Found", ... for the status codes the demo uses.
absl::string_view StatusText(int status);

// Appends `response` to `*out` as HTTP/1.1 with Content-Length, and with
// "Connection: close" when `keep_alive` is false (or "Connection:
// keep-alive" for an HTTP/1.0 client that asked for it).
void AppendResponse(const HttpResponse& response, bool keep_alive,
                    int request_minor_version, std::string* out);

}  // namespace shmkit::demo

#endif  // SHMKIT_TOOLS_PREFORK_DEMO_HTTP_H_
