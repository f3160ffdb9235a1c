// AWS credentials and region, found where the AWS CLI and SDKs look, in the same order:
//   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//   2. the shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE
//      (~/.aws/config), profile AWS_PROFILE (default "default");
//   3. the EC2 instance metadata service, IMDSv2 (how a spot worker gets its instance role),
//      unless AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides it.
// Secrets are never put in a Status message.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace barge {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  int64_t expires_at_ms = 0;  // 0: does not expire
  std::string source;         // "environment", "profile default", "instance metadata"
};

// One INI file of the AWS CLI's: section name -> key -> value. Missing file: empty.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile ParseIni(const std::string& text);

// The region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, else "us-east-1".
std::string ResolveAwsRegion();

// Caches credentials and refreshes them shortly before they expire. Thread-safe.
class AwsCredentialProvider {
 public:
  absl::StatusOr<AwsCredentials> Get();

 private:
  absl::StatusOr<AwsCredentials> Resolve();
  absl::Mutex mu_;
  AwsCredentials cached_ ABSL_GUARDED_BY(mu_);
  bool have_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace barge
