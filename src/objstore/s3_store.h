// The S3 ObjectStore: AWS S3 or any S3-compatible store (MinIO, Ceph, R2, s3rver), over
// libcurl with its built-in SigV4 signing and pugixml for S3's XML.
//
// Where it talks to: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (default
// https://s3.REGION.amazonaws.com), addressing BARGE_S3_ADDRESSING=path|virtual (default: virtual
// on AWS, path on other endpoints). Credentials and region: objstore/aws_auth.h.
//
// Every request is retried on 500, 502, 503 (SlowDown), 504, 429, request timeouts and
// connection failures, with exponential backoff and full jitter, up to max_attempts; then the
// call fails with Unavailable (an infrastructure failure for the task using it). Objects above
// part_size are uploaded in parallel parts and downloaded in parallel ranges; every object and
// part is checked against its size and MD5. A multipart upload that fails is aborted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "objstore/aws_auth.h"
#include "objstore/http.h"
#include "objstore/object_store.h"

namespace barge {

struct S3Options {
  std::string bucket;
  std::string prefix;    // no leading or trailing '/'
  std::string endpoint;  // scheme://host[:port], no trailing '/'
  std::string region = "us-east-1";
  bool path_style = false;
  int64_t part_size = 16LL << 20;  // and the size above which uploads go in parts
  int parallelism = 8;             // parts or ranges in flight per object
  int max_attempts = 8;
  int64_t retry_base_ms = 100;
  int64_t retry_cap_ms = 5'000;
  int list_page_size = 1000;
  bool conditional_writes = true;  // the store honours If-None-Match: * on PUT
};

// Parses "s3://bucket[/prefix]" and fills the rest from the environment.
absl::StatusOr<S3Options> S3OptionsFromUrl(const std::string& url);

struct S3Counters {
  std::atomic<int64_t> requests{0}, retries{0}, bytes_up{0}, bytes_down{0};
};

class S3ObjectStore : public ObjectStore {
 public:
  explicit S3ObjectStore(S3Options options);

  std::string Url(std::string_view key = {}) const override;
  absl::StatusOr<std::string> Get(std::string_view key,
                                  std::optional<ByteRange> range = std::nullopt) override;
  absl::StatusOr<ObjectInfo> GetToFile(std::string_view key, const std::string& path) override;
  absl::StatusOr<ObjectInfo> Put(std::string_view key, std::string_view data) override;
  absl::StatusOr<ObjectInfo> PutFile(std::string_view key, const std::string& path) override;
  absl::StatusOr<bool> PutIfAbsent(std::string_view key, std::string_view data) override;
  absl::StatusOr<ObjectInfo> Head(std::string_view key) override;
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  absl::Status Delete(const std::vector<std::string>& keys) override;

  const S3Counters& counters() const { return counters_; }
  // s3_requests, s3_retries, s3_bytes_up, s3_bytes_down.
  std::map<std::string, int64_t> Counters() const override;

 private:
  struct Call;
  absl::StatusOr<HttpResponse> Send(const Call& call);
  void Backoff(int attempt);  // sleeps before try `attempt` (2, 3, ...)
  std::string FullKey(std::string_view key) const;
  std::string UrlFor(const std::string& full_key, const std::string& query) const;
  absl::StatusOr<ObjectInfo> PutRange(std::string_view key, int fd, int64_t size);
  absl::StatusOr<ObjectInfo> PutMultipart(std::string_view key, int fd, int64_t size);

  S3Options options_;
  HttpClient http_;
  AwsCredentialProvider credentials_;
  S3Counters counters_;
};

}  // namespace barge
