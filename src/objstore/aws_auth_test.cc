#include "objstore/aws_auth.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "common/fs.h"
#include "common/strings.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

// Each test starts from an environment with no AWS settings at all.
class AwsAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
                          "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT"}) {
      ::unsetenv(v);
    }
    ::setenv("HOME", dir_.path().c_str(), 1);
    ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  }
  ScopedTempDir dir_{"awsauth"};
};

TEST_F(AwsAuth, EnvironmentComesFirst) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  ::setenv("AWS_SESSION_TOKEN", "env-token", 1);
  ASSERT_TRUE(MakeDirs((dir_.path() / ".aws").string()).ok());
  ASSERT_TRUE(WriteFile((dir_.path() / ".aws/credentials").string(),
                        "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = f\n")
                  .ok());
  AwsCredentialProvider p;
  auto c = p.Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIAENV");
  EXPECT_EQ(c->session_token, "env-token");
  EXPECT_EQ(c->source, "environment");
}

TEST_F(AwsAuth, SharedFilesWithAProfileAndItsRegion) {
  ASSERT_TRUE(MakeDirs((dir_.path() / ".aws").string()).ok());
  ASSERT_TRUE(WriteFile((dir_.path() / ".aws/credentials").string(),
                        "# comment\n[default]\naws_access_key_id=AKIADEFAULT\n"
                        "aws_secret_access_key=d\n\n[spot]\n aws_access_key_id = AKIASPOT \n"
                        "aws_secret_access_key = s3cr3t\naws_session_token = tok\n")
                  .ok());
  ASSERT_TRUE(WriteFile((dir_.path() / ".aws/config").string(),
                        "[default]\nregion = us-west-2\n[profile spot]\nregion = eu-west-1\n")
                  .ok());
  EXPECT_EQ(ResolveAwsRegion(), "us-west-2");
  EXPECT_EQ(AwsCredentialProvider().Get()->access_key_id, "AKIADEFAULT");
  ::setenv("AWS_PROFILE", "spot", 1);
  auto c = AwsCredentialProvider().Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKIASPOT");
  EXPECT_EQ(c->secret_access_key, "s3cr3t");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(c->source, "profile spot");
  EXPECT_EQ(ResolveAwsRegion(), "eu-west-1");
  ::setenv("AWS_REGION", "ap-south-1", 1);
  EXPECT_EQ(ResolveAwsRegion(), "ap-south-1");
}

TEST_F(AwsAuth, NoCredentialsSaysWhereItLookedAndLeaksNothing) {
  ::setenv("AWS_SECRET_ACCESS_KEY", "half-configured-secret", 1);  // no key id: not usable
  auto c = AwsCredentialProvider().Get();
  ASSERT_TRUE(absl::IsUnauthenticated(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_EQ(c.status().message().find("half-configured-secret"), std::string::npos);
}

TEST_F(AwsAuth, InstanceMetadataV2GivesTheRolesCredentials) {
  ListeningProcess imds;
  ASSERT_TRUE(imds.Start({"/usr/bin/python3", Cat(BARGE_SOURCE_DIR, "/tests/fake_imds.py")},
                         (dir_.path() / "imds.err").string()));
  ::setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
  ::setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.Endpoint().c_str(), 1);
  auto c = AwsCredentialProvider().Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAFAKEIMDSKEY");
  EXPECT_EQ(c->secret_access_key, "imds-secret");
  EXPECT_EQ(c->session_token, "imds-session-credential-token");
  EXPECT_EQ(c->source, "instance metadata (role barge-worker-role)");
  EXPECT_GT(c->expires_at_ms, 4'000'000'000'000);  // 2099
}

TEST(Ini, ParsesSectionsAndIgnoresNoise) {
  IniFile f = ParseIni("; c\n[a]\nk = v = w\n\n[b c]\nx=1\nstray\n");
  EXPECT_EQ(f["a"]["k"], "v = w");
  EXPECT_EQ(f["b c"]["x"], "1");
  EXPECT_EQ(f.size(), 2u);
}

}  // namespace
}  // namespace barge
