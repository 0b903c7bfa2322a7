// test_json: parse/dump round-trips (key order, number text, escapes, surrogate pairs), builders, and
// malformed inputs with the exact error position and expectation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/json.h"

static int fails = 0;
#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);           \
            printf(__VA_ARGS__);                                  \
            printf("\n");                                         \
            fails++;                                              \
        }                                                         \
    } while (0)

static lg_json *parse(const char *s) {
    char err[256];
    lg_json *j = lg_json_parse(s, strlen(s), err, sizeof err);
    CHECK(j != NULL, "parse(%s) failed: %s", s, err);
    return j;
}

// Compact dump of parse(in) must equal want.
static void roundtrip(const char *in, const char *want) {
    lg_json *j = parse(in);
    if (!j) return;
    char *out = lg_json_dump(j, -1);
    CHECK(strcmp(out, want) == 0, "dump(%s) = %s, want %s", in, out, want);
    // and the dump parses back to the same dump
    lg_json *k = parse(out);
    if (k) {
        char *out2 = lg_json_dump(k, -1);
        CHECK(strcmp(out, out2) == 0, "re-dump differs: %s vs %s", out, out2);
        free(out2);
        lg_json_free(k);
    }
    free(out);
    lg_json_free(j);
}

static void bad(const char *in, size_t len, const char *want_err) {
    char err[256];
    lg_json *j = lg_json_parse(in, len, err, sizeof err);
    CHECK(j == NULL, "parse(%.*s) should fail", (int)len, in);
    if (j) lg_json_free(j);
    else CHECK(strcmp(err, want_err) == 0, "parse(%.*s): error \"%s\", want \"%s\"", (int)len, in, err, want_err);
}
#define BAD(s, e) bad((s), strlen(s), (e))

static void test_roundtrips(void) {
    // numbers keep their source text exactly
    roundtrip("{\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"x\": 1E+2, \"big\": 1000000000000000019884624838656}",
              "{\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"x\": 1E+2, \"big\": 1000000000000000019884624838656}");
    roundtrip("[0, -0, -0.0, 0.5e-3, 123456789012345678901234567890, -1.25E-300]",
              "[0, -0, -0.0, 0.5e-3, 123456789012345678901234567890, -1.25E-300]");
    // key order kept (not sorted), nesting, literals
    roundtrip(" { \"z\" : [ true , false , null ] , \"a\" : { } , \"m\" : [ ] } ",
              "{\"z\": [true, false, null], \"a\": {}, \"m\": []}");
    // escapes: \/ unescapes to '/', control characters re-escaped, UTF-8 passes through
    roundtrip("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u001f\"]", "[\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\"]");
    roundtrip("[\"\\u00e9\\u4e2d\\ud83d\\ude00\"]", "[\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"]");
    roundtrip("[\"\xe2\x96\x81hello\"]", "[\"\xe2\x96\x81hello\"]");
    // Python's json writes NaN/Infinity; they are kept
    roundtrip("[NaN, Infinity, -Infinity]", "[NaN, Infinity, -Infinity]");

    // decoded values
    lg_json *j = parse("{\"s\": \"\\ud834\\udd1e\", \"n\": 9007199254740993, \"f\": 2.5e-1, \"i\": 32000}");
    if (j) {
        CHECK(strcmp(lg_json_get(j, "s")->str, "\xf0\x9d\x84\x9e") == 0, "surrogate pair U+1D11E");
        CHECK(lg_json_int(j, "n", "t") == 9007199254740993LL, "int beyond 2^53 exact: %lld",
              (long long)lg_json_int(j, "n", "t"));
        CHECK(lg_json_num(j, "f", "t") == 0.25, "2.5e-1");
        CHECK(lg_json_int(j, "i", "t") == 32000, "int");
        CHECK(lg_json_int_or(j, "missing", 7, "t") == 7, "int_or default");
        CHECK(lg_json_num_or(j, "missing", 1.5, "t") == 1.5, "num_or default");
        CHECK(strcmp(lg_json_str_or(j, "missing", "d", "t"), "d") == 0, "str_or default");
        CHECK(lg_json_bool_or(j, "missing", 1, "t") == 1, "bool_or default");
        CHECK(lg_json_get(j, "nope") == NULL, "absent key");
        lg_json_free(j);
    }
}

static void test_pretty_and_builders(void) {
    lg_json *j = parse("{\"a\": 1, \"b\": [1, 2], \"c\": {}, \"d\": 1e-05}");
    if (!j) return;
    // replace keeps the position; new keys append; remove closes the gap
    lg_json_set(j, "a", lg_json_new_str("x\"y"));
    lg_json_set(j, "e", lg_json_new_num(500000.0));
    lg_json_set(j, "f", lg_json_new_num(1e-6));
    lg_json_set(j, "g", lg_json_new_int(-42));
    lg_json_set(j, "h", lg_json_new_bool(1));
    lg_json_set(j, "i", lg_json_new(LG_JSON_NULL));
    lg_json_set(j, "k", lg_json_new_num(0.1));
    lg_json_set(j, "l", lg_json_new_num(1e16));
    lg_json_set(j, "m", lg_json_new_num(1234.5));
    lg_json_set(j, "n", lg_json_new_num(0.0001));
    lg_json_set(j, "o", lg_json_new_num((double)1e-5f));  // float32 value keeps all its double digits
    lg_json_remove(j, "c");
    lg_json *arr = lg_json_get(j, "b");
    lg_json_append(arr, lg_json_new_int(3));
    char *c = lg_json_dump(j, -1);
    const char *want = "{\"a\": \"x\\\"y\", \"b\": [1, 2, 3], \"d\": 1e-05, \"e\": 500000.0, \"f\": 1e-06, \"g\": -42, "
                       "\"h\": true, \"i\": null, \"k\": 0.1, \"l\": 1e+16, \"m\": 1234.5, \"n\": 0.0001, "
                       "\"o\": 9.999999747378752e-06}";
    CHECK(strcmp(c, want) == 0, "builders: %s\nwant %s", c, want);
    free(c);
    lg_json *small = parse("{\"a\": [1, {\"b\": null}], \"c\": {}}");
    if (small) {
        char *p = lg_json_dump(small, 2);
        const char *wantp = "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}";
        CHECK(strcmp(p, wantp) == 0, "pretty: %s", p);
        free(p);
        lg_json_free(small);
    }
    lg_json_free(j);
}

static void test_large_object(void) {
    // a vocabulary-sized object parses in linear time and duplicate detection still works through the hash set
    int n = 50000;
    char *buf = malloc((size_t)n * 24 + 16);
    size_t o = 0;
    buf[o++] = '{';
    for (int i = 0; i < n; i++) o += (size_t)sprintf(buf + o, "%s\"t%d\": %d", i ? ", " : "", i, i);
    buf[o++] = '}';
    buf[o] = 0;
    lg_json *j = parse(buf);
    if (j) {
        CHECK(j->n == n, "large object has %d members", j->n);
        CHECK(lg_json_int(j, "t49999", "t") == 49999, "last member");
        lg_json_free(j);
    }
    // duplicate late in a big object
    o--;  // drop '}'
    o += (size_t)sprintf(buf + o, ", \"t123\": 0}");
    char err[256];
    j = lg_json_parse(buf, o, err, sizeof err);
    CHECK(j == NULL && strstr(err, "duplicate member name \"t123\""), "duplicate in big object: %s", err);
    if (j) lg_json_free(j);
    free(buf);
}

static void test_malformed(void) {
    BAD("", "line 1 col 1: expected a value (object, array, string, number, true, false or null), got end of input");
    BAD("{\"a\": 1,}", "line 1 col 9: trailing comma before '}' (expected another member)");
    BAD("[1, 2,\n ]", "line 2 col 2: trailing comma before ']' (expected another element)");
    BAD("{\"a\" 1}", "line 1 col 6: expected ':' after member name, got '1'");
    BAD("{\"a\": 1 \"b\": 2}", "line 1 col 9: expected ',' or '}' after object member, got '\"'");
    BAD("{a: 1}", "line 1 col 2: expected a member name (a string) or '}', got 'a'");
    BAD("[1 2]", "line 1 col 4: expected ',' or ']' after array element, got '2'");
    BAD("{\n  \"x\": tru\n}", "line 2 col 8: expected a value (object, array, string, number, true, false or null), got 't'");
    BAD("[01]", "line 1 col 2: numbers may not have leading zeros");
    BAD("[1.]", "line 1 col 4: expected a digit after the decimal point, got ']'");
    BAD("[1e]", "line 1 col 4: expected a digit in the exponent, got ']'");
    BAD("[-]", "line 1 col 3: expected a digit, got ']'");
    BAD("[+1]", "line 1 col 2: expected a value (object, array, string, number, true, false or null), got '+'");
    BAD("[\"abc", "line 1 col 2: unterminated string (no closing '\"' before end of input)");
    BAD("[\"a\nb\"]", "line 1 col 4: control characters must be escaped inside a string, got newline");
    BAD("[\"\\x\"]", "line 1 col 4: invalid escape (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX), got 'x'");
    BAD("[\"\\u12G4\"]", "line 1 col 5: expected 4 hex digits after '\\u', got '1'");
    BAD("[\"\\ud800\"]", "line 1 col 3: unpaired UTF-16 high surrogate escape (expected a following \\uDC00-\\uDFFF)");
    BAD("[\"\\ud800\\u0041\"]", "line 1 col 3: unpaired UTF-16 high surrogate escape (expected a following \\uDC00-\\uDFFF)");
    BAD("[\"\\udc00\"]", "line 1 col 3: unpaired UTF-16 low surrogate escape");
    BAD("[\"\xc3\x28\"]", "line 1 col 3: invalid UTF-8 in string, got byte 0xc3");
    BAD("[\"\xc0\xaf\"]", "line 1 col 3: invalid UTF-8 in string, got byte 0xc0");      // overlong '/'
    BAD("[\"\xed\xa0\x80\"]", "line 1 col 3: invalid UTF-8 in string, got byte 0xed");  // encoded surrogate
    BAD("{\"a\": 1, \"a\": 2}", "line 1 col 10: duplicate member name \"a\"");
    BAD("{} x", "line 1 col 4: expected end of input after the top-level value, got 'x'");
    BAD("[1] // comment", "line 1 col 5: expected end of input after the top-level value, got '/'");
    // an embedded NUL is not whitespace
    bad("[1]\0", 4, "line 1 col 4: expected end of input after the top-level value, got byte 0x00");
    // nesting limit
    char deep[2000];
    memset(deep, '[', 1000);
    deep[1000] = 0;
    BAD(deep, "line 1 col 513: nesting deeper than 512 levels");
}

int main(void) {
    test_roundtrips();
    test_pretty_and_builders();
    test_large_object();
    test_malformed();
    if (fails) {
        printf("test_json: %d failures\n", fails);
        return 1;
    }
    printf("test_json: ok\n");
    return 0;
}
