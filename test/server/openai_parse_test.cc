// The OpenAI request checks of m64run --server (cmd/server_openai.c) and the text helpers
// of its generation loop (cmd/server_gen.c), without a model or a socket: every bad body is
// a 400 (413 is server.c's) with an error object naming the field, never a crash.
#include <gtest/gtest.h>
#include <jansson.h>

#include <string>

extern "C" {
#include "server_gen.h"
#include "server_openai.h"
}

namespace {

const srv_defaults kDefaults = {-1, 0.8f, 0.95f, 40, 0, 0};

struct Parsed {
  srv_request r{};
  srv_error err{};
  int rc;
  Parsed(srv_kind kind, const std::string &body) {
    rc = srv_parse_request(kind, body.data(), body.size(), 512, &kDefaults, &r, &err);
  }
  ~Parsed() {
    srv_request_free(&r);
    srv_error_free(&err);
  }
  // the error object's field, "" if absent or null
  std::string field(const char *name) const {
    json_t *o = json_loads(err.body ? err.body : "", 0, nullptr);
    json_t *v = json_object_get(json_object_get(o, "error"), name);
    std::string s = json_is_string(v) ? json_string_value(v) : "";
    json_decref(o);
    return s;
  }
};

void ExpectBad(srv_kind kind, const std::string &body, const char *param) {
  Parsed p(kind, body);
  EXPECT_EQ(p.rc, -1) << body;
  EXPECT_EQ(p.err.status, 400) << body;
  ASSERT_NE(p.err.body, nullptr) << body;
  EXPECT_FALSE(p.field("message").empty()) << body;
  EXPECT_EQ(p.field("type"), "invalid_request_error") << body;
  EXPECT_EQ(p.field("param"), param ? param : "") << body << " -> " << p.err.body;
}

TEST(OpenAIParse, CompletionWithEveryParameter) {
  Parsed p(SRV_COMPLETION,
           R"({"model":"m","prompt":"Once","max_tokens":16,"temperature":0.5,"top_p":0.9,"top_k":5,"seed":42,)"
           R"("stop":["a","bc"],"stream":true,"stream_options":{"include_usage":true},"n":1,"user":"u",)"
           R"("presence_penalty":0,"logprobs":null,"echo":false})");
  ASSERT_EQ(p.rc, 0) << (p.err.body ? p.err.body : "");
  EXPECT_EQ(std::string(p.r.prompt, p.r.prompt_len), "Once");
  EXPECT_EQ(p.r.max_tokens, 16);
  EXPECT_FLOAT_EQ(p.r.temp, 0.5f);
  EXPECT_FLOAT_EQ(p.r.top_p, 0.9f);
  EXPECT_EQ(p.r.top_k, 5);
  EXPECT_TRUE(p.r.has_seed);
  EXPECT_EQ(p.r.seed, 42u);
  ASSERT_EQ(p.r.n_stop, 2);
  EXPECT_EQ(std::string(p.r.stop[1], p.r.stop_len[1]), "bc");
  EXPECT_TRUE(p.r.stream);
  EXPECT_TRUE(p.r.include_usage);
}

TEST(OpenAIParse, DefaultsFillWhatTheRequestLeavesOut) {
  Parsed p(SRV_COMPLETION, R"({"prompt":"x","seed":-1,"max_tokens":null})");
  ASSERT_EQ(p.rc, 0);
  EXPECT_EQ(p.r.max_tokens, -1);
  EXPECT_FLOAT_EQ(p.r.temp, 0.8f);
  EXPECT_EQ(p.r.top_k, 40);
  EXPECT_FALSE(p.r.has_seed); // -1: random
}

TEST(OpenAIParse, PromptAsTokenIdsOrOneString) {
  Parsed ids(SRV_COMPLETION, R"({"prompt":[1,2,511]})");
  ASSERT_EQ(ids.rc, 0);
  ASSERT_EQ(ids.r.n_prompt_ids, 3u);
  EXPECT_EQ(ids.r.prompt_ids[2], 511);
  Parsed one(SRV_COMPLETION, R"({"prompt":["hi"]})");
  ASSERT_EQ(one.rc, 0);
  EXPECT_EQ(std::string(one.r.prompt), "hi");
  ExpectBad(SRV_COMPLETION, R"({"prompt":[1,512]})", "prompt"); // outside the vocabulary
  ExpectBad(SRV_COMPLETION, R"({"prompt":["a","b"]})", "prompt");
  ExpectBad(SRV_COMPLETION, R"({"prompt":[]})", "prompt");
}

TEST(OpenAIParse, ChatMessages) {
  Parsed p(SRV_CHAT, R"({"messages":[{"role":"system","content":"S"},{"role":"user","content":"U1"},)"
                     R"({"role":"assistant","content":null},)"
                     R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})");
  ASSERT_EQ(p.rc, 0) << (p.err.body ? p.err.body : "");
  ASSERT_EQ(p.r.n_msgs, 4u);
  EXPECT_EQ(p.r.msgs[0].role, 's');
  EXPECT_EQ(p.r.msgs[2].role, 'a');
  EXPECT_EQ(p.r.msgs[2].len, 0u);
  EXPECT_EQ(std::string(p.r.msgs[3].text, p.r.msgs[3].len), "ab");
}

TEST(OpenAIParse, MalformedBodies) {
  for (const char *body : {"", "{", "{\"prompt\":\"x\",}", "[1]", "\"x\"", "null", "{\"prompt\":\"x\"} trailing",
                           "{\"prompt\":\"\xff\xfe\"}", "{\"prompt\":\"a\\u0000b\"}", "{\"a\":1,\"a\":2}"})
    ExpectBad(SRV_COMPLETION, body, nullptr);
  // nesting far past any real request: an error, not a stack overflow
  ExpectBad(SRV_COMPLETION, std::string(100000, '[') + std::string(100000, ']'), nullptr);
}

TEST(OpenAIParse, WrongTypesAndRangesNameTheField) {
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","temperature":"hot"})", "temperature");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","temperature":3})", "temperature");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","top_p":-0.1})", "top_p");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","top_k":1.5})", "top_k");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","max_tokens":-1})", "max_tokens");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","max_tokens":"9"})", "max_tokens");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","seed":-2})", "seed");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stream":1})", "stream");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stop":[""]})", "stop");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stop":{}})", "stop");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","model":7})", "model");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream_options");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","stream":true,"stream_options":{"other":1}})", "stream_options");
}

TEST(OpenAIParse, UnknownAndUnsupportedFields) {
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","foo":1})", "foo");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","messages":[]})", "messages"); // chat's, not completion's
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"x"}],"prompt":"x"})", "prompt");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","n":2})", "n");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","echo":true})", "echo");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","frequency_penalty":0.5})", "frequency_penalty");
  ExpectBad(SRV_COMPLETION, R"({"prompt":"x","logit_bias":{"1":2}})", "logit_bias");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"x"}],"tools":[]})", "tools");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})",
            "response_format");
  ExpectBad(SRV_COMPLETION, R"({})", "prompt");
  ExpectBad(SRV_CHAT, R"({})", "messages");
}

TEST(OpenAIParse, ChatMessagesOutOfShape) {
  ExpectBad(SRV_CHAT, R"({"messages":[]})", "messages");
  ExpectBad(SRV_CHAT, R"({"messages":"hi"})", "messages");
  ExpectBad(SRV_CHAT, R"({"messages":[1]})", "messages[0]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user"}]})", "messages[0]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"x","extra":1}]})", "messages[0]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":5}]})", "messages[0].content");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
            "messages[0].content");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]})", "messages[1]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]})", "messages[1]");
  ExpectBad(SRV_CHAT, R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]})", "messages");
}

TEST(OpenAIReply, ResponsesAreJSONWithTheFieldsClientsRead) {
  const srv_reply_ctx c = {SRV_CHAT, "chatcmpl-1", "m.m64", 1700000000};
  char *s = srv_reply_json(&c, "hi \"x\"", 6, "stop", 3, 2);
  ASSERT_NE(s, nullptr);
  json_t *o = json_loads(s, 0, nullptr);
  ASSERT_NE(o, nullptr) << s;
  EXPECT_STREQ(json_string_value(json_object_get(o, "object")), "chat.completion");
  json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
  EXPECT_STREQ(json_string_value(json_object_get(json_object_get(choice, "message"), "content")), "hi \"x\"");
  EXPECT_STREQ(json_string_value(json_object_get(choice, "finish_reason")), "stop");
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(o, "usage"), "total_tokens")), 5);
  json_decref(o);
  free(s);
  char *chunk = srv_chunk_json(&c, nullptr, 0, nullptr, 1);
  ASSERT_NE(chunk, nullptr);
  EXPECT_NE(std::string(chunk).find("\"delta\":{\"role\":\"assistant\""), std::string::npos) << chunk;
  free(chunk);
}

TEST(ServerText, Utf8CleanReplacesWhatIsNotUtf8) {
  size_t n;
  const std::string in = std::string("ok \xc3\xa9 ") + "\xff" + "\xe2\x82" + "\xed\xa0\x80" + std::string(1, '\0') + "z";
  char *out = srv_utf8_clean(in.data(), in.size(), &n);
  ASSERT_NE(out, nullptr);
  // é kept; 0xff, the cut-off euro sign's two bytes, the surrogate's three and NUL each U+FFFD
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(std::string(out, n), "ok \xc3\xa9 " + r + r + r + r + r + r + r + "z");
  free(out);
}

TEST(ServerText, StopSequencesAndWhatToHoldBack) {
  char a[] = "END", b[] = "\n\n";
  char *stop[] = {a, b};
  size_t len[] = {3, 2}, hold;
  const std::string t1 = "hello EN";
  EXPECT_EQ(srv_find_stop(t1.data(), t1.size(), 0, stop, len, 2, &hold), -1);
  EXPECT_EQ(hold, 2u); // "EN" may become END
  const std::string t2 = "hello END there\n\n";
  EXPECT_EQ(srv_find_stop(t2.data(), t2.size(), 0, stop, len, 2, &hold), 6);
  EXPECT_EQ(srv_find_stop(t2.data(), t2.size(), 7, stop, len, 2, &hold), 15);
  const std::string t3 = "text\n";
  EXPECT_EQ(srv_find_stop(t3.data(), t3.size(), 0, stop, len, 2, &hold), -1);
  EXPECT_EQ(hold, 1u);
  EXPECT_EQ(srv_find_stop("", 0, 0, stop, len, 2, &hold), -1);
  EXPECT_EQ(hold, 0u);
}

}  // namespace
