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
// Known secret values (the API token, a run's `secrets:`) are masked by a Redactor, wherever
// they appear in a text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

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

// Masks known secrets in raw text. Every byte that belongs to an occurrence of a secret is
// hidden, and each run of such bytes (overlapping or touching occurrences) becomes one
// "[redacted]".
class Redactor {
 public:
  // Adds a secret (ignored if shorter than 4 characters, which would mask ordinary text).
  void Add(const std::string& secret);
  // Adds the password of a URL such as postgres://user:password@host/db.
  void AddUrlPassword(const std::string& url);
  // Adds a secret and the forms it takes once quoted for a shell ('it'\''s' for it's), as it
  // appears in a command barge rendered.
  void AddWithQuotedForms(const std::string& secret);
  std::string operator()(std::string text) const;
  // Masks every string, and every object key, of `j`.
  void RedactJson(nlohmann::json& j) const;

  // The length of the longest secret (0: none).
  int64_t MaxLength() const { return max_length_; }
  // The redacted form of bytes [from, to) of a text, of which `window` holds the bytes from
  // `window_start` on. REQUIRES: the window covers [from - MaxLength(), to + MaxLength()),
  // clipped to the text. A run of secret bytes that starts inside [from, to) shows as
  // "[redacted]"; one that starts before `from` is left out whole. So the slices of adjacent
  // ranges join to exactly operator()(text), and no slice shows any byte of a secret.
  std::string Slice(std::string_view window, int64_t window_start, int64_t from, int64_t to) const;
  // How many bytes at the end of `text` could be the start of a secret still being written
  // (0 to MaxLength() - 1): a growing log withholds them until the rest arrives.
  int64_t PartialSecretAtEnd(std::string_view text) const;
  // Where a slice [from, to) of a growing text of `size` bytes must end so that it shows no byte of
  // a secret still being written: `last` is the text's final min(size, MaxLength() - 1) bytes.
  // Returns `to`, or the start of such a partial secret if `to` lies beyond it (never below
  // `from`).
  int64_t LiveEnd(std::string_view last, int64_t size, int64_t from, int64_t to) const;

 private:
  std::vector<std::string> secrets_;
  int64_t max_length_ = 0;
};

}  // namespace barge
