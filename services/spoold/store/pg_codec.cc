#include "store/pg_codec.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace spool::store {
namespace {

void AppendQuotedElement(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A minimal reader for a JSON object whose values are all strings.
class JsonObjectReader {
 public:
  explicit JsonObjectReader(std::string_view s) : s_(s) {}

  absl::StatusOr<Headers> Read() {
    Headers out;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return Finish(std::move(out));
    while (true) {
      SkipSpace();
      std::string key, value;
      if (!ReadString(key)) return Error("bad key");
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      if (!ReadString(value)) return Error("bad value");
      out.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (Consume(',')) continue;
      if (Consume('}')) return Finish(std::move(out));
      return Error("expected ',' or '}'");
    }
  }

 private:
  absl::StatusOr<Headers> Finish(Headers out) {
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters");
    std::sort(out.begin(), out.end());
    return out;
  }
  absl::Status Error(std::string_view what) const {
    return absl::DataLossError(absl::StrCat(
        "stored headers are not a JSON object of strings: ", std::string(what),
        " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' ||
                                s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool ReadHex4(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return false;
    }
    return true;
  }
  bool ReadString(std::string& out) {
    if (!Consume('"')) return false;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!ReadHex4(cp)) return false;
          // A lone low surrogate would become invalid UTF-8.
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!Consume('\\') || !Consume('u') || !ReadHex4(lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string TextArrayLiteral(const std::vector<std::optional<std::string>>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    if (v[i].has_value()) {
      AppendQuotedElement(out, *v[i]);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

std::string TextArrayLiteral(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    AppendQuotedElement(out, v[i]);
  }
  out += '}';
  return out;
}

std::string EncodeHeadersJson(const Headers& headers) {
  std::string out = "{";
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0) out += ',';
    AppendJsonString(out, headers[i].first);
    out += ':';
    AppendJsonString(out, headers[i].second);
  }
  out += '}';
  return out;
}

absl::StatusOr<Headers> DecodeHeadersJson(std::string_view json) {
  return JsonObjectReader(json).Read();
}

}  // namespace spool::store
