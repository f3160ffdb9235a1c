#include "objstore/aws_auth.h"

#include <cstdlib>
#include <ctime>
#include <sstream>

#include "common/clock.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "objstore/http.h"

namespace barge {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string HomeFile(const char* env, const char* relative) {
  std::string path = Env(env);
  if (!path.empty()) return path;
  std::string home = Env("HOME");
  return home.empty() ? "" : Cat(home, "/", relative);
}

IniFile ReadIni(const std::string& path) {
  if (path.empty()) return {};
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? ParseIni(*text) : IniFile{};
}

std::string Profile() {
  std::string p = Env("AWS_PROFILE");
  return p.empty() ? "default" : p;
}

// The profile's section in ~/.aws/config: "[default]" or "[profile NAME]".
const std::map<std::string, std::string>* ConfigSection(const IniFile& config,
                                                        const std::string& profile) {
  for (const std::string& name :
       {profile == "default" ? std::string("default") : "", Cat("profile ", profile)}) {
    auto it = config.find(name);
    if (!name.empty() && it != config.end()) return &it->second;
  }
  return nullptr;
}

// "2026-11-22T18:00:00Z" -> ms since the epoch (0 if unparsable).
int64_t ParseIso8601(const std::string& s) {
  struct tm tm {};
  if (::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

absl::StatusOr<AwsCredentials> FromInstanceMetadata() {
  std::string base = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty()) base = "http://169.254.169.254";
  while (!base.empty() && base.back() == '/') base.pop_back();
  static HttpClient* http = new HttpClient();  // lives for the process
  auto call = [&](const std::string& method, const std::string& path,
                  std::vector<std::string> headers) -> absl::StatusOr<std::string> {
    HttpRequest r;
    r.method = method;
    r.url = base + path;
    r.headers = std::move(headers);
    r.connect_timeout_ms = 1000;
    r.timeout_ms = 2000;
    ASSIGN_OR_RETURN(HttpResponse resp, http->Send(r));
    if (resp.status != 200) {
      return absl::UnavailableError(Cat(method, " ", path, ": HTTP ", resp.status));
    }
    return resp.body;
  };
  absl::StatusOr<std::string> token =
      call("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds: 21600"});
  if (!token.ok()) return token.status();
  std::string auth = Cat("X-aws-ec2-metadata-token: ", *token);
  ASSIGN_OR_RETURN(std::string roles,
                   call("GET", "/latest/meta-data/iam/security-credentials/", {auth}));
  std::string role(Trim(roles.substr(0, roles.find('\n'))));
  if (role.empty()) return absl::NotFoundError("the instance has no IAM role");
  ASSIGN_OR_RETURN(std::string body,
                   call("GET", Cat("/latest/meta-data/iam/security-credentials/", role), {auth}));
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("AccessKeyId") || !j.contains("SecretAccessKey")) {
    return absl::UnavailableError("the instance metadata service sent unreadable credentials");
  }
  AwsCredentials c;
  c.access_key_id = j.value("AccessKeyId", "");
  c.secret_access_key = j.value("SecretAccessKey", "");
  c.session_token = j.value("Token", "");
  c.expires_at_ms = ParseIso8601(j.value("Expiration", ""));
  c.source = Cat("instance metadata (role ", role, ")");
  return c;
}

}  // namespace

IniFile ParseIni(const std::string& text) {
  IniFile out;
  std::string section;
  std::istringstream in(text);
  for (std::string raw; std::getline(in, raw);) {
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(Trim(line.substr(1, line.size() - 2)));
      out[section];
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || section.empty()) continue;
    out[section][std::string(Trim(line.substr(0, eq)))] = std::string(Trim(line.substr(eq + 1)));
  }
  return out;
}

std::string ResolveAwsRegion() {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (!Env(name).empty()) return Env(name);
  }
  IniFile config = ReadIni(HomeFile("AWS_CONFIG_FILE", ".aws/config"));
  if (const auto* s = ConfigSection(config, Profile()); s != nullptr && s->count("region")) {
    return s->at("region");
  }
  return "us-east-1";
}

absl::StatusOr<AwsCredentials> AwsCredentialProvider::Get() {
  absl::MutexLock lock(&mu_);
  // Refresh five minutes before expiry, as the SDKs do.
  if (have_ &&
      (cached_.expires_at_ms == 0 || SystemClock().NowMs() < cached_.expires_at_ms - 5 * 60'000)) {
    return cached_;
  }
  absl::StatusOr<AwsCredentials> fresh = Resolve();
  if (!fresh.ok()) return fresh.status();
  cached_ = *fresh;
  have_ = true;
  return cached_;
}

absl::StatusOr<AwsCredentials> AwsCredentialProvider::Resolve() {
  if (!Env("AWS_ACCESS_KEY_ID").empty() && !Env("AWS_SECRET_ACCESS_KEY").empty()) {
    return AwsCredentials{Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY"),
                          Env("AWS_SESSION_TOKEN"), 0, "environment"};
  }
  std::string profile = Profile();
  std::string credentials_file = HomeFile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  IniFile credentials = ReadIni(credentials_file);
  IniFile config = ReadIni(HomeFile("AWS_CONFIG_FILE", ".aws/config"));
  using Section = std::map<std::string, std::string>;
  const Section* in_credentials = credentials.count(profile) ? &credentials.at(profile) : nullptr;
  for (const Section* section : {in_credentials, ConfigSection(config, profile)}) {
    if (section == nullptr || !section->count("aws_access_key_id") ||
        !section->count("aws_secret_access_key")) {
      continue;
    }
    return AwsCredentials{
        section->at("aws_access_key_id"), section->at("aws_secret_access_key"),
        section->count("aws_session_token") ? section->at("aws_session_token") : "", 0,
        Cat("profile ", profile)};
  }
  std::string why_not_imds;
  if (Env("AWS_EC2_METADATA_DISABLED") != "true") {
    absl::StatusOr<AwsCredentials> imds = FromInstanceMetadata();
    if (imds.ok()) return imds;
    why_not_imds = Cat("; instance metadata: ", imds.status().message());
  }
  return absl::UnauthenticatedError(
      Cat("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ",
          credentials_file.empty() ? "~/.aws/credentials" : credentials_file,
          " (AWS_PROFILE=", profile, "), or run on EC2 with an instance role", why_not_imds));
}

}  // namespace barge
