// Unit tests for base/log: logfmt and JSON line formatting (quoting and
// escaping), level parsing and filtering, and RedactDatabaseUrl, which must
// hide passwords in URL and key=value connection strings.
#include "base/log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool {
namespace {

using ::testing::ContainsRegex;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

// The part of a logfmt line after "ts=<time> ", without the newline.
std::string AfterTs(const std::string& line) {
  EXPECT_THAT(line, StartsWith("ts="));
  EXPECT_THAT(line, EndsWith("\n"));
  size_t space = line.find(' ');
  EXPECT_NE(space, std::string::npos);
  return line.substr(space + 1, line.size() - space - 2);
}

// The part of a JSON line after the ts member: `"level":...}`.
std::string AfterJsonTs(const std::string& line) {
  EXPECT_THAT(line, StartsWith("{\"ts\":\""));
  EXPECT_THAT(line, EndsWith("}\n"));
  size_t comma = line.find(',');
  EXPECT_NE(comma, std::string::npos);
  return line.substr(comma + 1, line.size() - comma - 2);
}

// --- logfmt ------------------------------------------------------------------

TEST(FormatLogLine, LogfmtTimestampIsUtcMillis) {
  std::string line = FormatLogLine(LogLevel::kInfo, "hi", {}, false);
  EXPECT_THAT(line,
              MatchesRegex("ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                           "[0-9]{2}\\.[0-9]{3}Z level=info msg=\"hi\"\n"));
}

TEST(FormatLogLine, LogfmtLevelsAndMessage) {
  EXPECT_EQ(AfterTs(FormatLogLine(LogLevel::kDebug, "a", {}, false)),
            "level=debug msg=\"a\"");
  EXPECT_EQ(AfterTs(FormatLogLine(LogLevel::kInfo, "a", {}, false)),
            "level=info msg=\"a\"");
  EXPECT_EQ(AfterTs(FormatLogLine(LogLevel::kWarning, "a", {}, false)),
            "level=warning msg=\"a\"");
  EXPECT_EQ(AfterTs(FormatLogLine(LogLevel::kError, "a", {}, false)),
            "level=error msg=\"a\"");
}

TEST(FormatLogLine, LogfmtPlainValuesUnquoted) {
  std::string line = FormatLogLine(LogLevel::kInfo, "listening",
                                   {{"addr", "127.0.0.1:50051"},
                                    {"pool", 8},
                                    {"ok", true},
                                    {"ratio", 0.5},
                                    {"path", "/a/b-c_d"}},
                                   false);
  EXPECT_EQ(AfterTs(line),
            "level=info msg=\"listening\" addr=127.0.0.1:50051 pool=8 ok=true "
            "ratio=0.5 path=/a/b-c_d");
}

TEST(FormatLogLine, LogfmtQuotesSpacesQuotesEqualsAndEmpty) {
  std::string line = FormatLogLine(LogLevel::kInfo, "m",
                                   {{"a", "two words"},
                                    {"b", "say \"hi\""},
                                    {"c", "k=v"},
                                    {"d", ""},
                                    {"e", std::string("false")}},
                                   false);
  EXPECT_EQ(AfterTs(line),
            "level=info msg=\"m\" a=\"two words\" b=\"say \\\"hi\\\"\" "
            "c=\"k=v\" d=\"\" e=false");
}

TEST(FormatLogLine, LogfmtEscapesControlCharacters) {
  std::string line = FormatLogLine(
      LogLevel::kWarning, "m",
      {{"nl", "a\nb"}, {"tab", "a\tb"}, {"bs", "quoted \\ value"}}, false);
  EXPECT_EQ(AfterTs(line),
            "level=warning msg=\"m\" nl=\"a\\nb\" tab=\"a\\u0009b\" "
            "bs=\"quoted \\\\ value\"");
  // A log line is always one line.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(FormatLogLine, LogfmtMessageAlwaysQuotedAndEscaped) {
  std::string line =
      FormatLogLine(LogLevel::kError, "bad \"thing\"\nhappened\x01", {}, false);
  EXPECT_EQ(AfterTs(line),
            "level=error msg=\"bad \\\"thing\\\"\\nhappened\\u0001\"");
}

TEST(FormatLogLine, LogfmtUnicodeValuesKeptIntact) {
  std::string line = FormatLogLine(LogLevel::kInfo, "caf\xC3\xA9",
                                   {{"q", "\xE2\x82\xAC"}}, false);
  EXPECT_THAT(line, HasSubstr("msg=\"caf\xC3\xA9\""));
  EXPECT_THAT(line, HasSubstr("\xE2\x82\xAC"));
}

// --- JSON --------------------------------------------------------------------

TEST(FormatLogLine, JsonShape) {
  std::string line = FormatLogLine(LogLevel::kInfo, "started",
                                   {{"port", 50051}, {"db", "spool"}}, true);
  EXPECT_THAT(line,
              MatchesRegex("\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T"
                           "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\",.*"));
  EXPECT_EQ(AfterJsonTs(line),
            "\"level\":\"info\",\"msg\":\"started\",\"port\":\"50051\","
            "\"db\":\"spool\"}");
}

TEST(FormatLogLine, JsonEscapesQuotesBackslashesAndControls) {
  std::string line = FormatLogLine(LogLevel::kError, "say \"hi\"\\",
                                   {{"k\"ey", "a\nb"},
                                    {"ctl", std::string("\x01\x1f\t\r", 4)},
                                    {"empty", ""}},
                                   true);
  EXPECT_EQ(AfterJsonTs(line),
            "\"level\":\"error\",\"msg\":\"say \\\"hi\\\"\\\\\","
            "\"k\\\"ey\":\"a\\nb\",\"ctl\":\"\\u0001\\u001f\\u0009\\u000d\","
            "\"empty\":\"\"}");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(FormatLogLine, JsonKeepsUtf8) {
  std::string line = FormatLogLine(LogLevel::kInfo, "\xF0\x9F\x98\x80",
                                   {{"k", "\xC3\xA9"}}, true);
  EXPECT_EQ(AfterJsonTs(line),
            "\"level\":\"info\",\"msg\":\"\xF0\x9F\x98\x80\","
            "\"k\":\"\xC3\xA9\"}");
}

// --- Levels ------------------------------------------------------------------

TEST(ParseLogLevel, KnownNamesAnyCase) {
  LogLevel level = LogLevel::kError;
  ASSERT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  ASSERT_TRUE(ParseLogLevel("INFO", &level));
  EXPECT_EQ(level, LogLevel::kInfo);
  ASSERT_TRUE(ParseLogLevel("Warning", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("error", &level));
  EXPECT_EQ(level, LogLevel::kError);
}

TEST(ParseLogLevel, UnknownLeavesLevelUnchanged) {
  LogLevel level = LogLevel::kWarning;
  EXPECT_FALSE(ParseLogLevel("", &level));
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
  EXPECT_FALSE(ParseLogLevel(" info", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
}

TEST(Log, FiltersBelowTheLevelAndUsesTheFormat) {
  SetLogLevel(LogLevel::kWarning);
  SetLogJson(false);
  testing::internal::CaptureStderr();
  LogInfo("hidden-info");
  LogDebug("hidden-debug");
  LogWarning("shown-warning", {{"k", "v"}});
  LogError("shown-error");
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, Not(HasSubstr("hidden")));
  EXPECT_THAT(out, HasSubstr("level=warning msg=\"shown-warning\" k=v\n"));
  EXPECT_THAT(out, HasSubstr("level=error msg=\"shown-error\"\n"));

  SetLogJson(true);
  testing::internal::CaptureStderr();
  LogError("as-json");
  out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, ContainsRegex("^\\{\"ts\":"));
  EXPECT_THAT(out, HasSubstr("\"level\":\"error\",\"msg\":\"as-json\"}\n"));

  // Restore the defaults for other tests.
  SetLogJson(false);
  SetLogLevel(LogLevel::kInfo);
}

// --- RedactDatabaseUrl -------------------------------------------------------

TEST(RedactDatabaseUrl, HidesUrlPassword) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://user:secret@host/db"),
            "postgresql://user:***@host/db");
  EXPECT_EQ(RedactDatabaseUrl("postgres://spool:s3cr3t@db.example.com:5432/"
                              "spool?sslmode=require"),
            "postgres://spool:***@db.example.com:5432/spool?sslmode=require");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u:p%40ss%3Aword@[::1]:5432/db"),
            "postgresql://u:***@[::1]:5432/db");
}

TEST(RedactDatabaseUrl, HidesEmptyUrlPassword) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://user:@host/db"),
            "postgresql://user:***@host/db");
}

TEST(RedactDatabaseUrl, LeavesPasswordlessUrlsAlone) {
  for (const char* url : {
           "postgresql://user@host/db",
           "postgresql://user@host:5432/db",
           "postgresql://host:5432/db",
           "postgresql:///spool?host=/tmp/pg&port=5433",
           "postgresql://localhost",
           "postgresql://",
           "",
       }) {
    EXPECT_EQ(RedactDatabaseUrl(url), url);
  }
}

TEST(RedactDatabaseUrl, HidesPasswordQueryParameter) {
  EXPECT_EQ(RedactDatabaseUrl(
                "postgresql://user@host/db?password=secret&sslmode=require"),
            "postgresql://user@host/db?password=***&sslmode=require");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://host/db?password=secret"),
            "postgresql://host/db?password=***");
}

TEST(RedactDatabaseUrl, HidesKeyValuePassword) {
  EXPECT_EQ(RedactDatabaseUrl("host=localhost user=spool password=secret "
                              "dbname=spool"),
            "host=localhost user=spool password=*** dbname=spool");
  EXPECT_EQ(RedactDatabaseUrl("password=secret"), "password=***");
  EXPECT_EQ(RedactDatabaseUrl("host=h password=a password=b"),
            "host=h password=*** password=***");
  // In key/value form only whitespace ends an unquoted value.
  EXPECT_EQ(RedactDatabaseUrl("password=a&b host=h"), "password=*** host=h");
}

TEST(RedactDatabaseUrl, HidesQuotedKeyValuePassword) {
  // libpq allows single-quoted values with spaces and \' escapes.
  std::string out =
      RedactDatabaseUrl("host=h password='my secret \\' pass' dbname=spool");
  EXPECT_THAT(out, Not(HasSubstr("secret")));
  EXPECT_THAT(out, Not(HasSubstr("pass'")));
  EXPECT_EQ(out, "host=h password=*** dbname=spool");
}

TEST(RedactDatabaseUrl, HidesKeyValuePasswordWithSpacesAroundEquals) {
  // libpq allows spaces around '='.
  std::string out = RedactDatabaseUrl("host=h password = secret dbname=spool");
  EXPECT_THAT(out, Not(HasSubstr("secret")));
  EXPECT_THAT(out, HasSubstr("dbname=spool"));
  EXPECT_THAT(out, HasSubstr("host=h"));
}

TEST(RedactDatabaseUrl, HidesSslPassword) {
  std::string out =
      RedactDatabaseUrl("host=h sslpassword=keypass sslmode=verify-full");
  EXPECT_THAT(out, Not(HasSubstr("keypass")));
  EXPECT_THAT(out, HasSubstr("sslmode=verify-full"));
}

TEST(RedactDatabaseUrl, LeavesPasswordlessKeyValueAlone) {
  for (const char* conn : {"host=localhost dbname=spool",
                           "host=/tmp port=5433 user=spool", "dbname=spool"}) {
    EXPECT_EQ(RedactDatabaseUrl(conn), conn);
  }
}

TEST(RedactDatabaseUrl, UrlAndQueryPasswordsBothHidden) {
  std::string out = RedactDatabaseUrl(
      "postgresql://user:one@host/db?password=two&application_name=x");
  EXPECT_THAT(out, Not(HasSubstr("one")));
  EXPECT_THAT(out, Not(HasSubstr("two")));
  EXPECT_THAT(out, HasSubstr("application_name=x"));
}

}  // namespace
}  // namespace spool
