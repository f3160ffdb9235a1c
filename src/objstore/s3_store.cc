#include "objstore/s3_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "common/parallel.h"
#include "common/status.h"
#include "common/strings.h"
#include "pugixml.hpp"

namespace barge {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string Hex(const unsigned char* bytes, unsigned n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
  return out;
}

std::string Base64(const unsigned char* bytes, unsigned n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, n);
  out.resize(static_cast<size_t>(len));
  return out;
}

// MD5 (for S3's integrity checks: Content-MD5 and ETags) and SHA-256 (the signed payload hash)
// of a body, in one pass.
struct Digests {
  std::string md5_hex, md5_base64, sha256_hex;
  std::string md5_raw;  // 16 bytes, for a multipart ETag
};

class Hasher {
 public:
  Hasher() : md5_(EVP_MD_CTX_new()), sha_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(md5_, EVP_md5(), nullptr);
    EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  }
  ~Hasher() {
    EVP_MD_CTX_free(md5_);
    EVP_MD_CTX_free(sha_);
  }
  void Update(const void* data, size_t n) {
    EVP_DigestUpdate(md5_, data, n);
    EVP_DigestUpdate(sha_, data, n);
  }
  Digests Finish() {
    unsigned char md5[EVP_MAX_MD_SIZE], sha[EVP_MAX_MD_SIZE];
    unsigned md5_len = 0, sha_len = 0;
    EVP_DigestFinal_ex(md5_, md5, &md5_len);
    EVP_DigestFinal_ex(sha_, sha, &sha_len);
    return {Hex(md5, md5_len), Base64(md5, md5_len), Hex(sha, sha_len),
            std::string(reinterpret_cast<char*>(md5), md5_len)};
  }

 private:
  EVP_MD_CTX* md5_;
  EVP_MD_CTX* sha_;
};

Digests DigestOf(std::string_view data) {
  Hasher h;
  h.Update(data.data(), data.size());
  return h.Finish();
}

absl::StatusOr<Digests> DigestOfRange(int fd, int64_t offset, int64_t length) {
  Hasher h;
  std::string buf(1 << 20, '\0');
  for (int64_t done = 0; done < length;) {
    ssize_t n =
        ::pread(fd, buf.data(), std::min<int64_t>(buf.size(), length - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::DataLossError("the file shrank while being uploaded");
    h.Update(buf.data(), static_cast<size_t>(n));
    done += n;
  }
  return h.Finish();
}

std::string Unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// S3's error document: <Error><Code>SlowDown</Code><Message>...</Message>...</Error>.
struct S3Error {
  std::string code, message;
};
S3Error ParseError(const std::string& body) {
  pugi::xml_document doc;
  if (!doc.load_string(body.c_str())) return {};
  pugi::xml_node e = doc.child("Error");
  return {e.child_value("Code"), e.child_value("Message")};
}

bool Retryable(long status, const S3Error& e) {
  return status == 500 || status == 502 || status == 503 || status == 504 || status == 429 ||
         e.code == "RequestTimeout" || e.code == "SlowDown" || e.code == "InternalError";
}

// Closes a file descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

// One S3 request, before signing.
struct S3ObjectStore::Call {
  std::string method;
  std::string full_key;  // "" for bucket-level calls
  std::string query;     // canonical: sorted, each name and value UriEncode'd
  std::vector<std::string> headers;
  std::string_view body;
  int body_fd = -1;
  int64_t body_offset = 0, body_length = 0;
  std::string payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  int out_fd = -1;
  int64_t out_offset = 0;
  int max_attempts = 0;  // 0: the store's
};

absl::StatusOr<S3Options> S3OptionsFromUrl(const std::string& url) {
  if (!url.starts_with("s3://")) return absl::InvalidArgumentError(Cat(url, " is not s3://"));
  std::string rest = url.substr(5);
  S3Options o;
  size_t slash = rest.find('/');
  o.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) o.prefix = rest.substr(slash + 1);
  while (!o.prefix.empty() && o.prefix.back() == '/') o.prefix.pop_back();
  if (o.bucket.empty() || o.bucket.size() > 63 ||
      o.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos) {
    return absl::InvalidArgumentError(Cat(
        url, ": \"", o.bucket, "\" is not a bucket name (lowercase letters, digits, '.', '-')"));
  }
  if (!o.prefix.empty()) RETURN_IF_ERROR(CheckKey(o.prefix));
  o.region = ResolveAwsRegion();
  o.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = Env("AWS_ENDPOINT_URL");
  bool custom = !o.endpoint.empty();
  if (!custom) o.endpoint = Cat("https://s3.", o.region, ".amazonaws.com");
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  std::string addressing = Env("BARGE_S3_ADDRESSING");
  o.path_style = addressing.empty() ? custom : addressing == "path";
  if (!addressing.empty() && addressing != "path" && addressing != "virtual") {
    return absl::InvalidArgumentError(
        Cat("BARGE_S3_ADDRESSING=", addressing, ": use path or virtual"));
  }
  return o;
}

S3ObjectStore::S3ObjectStore(S3Options options) : options_(std::move(options)) {}

std::map<std::string, int64_t> S3ObjectStore::Counters() const {
  return {{"s3_requests", counters_.requests.load()},
          {"s3_retries", counters_.retries.load()},
          {"s3_bytes_up", counters_.bytes_up.load()},
          {"s3_bytes_down", counters_.bytes_down.load()}};
}

std::string S3ObjectStore::Url(std::string_view key) const {
  std::string base =
      Cat("s3://", options_.bucket, options_.prefix.empty() ? "" : "/", options_.prefix);
  return key.empty() ? base : Cat(base, "/", key);
}

std::string S3ObjectStore::FullKey(std::string_view key) const {
  return options_.prefix.empty() ? std::string(key) : Cat(options_.prefix, "/", key);
}

std::string S3ObjectStore::UrlFor(const std::string& full_key, const std::string& query) const {
  std::string path = Cat("/", UriEncode(full_key, /*keep_slash=*/true));
  std::string url;
  if (options_.path_style) {
    url = Cat(options_.endpoint, "/", options_.bucket, full_key.empty() ? "" : path);
  } else {
    size_t scheme = options_.endpoint.find("://");
    url = Cat(options_.endpoint.substr(0, scheme + 3), options_.bucket, ".",
              options_.endpoint.substr(scheme + 3), full_key.empty() ? "/" : path);
  }
  return query.empty() ? url : Cat(url, "?", query);
}

void S3ObjectStore::Backoff(int attempt) {
  // Full jitter: a random wait up to the exponential bound.
  static thread_local std::mt19937_64 rng(std::random_device{}());
  int64_t bound =
      std::min(options_.retry_cap_ms, options_.retry_base_ms << std::min(attempt - 2, 30));
  std::this_thread::sleep_for(std::chrono::milliseconds(
      std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(bound, 1))(rng)));
  counters_.retries++;
}

absl::StatusOr<HttpResponse> S3ObjectStore::Send(const Call& call) {
  std::string where = Cat(call.method, " s3://", options_.bucket, "/", call.full_key);
  absl::Status last;
  int attempts = call.max_attempts > 0 ? call.max_attempts : options_.max_attempts;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1) Backoff(attempt);
    ASSIGN_OR_RETURN(AwsCredentials creds, credentials_.Get());
    HttpRequest r;
    r.method = call.method;
    r.url = UrlFor(call.full_key, call.query);
    r.headers = call.headers;
    r.headers.push_back(Cat("x-amz-content-sha256: ", call.payload_sha256));
    if (!creds.session_token.empty()) {
      r.headers.push_back(Cat("x-amz-security-token: ", creds.session_token));
    }
    r.body = call.body;
    r.body_fd = call.body_fd;
    r.body_offset = call.body_offset;
    r.body_length = call.body_length;
    r.out_fd = call.out_fd;
    r.out_offset = call.out_offset;
    r.aws_sigv4 = Cat("aws:amz:", options_.region, ":s3");
    r.aws_user = creds.access_key_id;
    r.aws_password = creds.secret_access_key;
    counters_.requests++;
    absl::StatusOr<HttpResponse> resp = http_.Send(r);
    if (!resp.ok()) {
      last = absl::UnavailableError(Cat(where, ": ", resp.status().message()));
      continue;
    }
    S3Error error = resp->status >= 300 ? ParseError(resp->body) : S3Error{};
    if (Retryable(resp->status, error)) {
      last = absl::UnavailableError(
          Cat(where, ": HTTP ", resp->status, " ", error.code, " ", error.message));
      continue;
    }
    if (call.method == "GET") counters_.bytes_down += resp->received;
    if (call.method == "PUT") {
      counters_.bytes_up +=
          call.body_fd >= 0 ? call.body_length : static_cast<int64_t>(call.body.size());
    }
    return resp;
  }
  return absl::UnavailableError(Cat(last.message(), " (gave up after ", attempts, " attempts)"));
}

namespace {

// A non-retryable S3 answer as a Status: 404 -> NotFound, 403 -> PermissionDenied, ...
absl::Status StatusOf(std::string_view where, const HttpResponse& resp) {
  S3Error e = ParseError(resp.body);
  std::string message = Cat(where, ": HTTP ", resp.status, e.code.empty() ? "" : " ", e.code,
                            e.message.empty() ? "" : ": ", e.message);
  auto it = resp.headers.find("x-amz-request-id");
  if (it != resp.headers.end()) message += Cat(" (request id ", it->second, ")");
  switch (resp.status) {
    case 404:
      return absl::NotFoundError(message);
    case 403:
      return absl::PermissionDeniedError(
          Cat(message, "; S3 refused the request: check the AWS credentials (AWS_ACCESS_KEY_ID, ",
              "AWS_SECRET_ACCESS_KEY or the profile) and the bucket's permissions"));
    case 400:
      return absl::InvalidArgumentError(message);
    case 412:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

ObjectInfo InfoFrom(std::string key, const HttpResponse& resp) {
  ObjectInfo info;
  info.key = std::move(key);
  auto len = resp.headers.find("content-length");
  if (len != resp.headers.end()) info.size = std::atoll(len->second.c_str());
  auto etag = resp.headers.find("etag");
  if (etag != resp.headers.end()) info.etag = Unquote(etag->second);
  return info;
}

// An ETag that is the MD5 of the content: not multipart ("-N") and not SSE-KMS (S3 documents
// those as not MD5s; a 32-hex-digit ETag is the MD5 otherwise).
bool IsMd5Etag(const std::string& etag) {
  return etag.size() == 32 && etag.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

absl::StatusOr<std::string> S3ObjectStore::Get(std::string_view key,
                                               std::optional<ByteRange> range) {
  RETURN_IF_ERROR(CheckKey(key));
  Call c{.method = "GET", .full_key = FullKey(key)};
  if (range) {
    c.headers.push_back(range->length >= 0
                            ? Cat("Range: bytes=", range->offset, "-",
                                  range->offset + std::max<int64_t>(range->length, 1) - 1)
                            : Cat("Range: bytes=", range->offset, "-"));
    if (range->length == 0) return std::string();
  }
  ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
  if (resp.status == 416) return std::string();  // a range past the end
  if (resp.status != 200 && resp.status != 206) return StatusOf(Url(key), resp);
  if (range && resp.status == 200) {
    // A server that ignores Range sends the whole object: return only the part asked for.
    auto size = static_cast<int64_t>(resp.body.size());
    int64_t offset = std::min(range->offset, size);
    int64_t length = range->length >= 0 ? std::min(range->length, size - offset) : size - offset;
    return resp.body.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  if (!range) {
    ObjectInfo info = InfoFrom(std::string(key), resp);
    if (IsMd5Etag(info.etag) && DigestOf(resp.body).md5_hex != info.etag) {
      return absl::UnavailableError(Cat("GET ", Url(key), ": content does not match its ETag"));
    }
  }
  return std::move(resp.body);
}

absl::StatusOr<ObjectInfo> S3ObjectStore::Head(std::string_view key) {
  RETURN_IF_ERROR(CheckKey(key));
  ASSIGN_OR_RETURN(HttpResponse resp, Send({.method = "HEAD", .full_key = FullKey(key)}));
  if (resp.status != 200) return StatusOf(Cat("HEAD ", Url(key)), resp);
  return InfoFrom(std::string(key), resp);
}

absl::StatusOr<ObjectInfo> S3ObjectStore::GetToFile(std::string_view key, const std::string& path) {
  ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(Cat("creating ", path, ": ", std::strerror(errno)));
  FdCloser closer{fd};
  int64_t parts = std::max<int64_t>(1, (info.size + options_.part_size - 1) / options_.part_size);
  RETURN_IF_ERROR(ParallelFor(parts, options_.parallelism, [&](int64_t i) -> absl::Status {
    int64_t offset = i * options_.part_size;
    int64_t length = std::min(options_.part_size, info.size - offset);
    Call c{.method = "GET", .full_key = FullKey(key), .out_fd = fd, .out_offset = offset};
    if (parts > 1) c.headers.push_back(Cat("Range: bytes=", offset, "-", offset + length - 1));
    // The object must not change between the ranges.
    if (!info.etag.empty()) c.headers.push_back(Cat("If-Match: \"", info.etag, "\""));
    ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
    if (resp.status != 200 && resp.status != 206) return StatusOf(Cat("GET ", Url(key)), resp);
    if (resp.received != length) {
      return absl::UnavailableError(
          Cat("GET ", Url(key), ": got ", resp.received, " of ", length, " bytes"));
    }
    return absl::OkStatus();
  }));
  if (IsMd5Etag(info.etag)) {
    ASSIGN_OR_RETURN(Digests d, DigestOfRange(fd, 0, info.size));
    if (d.md5_hex != info.etag) {
      return absl::UnavailableError(Cat("GET ", Url(key), ": content does not match its ETag"));
    }
  }
  return info;
}

absl::StatusOr<ObjectInfo> S3ObjectStore::Put(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  Digests d = DigestOf(data);
  Call c{.method = "PUT", .full_key = FullKey(key), .body = data, .payload_sha256 = d.sha256_hex};
  c.headers.push_back(Cat("Content-MD5: ", d.md5_base64));
  ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
  if (resp.status != 200) return StatusOf(Cat("PUT ", Url(key)), resp);
  ObjectInfo info = InfoFrom(std::string(key), resp);
  info.size = static_cast<int64_t>(data.size());
  if (IsMd5Etag(info.etag) && info.etag != d.md5_hex) {
    return absl::DataLossError(Cat("PUT ", Url(key), ": the stored ETag is not the content's MD5"));
  }
  return info;
}

absl::StatusOr<bool> S3ObjectStore::PutIfAbsent(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  if (!options_.conditional_writes) {
    return absl::UnimplementedError(Cat(Url(), ": this store does not do conditional writes"));
  }
  Digests d = DigestOf(data);
  Call c{.method = "PUT", .full_key = FullKey(key), .body = data, .payload_sha256 = d.sha256_hex};
  c.headers.push_back(Cat("Content-MD5: ", d.md5_base64));
  c.headers.push_back("If-None-Match: *");
  ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
  if (resp.status == 412) return false;
  // 409 ConditionalRequestConflict: a concurrent conditional write won.
  if (resp.status == 409) return false;
  if (resp.status != 200) return StatusOf(Cat("PUT ", Url(key)), resp);
  return true;
}

absl::StatusOr<ObjectInfo> S3ObjectStore::PutFile(std::string_view key, const std::string& path) {
  RETURN_IF_ERROR(CheckKey(key));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(Cat("opening ", path, ": ", std::strerror(errno)));
  FdCloser closer{fd};
  struct stat st {};
  ::fstat(fd, &st);
  int64_t size = st.st_size;
  if (size > options_.part_size) return PutMultipart(key, fd, size);
  return PutRange(key, fd, size);
}

absl::StatusOr<ObjectInfo> S3ObjectStore::PutRange(std::string_view key, int fd, int64_t size) {
  ASSIGN_OR_RETURN(Digests d, DigestOfRange(fd, 0, size));
  Call c{.method = "PUT",
         .full_key = FullKey(key),
         .body_fd = fd,
         .body_offset = 0,
         .body_length = size,
         .payload_sha256 = d.sha256_hex};
  c.headers.push_back(Cat("Content-MD5: ", d.md5_base64));
  ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
  if (resp.status != 200) return StatusOf(Cat("PUT ", Url(key)), resp);
  ObjectInfo info = InfoFrom(std::string(key), resp);
  info.size = size;
  if (IsMd5Etag(info.etag) && info.etag != d.md5_hex) {
    return absl::DataLossError(Cat("PUT ", Url(key), ": the stored ETag is not the content's MD5"));
  }
  return info;
}

absl::StatusOr<ObjectInfo> S3ObjectStore::PutMultipart(std::string_view key, int fd, int64_t size) {
  std::string full = FullKey(key);
  std::string where = Cat("multipart upload of ", Url(key));
  ASSIGN_OR_RETURN(HttpResponse init,
                   Send({.method = "POST", .full_key = full, .query = "uploads="}));
  if (init.status != 200) return StatusOf(where, init);
  pugi::xml_document doc;
  doc.load_string(init.body.c_str());
  std::string upload_id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (upload_id.empty()) return absl::InternalError(Cat(where, ": no UploadId in the answer"));
  std::string upload_query = Cat("uploadId=", UriEncode(upload_id, false));
  auto abort = [&](absl::Status why) -> absl::Status {
    // Best effort: a dangling upload costs storage until a lifecycle rule removes it.
    absl::StatusOr<HttpResponse> a =
        Send({.method = "DELETE", .full_key = full, .query = upload_query});
    if (!a.ok() || (a->status != 204 && a->status != 200 && a->status != 404)) {
      return WithContext(why, Cat("(and aborting upload ", upload_id, " failed too)"));
    }
    return why;
  };

  int64_t parts = (size + options_.part_size - 1) / options_.part_size;
  std::vector<std::string> md5s(static_cast<size_t>(parts));
  absl::Status uploaded = ParallelFor(parts, options_.parallelism, [&](int64_t i) -> absl::Status {
    int64_t offset = i * options_.part_size;
    int64_t length = std::min(options_.part_size, size - offset);
    ASSIGN_OR_RETURN(Digests d, DigestOfRange(fd, offset, length));
    Call c{.method = "PUT",
           .full_key = full,
           .query = Cat("partNumber=", i + 1, "&", upload_query),
           .body_fd = fd,
           .body_offset = offset,
           .body_length = length,
           .payload_sha256 = d.sha256_hex};
    c.headers.push_back(Cat("Content-MD5: ", d.md5_base64));
    ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
    if (resp.status != 200) return StatusOf(Cat(where, ", part ", i + 1), resp);
    std::string etag = InfoFrom("", resp).etag;
    if (IsMd5Etag(etag) && etag != d.md5_hex) {
      return absl::DataLossError(Cat(where, ", part ", i + 1, ": ETag is not its MD5"));
    }
    md5s[static_cast<size_t>(i)] = d.md5_raw;
    return absl::OkStatus();
  });
  if (!uploaded.ok()) return abort(uploaded);

  std::string xml = "<CompleteMultipartUpload>";
  std::string all_md5s;
  for (int64_t i = 0; i < parts; ++i) {
    xml += Cat("<Part><PartNumber>", i + 1, "</PartNumber><ETag>\"",
               Hex(reinterpret_cast<const unsigned char*>(md5s[i].data()), 16), "\"</ETag></Part>");
    all_md5s += md5s[static_cast<size_t>(i)];
  }
  xml += "</CompleteMultipartUpload>";
  // What S3 will call the object: MD5 of the parts' MD5s, "-" and the part count.
  std::string expected_etag = Cat(DigestOf(all_md5s).md5_hex, "-", parts);
  Digests xd = DigestOf(xml);
  Call complete{.method = "POST",
                .full_key = full,
                .query = upload_query,
                .body = xml,
                .payload_sha256 = xd.sha256_hex};
  complete.headers = {"Content-Type: application/xml", Cat("Content-MD5: ", xd.md5_base64)};
  // Completing is retried here rather than in Send: an attempt may be applied and its answer
  // lost, after which the upload is gone and a retry fails (NoSuchUpload on S3, a 500 on some
  // stores). The object then already exists with the ETag computed above, so look before
  // retrying.
  complete.max_attempts = 1;
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1) Backoff(attempt);
    absl::StatusOr<HttpResponse> done = Send(complete);
    if (done.ok() && done->status == 200) {
      S3Error body_error = ParseError(done->body);
      if (body_error.code.empty()) return ObjectInfo{std::string(key), size, expected_etag};
      // S3 may answer 200 and still fail: the error is in the body.
      last = absl::UnavailableError(Cat(where, ": CompleteMultipartUpload answered 200 with ",
                                        body_error.code, ": ", body_error.message));
    } else if (done.ok() && ParseError(done->body).code != "NoSuchUpload" &&
               !Retryable(done->status, ParseError(done->body))) {
      return abort(StatusOf(where, *done));
    } else {
      last = done.ok() ? StatusOf(where, *done) : done.status();
    }
    absl::StatusOr<ObjectInfo> head = Head(key);
    if (head.ok() && head->size == size) {
      if (head->etag == expected_etag) return *head;
      // Some S3-compatible stores (s3rver) name a multipart object by its whole MD5.
      if (IsMd5Etag(head->etag)) {
        absl::StatusOr<Digests> whole = DigestOfRange(fd, 0, size);
        if (whole.ok() && whole->md5_hex == head->etag) return *head;
      }
    }
  }
  return abort(absl::UnavailableError(
      Cat(last.message(), " (gave up after ", options_.max_attempts, " attempts)")));
}

absl::StatusOr<std::vector<ObjectInfo>> S3ObjectStore::List(std::string_view prefix) {
  std::string full_prefix =
      options_.prefix.empty() ? std::string(prefix) : Cat(options_.prefix, "/", prefix);
  size_t strip = options_.prefix.empty() ? 0 : options_.prefix.size() + 1;
  std::vector<ObjectInfo> out;
  std::string token;
  for (;;) {
    // Canonical query: names in order, values encoded.
    std::string query =
        token.empty() ? "" : Cat("continuation-token=", UriEncode(token, false), "&");
    query += Cat("list-type=2&max-keys=", options_.list_page_size,
                 "&prefix=", UriEncode(full_prefix, false));
    ASSIGN_OR_RETURN(HttpResponse resp, Send({.method = "GET", .query = query}));
    if (resp.status != 200) return StatusOf(Cat("listing ", Url(prefix)), resp);
    pugi::xml_document doc;
    if (!doc.load_string(resp.body.c_str())) {
      return absl::UnavailableError(Cat("listing ", Url(prefix), ": unreadable XML"));
    }
    pugi::xml_node result = doc.child("ListBucketResult");
    for (pugi::xml_node c : result.children("Contents")) {
      std::string key = c.child_value("Key");
      if (key.size() < strip) continue;
      out.push_back(
          {key.substr(strip), std::atoll(c.child_value("Size")), Unquote(c.child_value("ETag"))});
    }
    if (std::string(result.child_value("IsTruncated")) != "true") break;
    token = result.child_value("NextContinuationToken");
    if (token.empty()) {
      return absl::UnavailableError(Cat("listing ", Url(prefix), ": truncated without a token"));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

absl::Status S3ObjectStore::Delete(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) RETURN_IF_ERROR(CheckKey(k));
  for (size_t first = 0; first < keys.size(); first += 1000) {
    pugi::xml_document doc;
    pugi::xml_node del = doc.append_child("Delete");
    del.append_child("Quiet").text().set("true");
    for (size_t i = first; i < std::min(keys.size(), first + 1000); ++i) {
      del.append_child("Object").append_child("Key").text().set(FullKey(keys[i]).c_str());
    }
    std::ostringstream xml;
    doc.save(xml, "", pugi::format_raw);
    std::string body = xml.str();
    Digests d = DigestOf(body);
    Call c{.method = "POST", .query = "delete=", .body = body, .payload_sha256 = d.sha256_hex};
    c.headers = {"Content-Type: application/xml", Cat("Content-MD5: ", d.md5_base64)};
    ASSIGN_OR_RETURN(HttpResponse resp, Send(c));
    if (resp.status != 200) return StatusOf(Cat("deleting from ", Url()), resp);
    pugi::xml_document result;
    result.load_string(resp.body.c_str());
    pugi::xml_node err = result.child("DeleteResult").child("Error");
    if (err) {
      return absl::InternalError(Cat("deleting ", Url(err.child_value("Key")), ": ",
                                     err.child_value("Code"), " ", err.child_value("Message")));
    }
  }
  return absl::OkStatus();
}

}  // namespace barge
