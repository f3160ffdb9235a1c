#include "common/redact.h"

#include <algorithm>
#include <cctype>

namespace barge {
namespace {

bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '.' || c == '-';
}

// Characters that end a URL in running text. A password with an unencoded space or quote is not
// recognised, but neither is it a valid URL.
bool EndsToken(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '"' || c == '\'' || c == '<' ||
         c == '>' || c == '`';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The [begin, end) range of the password in `token` (a run of text without EndsToken
// characters) if it holds "scheme:[/...]user:password@...": after the first scheme's ':', the
// userinfo runs to the last '@'. Uses the last '@' so that an unencoded '@' in a password is
// masked too.
std::pair<size_t, size_t> PasswordIn(std::string_view token) {
  for (size_t colon = token.find(':'); colon != std::string_view::npos;
       colon = token.find(':', colon + 1)) {
    size_t start = colon;
    while (start > 0 && IsSchemeChar(token[start - 1])) --start;
    bool scheme = start < colon && std::isalpha(static_cast<unsigned char>(token[start])) != 0;
    if (!scheme && token.substr(colon, 3) != "://") continue;
    size_t authority = colon + 1;
    while (authority < token.size() && token[authority] == '/') ++authority;
    size_t at = token.rfind('@');
    if (at == std::string_view::npos || at < authority) return {0, 0};
    size_t user_colon = token.find(':', authority);
    if (user_colon == std::string_view::npos || user_colon >= at) return {0, 0};
    return {user_colon + 1, at};
  }
  return {0, 0};
}

std::string MaskUrlPasswords(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (EndsToken(text[i])) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && !EndsToken(text[end])) ++end;
    std::string_view token = text.substr(i, end - i);
    auto [b, e] = PasswordIn(token);
    if (e > b) {
      out.append(token.substr(0, b));
      out.append(kRedacted);
      out.append(token.substr(e));
    } else {
      out.append(token);
    }
    i = end;
  }
  return out;
}

bool IsSecretKey(std::string_view key) {
  std::string k = Lower(key);
  for (std::string_view word : {"password", "passwd", "secret", "token", "signature"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return false;
}

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
}

// Masks the values of "secret_key=value" pairs: libpq keyword strings and URL queries.
std::string MaskKeyValues(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t eq = text.find('=', i);
    if (eq == std::string_view::npos) break;
    size_t key = eq;
    while (key > 0 && IsKeyChar(text[key - 1])) --key;
    out.append(text.substr(i, eq + 1 - i));
    i = eq + 1;
    if (key == eq || !IsSecretKey(text.substr(key, eq - key))) continue;
    size_t end = i;
    if (end < text.size() && text[end] == '\'') {
      // libpq's quoted value: up to the closing quote, with \' and \\ escapes.
      for (++end; end < text.size() && text[end] != '\''; ++end) {
        if (text[end] == '\\' && end + 1 < text.size()) ++end;
      }
      if (end < text.size()) ++end;
    } else {
      while (end < text.size() && !EndsToken(text[end]) && text[end] != '&') ++end;
    }
    if (end > i) out.append(kRedacted);
    i = end;
  }
  out.append(text.substr(i));
  return out;
}

}  // namespace

std::string MaskSecretsInText(std::string_view text) {
  return MaskKeyValues(MaskUrlPasswords(text));
}

std::string UrlPassword(std::string_view url) {
  size_t end = 0;
  while (end < url.size() && !EndsToken(url[end])) ++end;
  std::string_view token = url.substr(0, end);
  auto [b, e] = PasswordIn(token);
  return std::string(token.substr(b, e - b));
}

std::string MaskPasswordOf(std::string_view url, std::string_view text) {
  std::string password = UrlPassword(url);
  std::string out = MaskSecretsInText(text);
  if (password.empty()) return out;
  for (size_t open = out.find('"'); open != std::string::npos; open = out.find('"', open + 1)) {
    size_t close = out.find('"', open + 1);
    if (close == std::string::npos) break;
    std::string_view fragment = std::string_view(out).substr(open + 1, close - open - 1);
    if (fragment.size() >= 2 && password.find(fragment) != std::string::npos) {
      out.replace(open + 1, fragment.size(), kRedacted);
      close = open + 1 + kRedacted.size();
    }
    open = close;
  }
  for (size_t at = out.find(password); at != std::string::npos; at = out.find(password, at)) {
    out.replace(at, password.size(), kRedacted);
    at += kRedacted.size();
  }
  return out;
}

bool IsSecretName(std::string_view name) {
  std::string n = Lower(name);
  if (n.ends_with("_key_id")) return false;
  for (std::string_view word :
       {"secret", "password", "passwd", "token", "credential", "private", "key"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return false;
}

std::string MaskEnvValue(std::string_view name, std::string_view value) {
  if (IsSecretName(name)) return std::string(kRedacted);
  return MaskSecretsInText(value);
}

}  // namespace barge
