// Unit tests for store/pg_codec: PostgreSQL array literals (quoting and NULL),
// header JSON encoding, and decoding of JSON as PostgreSQL prints it (jsonb
// spacing, \u escapes with surrogate pairs), with malformed input rejected.
#include "store/pg_codec.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/types.h"

namespace spool::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// --- Array literals ----------------------------------------------------------

TEST(TextArrayLiteral, Empty) {
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{}), "{}");
  EXPECT_EQ(TextArrayLiteral(std::vector<std::optional<std::string>>{}), "{}");
}

TEST(TextArrayLiteral, QuotesEveryElement) {
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{"a", "bc", ""}),
            R"({"a","bc",""})");
}

TEST(TextArrayLiteral, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{R"(say "hi")"}),
            R"({"say \"hi\""})");
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{R"(C:\dir\)"}),
            R"({"C:\\dir\\"})");
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{R"(\")"}), R"({"\\\""})");
}

TEST(TextArrayLiteral, CommasBracesAndSpacesStayInsideQuotes) {
  EXPECT_EQ(
      TextArrayLiteral(std::vector<std::string>{"a,b", "{x}", " s ", "}", "{"}),
      R"({"a,b","{x}"," s ","}","{"})");
}

TEST(TextArrayLiteral, NullElementsAreBareNull) {
  std::vector<std::optional<std::string>> v = {"x", std::nullopt, "NULL", ""};
  // The string "NULL" is quoted, so it stays a string; only nullopt is NULL.
  EXPECT_EQ(TextArrayLiteral(v), R"({"x",NULL,"NULL",""})");
}

TEST(TextArrayLiteral, OptionalOverloadEscapesToo) {
  std::vector<std::optional<std::string>> v = {R"(a"b\c,{})", std::nullopt};
  EXPECT_EQ(TextArrayLiteral(v), R"({"a\"b\\c,{}",NULL})");
}

TEST(TextArrayLiteral, PassesUtf8AndControlBytesThrough) {
  EXPECT_EQ(TextArrayLiteral(std::vector<std::string>{"caf\xC3\xA9", "a\nb"}),
            "{\"caf\xC3\xA9\",\"a\nb\"}");
}

TEST(IntArrayLiteral, FormatsIntegers) {
  EXPECT_EQ(IntArrayLiteral(std::vector<int64_t>{}), "{}");
  EXPECT_EQ(IntArrayLiteral(std::vector<int64_t>{7}), "{7}");
  EXPECT_EQ(IntArrayLiteral(std::vector<int64_t>{1, -2, 3}), "{1,-2,3}");
  EXPECT_EQ(IntArrayLiteral(std::vector<int64_t>{INT64_MAX, INT64_MIN}),
            "{9223372036854775807,-9223372036854775808}");
  EXPECT_EQ(IntArrayLiteral(std::vector<int16_t>{-100, 100}), "{-100,100}");
  EXPECT_EQ(IntArrayLiteral(std::vector<int32_t>{0, 0}), "{0,0}");
}

// --- Header JSON encoding ----------------------------------------------------

TEST(EncodeHeadersJson, EmptyIsEmptyObject) {
  EXPECT_EQ(EncodeHeadersJson({}), "{}");
}

TEST(EncodeHeadersJson, SimpleObject) {
  EXPECT_EQ(EncodeHeadersJson({{"a", "1"}, {"b", "two"}}),
            R"({"a":"1","b":"two"})");
}

TEST(EncodeHeadersJson, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(EncodeHeadersJson({{"k\"", "v\\"}}), R"({"k\"":"v\\"})");
  EXPECT_EQ(EncodeHeadersJson({{"c", "\n\r\t\b\f"}}), R"({"c":"\n\r\t\b\f"})");
  EXPECT_EQ(EncodeHeadersJson({{"c", std::string("\x01\x1f", 2)}}),
            R"({"c":"\u0001\u001f"})");
}

TEST(EncodeHeadersJson, LeavesUtf8AndSlashesAlone) {
  EXPECT_EQ(EncodeHeadersJson({{"caf\xC3\xA9", "\xF0\x9F\x98\x80/x"}}),
            "{\"caf\xC3\xA9\":\"\xF0\x9F\x98\x80/x\"}");
}

// --- Header JSON decoding ----------------------------------------------------

TEST(DecodeHeadersJson, EmptyObject) {
  for (const char* json : {"{}", "{ }", "  {}  ", "\n{\n}\n"}) {
    auto h = DecodeHeadersJson(json);
    ASSERT_TRUE(h.ok()) << json << ": " << h.status();
    EXPECT_THAT(*h, IsEmpty());
  }
}

TEST(DecodeHeadersJson, JsonbSpacing) {
  auto h = DecodeHeadersJson(R"({"a": "b"})");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h, ElementsAre(Pair("a", "b")));
  auto h2 = DecodeHeadersJson(R"({"a": "1", "bb": "2", "ccc": ""})");
  ASSERT_TRUE(h2.ok()) << h2.status();
  EXPECT_THAT(*h2,
              ElementsAre(Pair("a", "1"), Pair("bb", "2"), Pair("ccc", "")));
}

TEST(DecodeHeadersJson, ResultIsSortedByName) {
  // jsonb prints shorter keys first; Headers are in name order.
  auto h = DecodeHeadersJson(R"({"b": "1", "aa": "2", "abc": "3"})");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h,
              ElementsAre(Pair("aa", "2"), Pair("abc", "3"), Pair("b", "1")));
}

TEST(DecodeHeadersJson, SimpleEscapes) {
  auto h = DecodeHeadersJson(
      R"({"q": "\"", "bs": "\\", "sl": "\/", "ws": "\b\f\n\r\t"})");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h, ElementsAre(Pair("bs", "\\"), Pair("q", "\""),
                              Pair("sl", "/"), Pair("ws", "\b\f\n\r\t")));
}

TEST(DecodeHeadersJson, UnicodeEscapes) {
  auto h = DecodeHeadersJson(
      R"({"a": "\u0041", "e": "caf\u00e9", "E": "caf\u00C9", "c": "\u001f",)"
      R"( "euro": "\u20ac", "cjk": "\u4e2d\u6587"})");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(
      *h,
      ElementsAre(Pair("E", "caf\xC3\x89"), Pair("a", "A"), Pair("c", "\x1f"),
                  Pair("cjk", "\xE4\xB8\xAD\xE6\x96\x87"),
                  Pair("e", "caf\xC3\xA9"), Pair("euro", "\xE2\x82\xAC")));
}

TEST(DecodeHeadersJson, SurrogatePairs) {
  // U+1F600 as PostgreSQL's json type could print it.
  auto h =
      DecodeHeadersJson(R"({"emoji": "\ud83d\ude00", "up": "\uD83D\uDE00"})");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h, ElementsAre(Pair("emoji", "\xF0\x9F\x98\x80"),
                              Pair("up", "\xF0\x9F\x98\x80")));
  // The highest code point, U+10FFFF.
  auto max = DecodeHeadersJson(R"({"m": "\udbff\udfff"})");
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_THAT(*max, ElementsAre(Pair("m", "\xF4\x8F\xBF\xBF")));
}

TEST(DecodeHeadersJson, RawUtf8) {
  auto h = DecodeHeadersJson("{\"caf\xC3\xA9\": \"\xF0\x9F\x98\x80\"}");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h, ElementsAre(Pair("caf\xC3\xA9", "\xF0\x9F\x98\x80")));
}

TEST(DecodeHeadersJson, RoundTrip) {
  Headers headers = {
      {"", ""},
      {"backslash", R"(C:\path\)"},
      {"controls", std::string("\x01\x02\x1f\x7f", 4)},
      {"quote\"key", "say \"hi\""},
      {"unicode", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
      {"whitespace", " \t\r\n\b\f "},
      {"x", "{\"not\": \"json\"}, [1,2]"},
  };
  std::string json = EncodeHeadersJson(headers);
  auto decoded = DecodeHeadersJson(json);
  ASSERT_TRUE(decoded.ok()) << json << ": " << decoded.status();
  EXPECT_EQ(*decoded, headers);
}

TEST(DecodeHeadersJson, RoundTripEveryControlCharacter) {
  Headers headers;
  for (int c = 1; c < 0x20; ++c) {
    headers.emplace_back(std::string(1, 'a' + (c % 26)) + std::to_string(c),
                         std::string(1, static_cast<char>(c)));
  }
  std::sort(headers.begin(), headers.end());
  auto decoded = DecodeHeadersJson(EncodeHeadersJson(headers));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, headers);
}

TEST(DecodeHeadersJson, RoundTripSortsUnsortedInput) {
  Headers headers = {{"b", "2"}, {"a", "1"}};
  auto decoded = DecodeHeadersJson(EncodeHeadersJson(headers));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(*decoded, ElementsAre(Pair("a", "1"), Pair("b", "2")));
}

TEST(DecodeHeadersJson, MalformedIsDataLoss) {
  for (const char* json : {
           "",
           "   ",
           "[]",
           "null",
           R"("a")",
           "{",
           "}",
           R"({"a")",
           R"({"a":)",
           R"({"a": "b")",
           R"({"a": "b)",
           R"({"a": "b",})",
           R"({"a": "b" "c": "d"})",
           R"({"a" "b"})",
           R"({a: "b"})",
           R"({'a': 'b'})",
           R"({"a": 1})",
           R"({"a": null})",
           R"({"a": true})",
           R"({"a": ["b"]})",
           R"({"a": {"b": "c"}})",
           R"({"a": "b"} x)",
           R"({"a": "b"}})",
           R"({"a": "\x"})",
           R"({"a": "\)",
           R"({"a": "\u12"})",
           R"({"a": "\u12g4"})",
           R"({"a": "\ud83d"})",        // High surrogate alone.
           R"({"a": "\ud83dx"})",       // High surrogate, then text.
           R"({"a": "\ud83d\u0041"})",  // High surrogate, then not a low one.
           R"({"a": "\ud83d\n"})",
       }) {
    auto h = DecodeHeadersJson(json);
    EXPECT_FALSE(h.ok()) << "accepted: " << json;
    if (!h.ok()) {
      EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << json;
      EXPECT_THAT(std::string(h.status().message()), HasSubstr("headers"));
    }
  }
}

TEST(DecodeHeadersJson, LoneLowSurrogateRejected) {
  // Would decode to an invalid UTF-8 sequence (CESU-8); reject instead.
  auto h = DecodeHeadersJson(R"({"a": "\ude00"})");
  EXPECT_FALSE(h.ok());
  if (!h.ok()) {
    EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST(DecodeHeadersJson, ErrorNamesTheOffset) {
  auto h = DecodeHeadersJson(R"({"a": 1})");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("offset"));
}

// --- Times -------------------------------------------------------------------

TEST(Micros, TimeRoundTrip) {
  const absl::Time t = absl::FromUnixMicros(1700000000123456);
  EXPECT_EQ(ToMicros(t), 1700000000123456);
  EXPECT_EQ(FromMicros(ToMicros(t)), t);
  EXPECT_EQ(ToMicros(absl::UnixEpoch()), 0);
  EXPECT_EQ(FromMicros(-1), absl::UnixEpoch() - absl::Microseconds(1));
}

TEST(Micros, Durations) {
  EXPECT_EQ(ToMicros(absl::Seconds(30)), 30000000);
  EXPECT_EQ(ToMicros(absl::Milliseconds(1)), 1000);
  EXPECT_EQ(ToMicros(absl::Nanoseconds(1999)), 1);  // Truncated.
  EXPECT_EQ(ToMicros(absl::ZeroDuration()), 0);
}

}  // namespace
}  // namespace spool::store
