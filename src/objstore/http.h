// A small HTTP client over libcurl for the S3 store and the instance metadata service: pooled
// easy handles (so connections are reused across calls and threads), bodies from memory or a
// file range, responses into memory or a file range, and libcurl's own AWS SigV4 signing.
// Transport failures come back as Unavailable with curl's reason; request headers (which may
// carry tokens) never appear in an error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace barge {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;             // the body, unless body_fd >= 0
  int body_fd = -1;                  // or this file's [body_offset, +body_length)
  int64_t body_offset = 0;
  int64_t body_length = 0;
  int out_fd = -1;  // write a 2xx response body here at out_offset instead of into memory
  int64_t out_offset = 0;
  std::string aws_sigv4;  // e.g. "aws:amz:us-east-1:s3": sign with user:password below
  std::string aws_user;   // access key id
  std::string aws_password;
  int64_t connect_timeout_ms = 10'000;
  int64_t timeout_ms = 0;        // whole transfer; 0: none (stall detection still applies)
  int64_t stall_timeout_s = 30;  // fail if under 1 byte/s for this long
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // unless written to out_fd (2xx only)
  int64_t received = 0;                        // body bytes received
};

class HttpClient {
 public:
  HttpClient() = default;
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request);

 private:
  void* Acquire();
  void Release(void* handle);
  absl::Mutex mu_;
  std::vector<void*> idle_
      ABSL_GUARDED_BY(mu_);  // CURL* handles, each keeping its connections alive
};

// Percent-encodes every byte but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash): the encoding
// SigV4 and S3 expect in paths and query strings.
std::string UriEncode(std::string_view s, bool keep_slash);

}  // namespace barge
