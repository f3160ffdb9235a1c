#include "objstore/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>  // std::call_once

#include "common/strings.h"

namespace barge {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  int64_t sent = 0;
  std::string write_error;
};

size_t ReadBody(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& r = *t->request;
  int64_t total = r.body_fd >= 0 ? r.body_length : static_cast<int64_t>(r.body.size());
  size_t want = static_cast<size_t>(std::min<int64_t>(size * n, total - t->sent));
  if (want == 0) return 0;
  if (r.body_fd >= 0) {
    ssize_t got;
    do {
      got = ::pread(r.body_fd, buffer, want, r.body_offset + t->sent);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return CURL_READFUNC_ABORT;
    want = static_cast<size_t>(got);
  } else {
    std::memcpy(buffer, r.body.data() + t->sent, want);
  }
  t->sent += static_cast<int64_t>(want);
  return want;
}

// libcurl rewinds the body when it must resend it (a redirect, an auth retry).
int SeekBody(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  t->sent = offset;
  return CURL_SEEKFUNC_OK;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  long status = 0;
  // Error bodies always go to memory, so they can be parsed.
  const HttpRequest& r = *t->request;
  if (r.out_fd >= 0 && t->response->status >= 200 && t->response->status < 300) {
    for (size_t done = 0; done < bytes;) {
      ssize_t w = ::pwrite(r.out_fd, data + done, bytes - done,
                           r.out_offset + t->response->received + static_cast<int64_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        t->write_error = std::strerror(errno);
        return 0;  // aborts the transfer
      }
      done += static_cast<size_t>(w);
    }
  } else {
    t->response->body.append(data, bytes);
  }
  (void)status;
  t->response->received += static_cast<int64_t>(bytes);
  return bytes;
}

size_t ReadHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100 Continue or a redirect): start over.
    t->response->headers.clear();
    size_t sp = line.find(' ');
    if (sp != std::string_view::npos) t->response->status = std::atol(line.data() + sp + 1);
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(Trim(line.substr(0, colon)));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    t->response->headers[name] = std::string(Trim(line.substr(colon + 1)));
  }
  return size * n;
}

}  // namespace

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HttpClient::~HttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::Acquire() {
  GlobalInit();
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void HttpClient::Release(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<HttpResponse> HttpClient::Send(const HttpRequest& r) {
  CURL* h = static_cast<CURL*>(Acquire());
  if (h == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  curl_easy_reset(h);  // keeps the handle's live connections
  HttpResponse response;
  Transfer t{&r, &response};
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout_ms));
  if (r.timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout_ms));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(r.stall_timeout_s));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, ReadHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  struct curl_slist* headers = nullptr;
  for (const std::string& line : r.headers) headers = curl_slist_append(headers, line.c_str());
  // No "Expect:" line to skip the 100-continue wait: libcurl 7.88's SigV4 signer puts empty
  // headers into the canonical request, and S3 then refuses the signature (found by the
  // botocore check in tests/s3_fault_proxy.py).
  int64_t body_size = r.body_fd >= 0 ? r.body_length : static_cast<int64_t>(r.body.size());
  if (r.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (r.method == "PUT" || r.method == "POST") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, SeekBody);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    if (r.method == "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (r.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (!r.aws_sigv4.empty()) {
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, r.aws_sigv4.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, r.aws_user.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, r.aws_password.c_str());
  }
  CURLcode code = curl_easy_perform(h);
  curl_slist_free_all(headers);
  Release(h);
  if (code != CURLE_OK) {
    std::string why = !t.write_error.empty() ? Cat("writing the download: ", t.write_error)
                      : *error != '\0'       ? std::string(error)
                                             : std::string(curl_easy_strerror(code));
    return absl::UnavailableError(Cat(r.method, " failed: ", why));
  }
  return response;
}

}  // namespace barge
