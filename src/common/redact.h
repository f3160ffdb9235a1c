// Keeping secrets out of what barge prints and logs: URL passwords, libpq keyword passwords, and
// the values of secret-looking environment variables.
//
//   MaskSecretsInText("connecting to postgres://app:hunter2@db/x")
//       == "connecting to postgres://app:[redacted]@db/x"
//   MaskEnvValue("AWS_SECRET_ACCESS_KEY", "abc...") == "[redacted]"
//
// Every message that may carry a URL given by the user (a state store, an S3 endpoint, a libpq
// error echoing its connection string) passes through MaskSecretsInText before it is printed.
// The masking is textual and errs towards masking too much: it never needs the text to parse.
#pragma once

#include <string>
#include <string_view>

namespace barge {

// What a masked secret is replaced with.
inline constexpr std::string_view kRedacted = "[redacted]";

// Returns `text` with every secret it can recognise replaced by kRedacted:
//  - the password of each URL's userinfo, "scheme://user:PASSWORD@host" (also a malformed
//    "scheme:/user:PASSWORD@host"); the user name stays;
//  - the value of each "KEY=VALUE" whose key names a secret (password, sslpassword, secret,
//    token, ...), as in a libpq keyword string "host=db password=x" or a URL query
//    "?password=x"; a quoted value ('a b') is masked whole.
std::string MaskSecretsInText(std::string_view text);

// The password of a URL's userinfo as written (percent-encoded), "" if there is none.
// For adding to a Redactor, which masks exact strings wherever they appear.
std::string UrlPassword(std::string_view url);

// `text` (a library's message about `url`) with the URL's password masked wherever it appears,
// whole or in part: a "quoted" fragment that is a piece of the password (two characters or more) is
// masked too, as when libpq, misreading a password with an unencoded '/', quotes part of it as a
// port number.
std::string MaskPasswordOf(std::string_view url, std::string_view text);

// True for environment variable names whose values are secrets: names containing SECRET,
// PASSWORD, PASSWD, TOKEN, CREDENTIAL, PRIVATE or KEY (case-insensitive), except names ending in
// _KEY_ID (AWS_ACCESS_KEY_ID identifies a key and is not one).
bool IsSecretName(std::string_view name);

// The printable form of an environment variable: kRedacted for a secret name, else the value with
// MaskSecretsInText applied (DATABASE_URL=postgres://u:[redacted]@h/db).
std::string MaskEnvValue(std::string_view name, std::string_view value);

}  // namespace barge
