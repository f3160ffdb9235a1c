#include "common/redact.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(MaskSecretsInText, UrlPasswords) {
  EXPECT_EQ(MaskSecretsInText("connecting to postgres://app:hunter2@db:5432/x failed"),
            "connecting to postgres://app:[redacted]@db:5432/x failed");
  EXPECT_EQ(MaskSecretsInText("state store \"postgresql://u:PW@h/db\": no"),
            "state store \"postgresql://u:[redacted]@h/db\": no");
  // A typo'd scheme and a password holding an unencoded '@' or '/'.
  EXPECT_EQ(MaskSecretsInText("postgresql:/user:PW@x"), "postgresql:/user:[redacted]@x");
  EXPECT_EQ(MaskSecretsInText("postgres://u:p@ss/w@h/db"), "postgres://u:[redacted]@h/db");
  EXPECT_EQ(MaskSecretsInText("endpoint=http://key:sec@minio:9000"),
            "endpoint=http://key:[redacted]@minio:9000");
  EXPECT_EQ(MaskSecretsInText("\"://user:PW@x\""), "\"://user:[redacted]@x\"");
  EXPECT_EQ(MaskSecretsInText("a: http://a:1@b and ftp://c:2@d"),
            "a: http://a:[redacted]@b and ftp://c:[redacted]@d");
}

TEST(MaskSecretsInText, LeavesOrdinaryTextAlone) {
  for (const char* text :
       {"postgres://barge@db.internal:5432/barge", "run 42: step a: exit 1", "user@host:22",
        "12:30:45 done", "sqlite:/tmp/state.db", "s3://bucket/prefix/a.csv", "key: value"}) {
    EXPECT_EQ(MaskSecretsInText(text), text);
  }
}

TEST(MaskSecretsInText, KeywordPasswords) {
  EXPECT_EQ(MaskSecretsInText("host=db password=hunter2 dbname=x"),
            "host=db password=[redacted] dbname=x");
  EXPECT_EQ(MaskSecretsInText("host=db password='a b\\' c' user=u"),
            "host=db password=[redacted] user=u");
  EXPECT_EQ(MaskSecretsInText("postgres://h/db?sslmode=require&password=pw&user=u"),
            "postgres://h/db?sslmode=require&password=[redacted]&user=u");
  EXPECT_EQ(MaskSecretsInText("BARGE_TOKEN=abcdefabcdefabcdef"), "BARGE_TOKEN=[redacted]");
  EXPECT_EQ(MaskSecretsInText("a=b c=d"), "a=b c=d");
}

TEST(UrlPassword, AsWritten) {
  EXPECT_EQ(UrlPassword("postgres://u:p%40ss@h/db"), "p%40ss");
  EXPECT_EQ(UrlPassword("postgres://u@h/db"), "");
  EXPECT_EQ(UrlPassword("/tmp/state.db"), "");
}

TEST(MaskPasswordOf, WholeAndQuotedPieces) {
  EXPECT_EQ(MaskPasswordOf("postgres://u:pa/ss@h/db",
                           "invalid integer value \"pa\" for connection option \"port\""),
            "invalid integer value \"[redacted]\" for connection option \"port\"");
  EXPECT_EQ(MaskPasswordOf("postgres://u:hunter22@h/db", "x hunter22 y \"h\""),
            "x [redacted] y \"h\"");
  EXPECT_EQ(MaskPasswordOf("postgres://u@h/db", "host \"h\""), "host \"h\"");
}

TEST(MaskEnvValue, SecretNamesAndUrlValues) {
  EXPECT_EQ(MaskEnvValue("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"), "[redacted]");
  EXPECT_EQ(MaskEnvValue("AWS_SESSION_TOKEN", "x"), "[redacted]");
  EXPECT_EQ(MaskEnvValue("PGPASSWORD", "x"), "[redacted]");
  EXPECT_EQ(MaskEnvValue("stripe_api_key", "sk_live"), "[redacted]");
  EXPECT_EQ(MaskEnvValue("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), "AKIAEXAMPLE");
  EXPECT_EQ(MaskEnvValue("DATABASE_URL", "postgres://u:PW@h/db"), "postgres://u:[redacted]@h/db");
  EXPECT_EQ(MaskEnvValue("BARGE_TASK_INDEX", "7"), "7");
}

}  // namespace
}  // namespace barge
