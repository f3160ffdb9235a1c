#include "common/redact.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "common/shell.h"

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

void Redactor::Add(const std::string& secret) {
  if (secret.size() < 4) return;
  secrets_.push_back(secret);
  max_length_ = std::max<int64_t>(max_length_, static_cast<int64_t>(secret.size()));
}

void Redactor::AddUrlPassword(const std::string& url) { Add(UrlPassword(url)); }

void Redactor::AddWithQuotedForms(const std::string& secret) {
  Add(secret);
  if (secret.find('\'') != std::string::npos) Add(ShellQuote(secret));
}

std::string Redactor::operator()(std::string text) const {
  if (secrets_.empty()) return text;
  return Slice(text, 0, 0, static_cast<int64_t>(text.size()));
}

std::string Redactor::Slice(std::string_view window, int64_t window_start, int64_t from,
                            int64_t to) const {
  const size_t lo = static_cast<size_t>(from - window_start);
  const size_t hi = static_cast<size_t>(to - window_start);
  // Every occurrence, overlapping ones included, so that where matching starts cannot change
  // which bytes are hidden.
  std::vector<std::pair<size_t, size_t>> found;
  for (const std::string& s : secrets_) {
    for (size_t p = window.find(s); p != std::string_view::npos; p = window.find(s, p + 1)) {
      found.emplace_back(p, p + s.size());
    }
  }
  std::sort(found.begin(), found.end());
  std::string out;
  out.reserve(hi - lo);
  size_t pos = lo;  // the next byte of [lo, hi) not yet shown or hidden
  for (size_t i = 0; i < found.size();) {
    auto [begin, end] = found[i];
    for (++i; i < found.size() && found[i].first <= end; ++i) end = std::max(end, found[i].second);
    if (end <= lo) continue;
    if (begin >= hi) break;
    if (begin > pos) out.append(window.substr(pos, begin - pos));
    if (begin >= lo) out += "[redacted]";
    pos = std::max(pos, std::min(end, hi));
  }
  if (pos < hi) out.append(window.substr(pos, hi - pos));
  return out;
}

int64_t Redactor::LiveEnd(std::string_view last, int64_t size, int64_t from, int64_t to) const {
  int64_t partial_from = size - PartialSecretAtEnd(last);
  return to > partial_from ? std::max(from, partial_from) : to;
}

int64_t Redactor::PartialSecretAtEnd(std::string_view text) const {
  for (size_t k = std::min<size_t>(text.size(), std::max<int64_t>(max_length_ - 1, 0)); k > 0;
       --k) {
    for (const std::string& s : secrets_) {
      if (s.size() > k && text.ends_with(std::string_view(s).substr(0, k))) {
        return static_cast<int64_t>(k);
      }
    }
  }
  return 0;
}

void Redactor::RedactJson(nlohmann::json& j) const {
  if (secrets_.empty()) return;
  if (j.is_string()) {
    j = (*this)(j.get<std::string>());
  } else if (j.is_array()) {
    for (nlohmann::json& item : j) RedactJson(item);
  } else if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto& [key, value] : j.items()) {
      RedactJson(value);
      out[(*this)(key)] = std::move(value);
    }
    j = std::move(out);
  }
}

}  // namespace barge
