// json.c: see json.h. A strict RFC 8259 parser (plus NaN/Infinity, which Python's json writes) that keeps
// object key order and each number's source text, and a writer that reproduces unchanged numbers byte for byte.
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"

#define JSON_MAX_DEPTH 512

// ---------------------------------------------------------------------------------------------------------
// nodes

lg_json *lg_json_new(lg_json_type type) {
    lg_json *j = lg_calloc(1, sizeof(lg_json));
    j->type = type;
    return j;
}

void lg_json_free(lg_json *j) {
    if (!j) return;
    for (int i = 0; i < j->n; i++) lg_json_free(j->items[i]);
    free(j->items);
    free(j->key);
    free(j->num_text);
    free(j->str);
    free(j);
}

static void push_item(lg_json *parent, lg_json *child) {
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->items = lg_realloc(parent->items, sizeof(lg_json *) * (size_t)parent->cap);
    }
    parent->items[parent->n++] = child;
}

// ---------------------------------------------------------------------------------------------------------
// parser

typedef struct {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    int failed;
    int depth;
} parser;

// Line and column (1-based, column in bytes) of byte offset pos.
static void line_col(const parser *p, size_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->s[i] == '\n') { l++; c = 1; }
        else c++;
    }
    *line = l;
    *col = c;
}

// Describe the character at pos for messages: 'x', end of input, or a byte in hex.
static void describe_at(const parser *p, size_t pos, char *buf, size_t n) {
    if (pos >= p->len) { snprintf(buf, n, "end of input"); return; }
    unsigned char ch = (unsigned char)p->s[pos];
    if (ch >= 0x20 && ch < 0x7f) snprintf(buf, n, "'%c'", ch);
    else if (ch == '\n') snprintf(buf, n, "newline");
    else snprintf(buf, n, "byte 0x%02x", ch);
}

static void fail_at(parser *p, size_t pos, const char *what) {
    if (p->failed) return;
    p->failed = 1;
    int l, c;
    line_col(p, pos, &l, &c);
    char got[32];
    describe_at(p, pos, got, sizeof got);
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "line %d col %d: %s, got %s", l, c, what, got);
}

static void fail_msg(parser *p, size_t pos, const char *msg) {
    if (p->failed) return;
    p->failed = 1;
    int l, c;
    line_col(p, pos, &l, &c);
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "line %d col %d: %s", l, c, msg);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char ch = p->s[p->pos];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') p->pos++;
        else break;
    }
}

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static int match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0) {
        p->pos += n;
        return 1;
    }
    return 0;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Length of the valid UTF-8 sequence at s (max n bytes), or 0 if invalid (overlong, surrogate, > U+10FFFF).
static size_t utf8_valid(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { k = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

// Parse a string starting at the opening quote; returns a heap copy (unescaped UTF-8) or NULL on error.
static char *parse_string_raw(parser *p) {
    size_t start = p->pos;
    p->pos++;  // opening quote
    // the unescaped text is never longer than the escaped source
    char *out = lg_malloc(p->len - p->pos + 1);
    size_t o = 0;
    for (;;) {
        if (p->pos >= p->len) {
            fail_msg(p, start, "unterminated string (no closing '\"' before end of input)");
            free(out);
            return NULL;
        }
        unsigned char ch = (unsigned char)p->s[p->pos];
        if (ch == '"') { p->pos++; break; }
        if (ch < 0x20) {
            fail_at(p, p->pos, "control characters must be escaped inside a string");
            free(out);
            return NULL;
        }
        if (ch == '\\') {
            if (p->pos + 1 >= p->len) {
                fail_at(p, p->pos + 1, "expected an escape character after '\\'");
                free(out);
                return NULL;
            }
            char e = p->s[p->pos + 1];
            size_t esc_pos = p->pos;
            p->pos += 2;
            switch (e) {
            case '"': out[o++] = '"'; break;
            case '\\': out[o++] = '\\'; break;
            case '/': out[o++] = '/'; break;
            case 'b': out[o++] = '\b'; break;
            case 'f': out[o++] = '\f'; break;
            case 'n': out[o++] = '\n'; break;
            case 'r': out[o++] = '\r'; break;
            case 't': out[o++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (p->len - p->pos < 4 || !hex4(p->s + p->pos, &cp)) {
                    fail_at(p, p->pos, "expected 4 hex digits after '\\u'");
                    free(out);
                    return NULL;
                }
                p->pos += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // high surrogate: a low surrogate escape must follow, together one code point
                    unsigned lo;
                    if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u' &&
                        hex4(p->s + p->pos + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                        p->pos += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        fail_msg(p, esc_pos, "unpaired UTF-16 high surrogate escape (expected a following \\uDC00-\\uDFFF)");
                        free(out);
                        return NULL;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fail_msg(p, esc_pos, "unpaired UTF-16 low surrogate escape");
                    free(out);
                    return NULL;
                }
                o += utf8_put(out + o, cp);
                break;
            }
            default:
                fail_at(p, esc_pos + 1, "invalid escape (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
                free(out);
                return NULL;
            }
            continue;
        }
        size_t k = utf8_valid((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!k) {
            fail_at(p, p->pos, "invalid UTF-8 in string");
            free(out);
            return NULL;
        }
        memcpy(out + o, p->s + p->pos, k);
        o += k;
        p->pos += k;
    }
    out[o] = 0;
    return out;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static lg_json *parse_number(parser *p) {
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (match_word(p, "Infinity")) {
        lg_json *j = lg_json_new(LG_JSON_NUMBER);
        j->num = p->s[start] == '-' ? -INFINITY : INFINITY;
        j->num_text = lg_strdup(p->s[start] == '-' ? "-Infinity" : "Infinity");
        return j;
    }
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p))) {
            fail_msg(p, p->pos - 1, "numbers may not have leading zeros");
            return NULL;
        }
    } else if (is_digit(peek(p))) {
        while (is_digit(peek(p))) p->pos++;
    } else {
        fail_at(p, p->pos, "expected a digit");
        return NULL;
    }
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p))) {
            fail_at(p, p->pos, "expected a digit after the decimal point");
            return NULL;
        }
        while (is_digit(peek(p))) p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (!is_digit(peek(p))) {
            fail_at(p, p->pos, "expected a digit in the exponent");
            return NULL;
        }
        while (is_digit(peek(p))) p->pos++;
    }
    size_t n = p->pos - start;
    lg_json *j = lg_json_new(LG_JSON_NUMBER);
    j->num_text = lg_malloc(n + 1);
    memcpy(j->num_text, p->s + start, n);
    j->num_text[n] = 0;
    j->num = strtod(j->num_text, NULL);  // overflow gives +-HUGE_VAL, which is what the text means
    return j;
}

static lg_json *parse_value(parser *p);

// Duplicate-key detection: a linear scan for small objects, a hash set for large ones (tokenizer vocabularies).
typedef struct {
    uint64_t *h;
    int *idx;
    size_t cap;
} keyset;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void keyset_insert(keyset *ks, const lg_json *obj, int i) {
    uint64_t h = hash_str(obj->items[i]->key);
    size_t m = ks->cap - 1, at = (size_t)h & m;
    while (ks->idx[at] >= 0) at = (at + 1) & m;
    ks->h[at] = h;
    ks->idx[at] = i;
}

static void keyset_rebuild(keyset *ks, const lg_json *obj, size_t cap) {
    free(ks->h);
    free(ks->idx);
    ks->cap = cap;
    ks->h = lg_malloc(sizeof(uint64_t) * cap);
    ks->idx = lg_malloc(sizeof(int) * cap);
    for (size_t i = 0; i < cap; i++) ks->idx[i] = -1;
    for (int i = 0; i < obj->n; i++) keyset_insert(ks, obj, i);
}

static int keyset_has(const keyset *ks, const lg_json *obj, const char *key) {
    uint64_t h = hash_str(key);
    size_t m = ks->cap - 1, at = (size_t)h & m;
    while (ks->idx[at] >= 0) {
        if (ks->h[at] == h && strcmp(obj->items[ks->idx[at]]->key, key) == 0) return 1;
        at = (at + 1) & m;
    }
    return 0;
}

static int has_key(keyset *ks, const lg_json *obj, const char *key) {
    if (obj->n < 16) {
        for (int i = 0; i < obj->n; i++)
            if (strcmp(obj->items[i]->key, key) == 0) return 1;
        return 0;
    }
    if ((size_t)obj->n * 2 >= ks->cap) keyset_rebuild(ks, obj, ks->cap ? ks->cap * 4 : 64);
    return keyset_has(ks, obj, key);
}

static lg_json *parse_object(parser *p) {
    p->pos++;  // '{'
    lg_json *obj = lg_json_new(LG_JSON_OBJECT);
    keyset ks = {0};
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return obj;
    }
    for (;;) {
        skip_ws(p);
        if (peek(p) != '"') {
            fail_at(p, p->pos, obj->n ? "expected a member name (a string) after ','" : "expected a member name (a string) or '}'");
            goto bad;
        }
        size_t key_pos = p->pos;
        char *key = parse_string_raw(p);
        if (!key) goto bad;
        if (has_key(&ks, obj, key)) {
            char msg[256];
            snprintf(msg, sizeof msg, "duplicate member name \"%.200s\"", key);
            fail_msg(p, key_pos, msg);
            free(key);
            goto bad;
        }
        skip_ws(p);
        if (peek(p) != ':') {
            fail_at(p, p->pos, "expected ':' after member name");
            free(key);
            goto bad;
        }
        p->pos++;
        lg_json *v = parse_value(p);
        if (!v) {
            free(key);
            goto bad;
        }
        v->key = key;
        push_item(obj, v);
        if (ks.cap) keyset_insert(&ks, obj, obj->n - 1);
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            if (peek(p) == '}') {
                fail_msg(p, p->pos, "trailing comma before '}' (expected another member)");
                goto bad;
            }
            continue;
        }
        if (peek(p) == '}') {
            p->pos++;
            break;
        }
        fail_at(p, p->pos, "expected ',' or '}' after object member");
        goto bad;
    }
    free(ks.h);
    free(ks.idx);
    return obj;
bad:
    free(ks.h);
    free(ks.idx);
    lg_json_free(obj);
    return NULL;
}

static lg_json *parse_array(parser *p) {
    p->pos++;  // '['
    lg_json *arr = lg_json_new(LG_JSON_ARRAY);
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        return arr;
    }
    for (;;) {
        lg_json *v = parse_value(p);
        if (!v) {
            lg_json_free(arr);
            return NULL;
        }
        push_item(arr, v);
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            if (peek(p) == ']') {
                fail_msg(p, p->pos, "trailing comma before ']' (expected another element)");
                lg_json_free(arr);
                return NULL;
            }
            continue;
        }
        if (peek(p) == ']') {
            p->pos++;
            return arr;
        }
        fail_at(p, p->pos, "expected ',' or ']' after array element");
        lg_json_free(arr);
        return NULL;
    }
}

static lg_json *parse_value(parser *p) {
    skip_ws(p);
    if (++p->depth > JSON_MAX_DEPTH) {
        fail_msg(p, p->pos, "nesting deeper than 512 levels");
        return NULL;
    }
    lg_json *v = NULL;
    int c = peek(p);
    if (c == '{') v = parse_object(p);
    else if (c == '[') v = parse_array(p);
    else if (c == '"') {
        char *s = parse_string_raw(p);
        if (s) {
            v = lg_json_new(LG_JSON_STRING);
            v->str = s;
        }
    } else if (c == '-' || is_digit(c) || (c == 'I' && p->len - p->pos >= 8 && !memcmp(p->s + p->pos, "Infinity", 8)))
        v = parse_number(p);
    else if (match_word(p, "true")) { v = lg_json_new(LG_JSON_BOOL); v->num = 1; }
    else if (match_word(p, "false")) { v = lg_json_new(LG_JSON_BOOL); v->num = 0; }
    else if (match_word(p, "null")) v = lg_json_new(LG_JSON_NULL);
    else if (match_word(p, "NaN")) {
        v = lg_json_new(LG_JSON_NUMBER);
        v->num = NAN;
        v->num_text = lg_strdup("NaN");
    } else fail_at(p, p->pos, "expected a value (object, array, string, number, true, false or null)");
    p->depth--;
    return v;
}

lg_json *lg_json_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser p = {.s = text, .len = len, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = 0;
    lg_json *j = parse_value(&p);
    if (!j) return NULL;
    skip_ws(&p);
    if (p.pos < p.len) {
        fail_at(&p, p.pos, "expected end of input after the top-level value");
        lg_json_free(j);
        return NULL;
    }
    return j;
}

lg_json *lg_json_parse_file(const char *path) {
    size_t len;
    char *text = lg_read_file(path, &len);
    char err[512];
    lg_json *j = lg_json_parse(text, len, err, sizeof err);
    free(text);
    if (!j) lg_die("%s: invalid JSON: %s", path, err);
    return j;
}

// ---------------------------------------------------------------------------------------------------------
// getters

lg_json *lg_json_get(const lg_json *obj, const char *key) {
    if (!obj || obj->type != LG_JSON_OBJECT) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->items[i]->key, key) == 0) return obj->items[i];
    return NULL;
}

static const char *type_name(lg_json_type t) {
    switch (t) {
    case LG_JSON_NULL: return "null";
    case LG_JSON_BOOL: return "a boolean";
    case LG_JSON_NUMBER: return "a number";
    case LG_JSON_STRING: return "a string";
    case LG_JSON_ARRAY: return "an array";
    case LG_JSON_OBJECT: return "an object";
    }
    return "?";
}

// Describe a value for an error message: its type and, for scalars, its text.
static void describe_value(const lg_json *v, char *buf, size_t n) {
    if (v->type == LG_JSON_NUMBER) snprintf(buf, n, "%s", v->num_text ? v->num_text : "a number");
    else if (v->type == LG_JSON_STRING) snprintf(buf, n, "\"%.60s\"", v->str);
    else if (v->type == LG_JSON_BOOL) snprintf(buf, n, "%s", v->num ? "true" : "false");
    else snprintf(buf, n, "%s", type_name(v->type));
}

static LG_NORETURN void wrong_type(const lg_json *v, const char *key, const char *expected, const char *what) {
    char got[96];
    describe_value(v, got, sizeof got);
    lg_die("%s: \"%s\": expected %s, got %s", what, key, expected, got);
}

static int64_t as_int(const lg_json *v, const char *key, const char *what) {
    if (v->type != LG_JSON_NUMBER || !isfinite(v->num)) wrong_type(v, key, "an integer", what);
    // plain integer text: exact even beyond 2^53
    if (v->num_text && !strpbrk(v->num_text, ".eE")) {
        errno = 0;
        long long x = strtoll(v->num_text, NULL, 10);
        if (errno == ERANGE) wrong_type(v, key, "an integer within 64 bits", what);
        return (int64_t)x;
    }
    if (v->num != floor(v->num) || fabs(v->num) > 9.2e18) wrong_type(v, key, "an integer", what);
    return (int64_t)v->num;
}

int64_t lg_json_int(const lg_json *obj, const char *key, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v) lg_die("%s: \"%s\" is missing (expected an integer)", what, key);
    return as_int(v, key, what);
}

int64_t lg_json_int_or(const lg_json *obj, const char *key, int64_t dflt, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v || v->type == LG_JSON_NULL) return dflt;
    return as_int(v, key, what);
}

double lg_json_num(const lg_json *obj, const char *key, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v) lg_die("%s: \"%s\" is missing (expected a number)", what, key);
    if (v->type != LG_JSON_NUMBER) wrong_type(v, key, "a number", what);
    return v->num;
}

double lg_json_num_or(const lg_json *obj, const char *key, double dflt, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v || v->type == LG_JSON_NULL) return dflt;
    if (v->type != LG_JSON_NUMBER) wrong_type(v, key, "a number", what);
    return v->num;
}

const char *lg_json_str(const lg_json *obj, const char *key, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v) lg_die("%s: \"%s\" is missing (expected a string)", what, key);
    if (v->type != LG_JSON_STRING) wrong_type(v, key, "a string", what);
    return v->str;
}

const char *lg_json_str_or(const lg_json *obj, const char *key, const char *dflt, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v || v->type == LG_JSON_NULL) return dflt;
    if (v->type != LG_JSON_STRING) wrong_type(v, key, "a string", what);
    return v->str;
}

int lg_json_bool_or(const lg_json *obj, const char *key, int dflt, const char *what) {
    const lg_json *v = lg_json_get(obj, key);
    if (!v || v->type == LG_JSON_NULL) return dflt;
    if (v->type != LG_JSON_BOOL) wrong_type(v, key, "true or false", what);
    return v->num != 0;
}

// ---------------------------------------------------------------------------------------------------------
// builders

lg_json *lg_json_new_num(double v) {
    lg_json *j = lg_json_new(LG_JSON_NUMBER);
    j->num = v;  // num_text stays NULL: dump writes the shortest text that reads back as v
    return j;
}

lg_json *lg_json_new_int(int64_t v) {
    lg_json *j = lg_json_new(LG_JSON_NUMBER);
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    j->num = (double)v;
    j->num_text = lg_strdup(buf);
    return j;
}

lg_json *lg_json_new_str(const char *s) {
    lg_json *j = lg_json_new(LG_JSON_STRING);
    j->str = lg_strdup(s);
    return j;
}

lg_json *lg_json_new_bool(int b) {
    lg_json *j = lg_json_new(LG_JSON_BOOL);
    j->num = b ? 1 : 0;
    return j;
}

void lg_json_set(lg_json *obj, const char *key, lg_json *val) {
    if (!obj || obj->type != LG_JSON_OBJECT) lg_die("lg_json_set(\"%s\"): target is not an object", key);
    free(val->key);
    val->key = lg_strdup(key);
    for (int i = 0; i < obj->n; i++) {
        if (strcmp(obj->items[i]->key, key) == 0) {
            lg_json_free(obj->items[i]);
            obj->items[i] = val;
            return;
        }
    }
    push_item(obj, val);
}

void lg_json_remove(lg_json *obj, const char *key) {
    if (!obj || obj->type != LG_JSON_OBJECT) return;
    for (int i = 0; i < obj->n; i++) {
        if (strcmp(obj->items[i]->key, key) == 0) {
            lg_json_free(obj->items[i]);
            memmove(obj->items + i, obj->items + i + 1, sizeof(lg_json *) * (size_t)(obj->n - i - 1));
            obj->n--;
            return;
        }
    }
}

void lg_json_append(lg_json *arr, lg_json *val) {
    if (!arr || arr->type != LG_JSON_ARRAY) lg_die("lg_json_append: target is not an array");
    free(val->key);
    val->key = NULL;
    push_item(arr, val);
}

// ---------------------------------------------------------------------------------------------------------
// writer

typedef struct {
    char *b;
    size_t n, cap;
} sbuf;

static void sb_reserve(sbuf *s, size_t more) {
    if (s->n + more + 1 > s->cap) {
        while (s->n + more + 1 > s->cap) s->cap = s->cap ? s->cap * 2 : 256;
        s->b = lg_realloc(s->b, s->cap);
    }
}
static void sb_put(sbuf *s, const char *t, size_t n) {
    sb_reserve(s, n);
    memcpy(s->b + s->n, t, n);
    s->n += n;
    s->b[s->n] = 0;
}
static void sb_puts(sbuf *s, const char *t) { sb_put(s, t, strlen(t)); }
static void sb_putc(sbuf *s, char c) { sb_put(s, &c, 1); }

// Python repr() of a float: the shortest digits that read back exactly; fixed notation for exponents in
// [-4, 16) with at least one decimal ("10000.0"), else scientific ("1e-05", "1.5e+16").
static void format_double(double v, char *out, size_t n) {
    if (isnan(v)) { snprintf(out, n, "NaN"); return; }
    if (isinf(v)) { snprintf(out, n, v < 0 ? "-Infinity" : "Infinity"); return; }
    if (v == 0) { snprintf(out, n, signbit(v) ? "-0.0" : "0.0"); return; }
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, v);
        if (strtod(e, NULL) == v) break;
    }
    // e = "[-]d.ddde[+-]XX": split into sign, digits and exponent
    const char *q = e;
    int neg = 0;
    if (*q == '-') { neg = 1; q++; }
    char digits[24];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = 0;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char body[64];
    size_t b = 0;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            b += (size_t)snprintf(body + b, sizeof body - b, "0.");
            for (int i = 0; i < -exp10 - 1; i++) body[b++] = '0';
            for (int i = 0; i < nd; i++) body[b++] = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++) body[b++] = i < nd ? digits[i] : '0';
            body[b++] = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++) body[b++] = digits[i];
            else body[b++] = '0';
        }
        body[b] = 0;
    } else {
        body[b++] = digits[0];
        if (nd > 1) {
            body[b++] = '.';
            for (int i = 1; i < nd; i++) body[b++] = digits[i];
        }
        snprintf(body + b, sizeof body - b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    size_t need = strlen(body) + (size_t)neg + 1;
    if (need > n) lg_die("format_double: buffer too small");
    if (neg) *out++ = '-';
    memcpy(out, body, strlen(body) + 1);
}

static void dump_string(sbuf *s, const char *str) {
    sb_putc(s, '"');
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': sb_puts(s, "\\\""); break;
        case '\\': sb_puts(s, "\\\\"); break;
        case '\n': sb_puts(s, "\\n"); break;
        case '\r': sb_puts(s, "\\r"); break;
        case '\t': sb_puts(s, "\\t"); break;
        case '\b': sb_puts(s, "\\b"); break;
        case '\f': sb_puts(s, "\\f"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char u[8];
                snprintf(u, sizeof u, "\\u%04x", c);
                sb_puts(s, u);
            } else sb_putc(s, (char)c);  // UTF-8 passes through unchanged
        }
    }
    sb_putc(s, '"');
}

static void newline_indent(sbuf *s, int indent, int level) {
    sb_putc(s, '\n');
    for (int i = 0; i < indent * level; i++) sb_putc(s, ' ');
}

static void dump_value(sbuf *s, const lg_json *j, int indent, int level) {
    switch (j->type) {
    case LG_JSON_NULL: sb_puts(s, "null"); break;
    case LG_JSON_BOOL: sb_puts(s, j->num ? "true" : "false"); break;
    case LG_JSON_NUMBER:
        if (j->num_text) sb_puts(s, j->num_text);
        else {
            char t[64];
            format_double(j->num, t, sizeof t);
            sb_puts(s, t);
        }
        break;
    case LG_JSON_STRING: dump_string(s, j->str ? j->str : ""); break;
    case LG_JSON_ARRAY:
    case LG_JSON_OBJECT: {
        int obj = j->type == LG_JSON_OBJECT;
        sb_putc(s, obj ? '{' : '[');
        if (j->n == 0) {
            sb_putc(s, obj ? '}' : ']');
            break;
        }
        for (int i = 0; i < j->n; i++) {
            if (i) sb_puts(s, indent < 0 ? ", " : ",");
            if (indent >= 0) newline_indent(s, indent, level + 1);
            if (obj) {
                dump_string(s, j->items[i]->key);
                sb_puts(s, ": ");
            }
            dump_value(s, j->items[i], indent, level + 1);
        }
        if (indent >= 0) newline_indent(s, indent, level);
        sb_putc(s, obj ? '}' : ']');
        break;
    }
    }
}

char *lg_json_dump(const lg_json *j, int indent) {
    sbuf s = {0};
    sb_reserve(&s, 64);
    s.b[0] = 0;
    dump_value(&s, j, indent, 0);
    return s.b;
}
