// jsonl.c: see jsonl.h. A small recursive-descent skipper; only the wanted string is decoded.
#include "jsonl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"

typedef struct { const char *p, *end; const char *err; } js;

static void ws(js *j) { while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++; }

static int hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v * 16 + (uint32_t)d;
    }
    return 1;
}

static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) { o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F)); o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Parse a string at j->p ('"' expected). Decodes into out when out != NULL (capacity >= raw length is enough:
// escapes never grow). Returns decoded length or -1 on error.
static long str(js *j, char *out) {
    if (j->p >= j->end || *j->p != '"') { j->err = "expected a string"; return -1; }
    j->p++;
    size_t o = 0;
    while (j->p < j->end) {
        char c = *j->p++;
        if (c == '"') return (long)o;
        if ((unsigned char)c < 0x20) { j->err = "control character inside a string"; return -1; }
        if (c != '\\') { if (out) out[o] = c; o++; continue; }
        if (j->p >= j->end) break;
        char e = *j->p++;
        char lit = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f'
                 : e == '"' ? '"' : e == '\\' ? '\\' : e == '/' ? '/' : 0;
        if (lit) { if (out) out[o] = lit; o++; continue; }
        if (e != 'u') { j->err = "bad escape in string"; return -1; }
        uint32_t u;
        if (j->end - j->p < 4 || !hex4(j->p, &u)) { j->err = "bad \\u escape"; return -1; }
        j->p += 4;
        if (u >= 0xD800 && u < 0xDC00) {  // high surrogate: needs a low one
            uint32_t lo;
            if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                j->p += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else u = 0xFFFD;
        } else if (u >= 0xDC00 && u < 0xE000) u = 0xFFFD;
        char tmp[4];
        size_t k = put_utf8(tmp, u);
        if (out) memcpy(out + o, tmp, k);
        o += k;
    }
    j->err = "unterminated string";
    return -1;
}

static int skip_value(js *j, int depth) {
    ws(j);
    if (j->p >= j->end) { j->err = "missing value"; return 0; }
    if (depth > 200) { j->err = "nesting too deep"; return 0; }
    char c = *j->p;
    if (c == '"') return str(j, NULL) >= 0;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) { j->p++; return 1; }
        for (;;) {
            if (c == '{') {
                ws(j);
                if (str(j, NULL) < 0) return 0;
                ws(j);
                if (j->p >= j->end || *j->p != ':') { j->err = "expected ':'"; return 0; }
                j->p++;
            }
            if (!skip_value(j, depth + 1)) return 0;
            ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            if (j->p < j->end && *j->p == close) { j->p++; return 1; }
            j->err = "expected ',' or a closing bracket";
            return 0;
        }
    }
    const char *s = j->p;  // number or literal
    while (j->p < j->end && strchr("+-0123456789.eEtruefalsn", *j->p)) j->p++;
    if (j->p == s) { j->err = "unexpected character"; return 0; }
    return 1;
}

long lg_jsonl_field(const char *line, size_t n, const char *field, char **out, size_t *cap, const char **err) {
    js j = {line, line + n, NULL};
    size_t flen = strlen(field);
    ws(&j);
    if (j.p >= j.end || *j.p != '{') { *err = "line is not a JSON object"; return -2; }
    j.p++;
    ws(&j);
    if (j.p < j.end && *j.p == '}') return -1;
    for (;;) {
        ws(&j);
        char kbuf[256];
        js t = j;  // measure the key first: only a key of the wanted length is decoded
        long kl = str(&t, NULL);
        if (kl < 0) { *err = t.err; return -2; }
        int match = 0;
        if ((size_t)kl == flen && flen < sizeof kbuf) {
            str(&j, kbuf);
            match = memcmp(kbuf, field, flen) == 0;
        } else {
            j = t;
        }
        ws(&j);
        if (j.p >= j.end || *j.p != ':') { *err = "expected ':' after a key"; return -2; }
        j.p++;
        ws(&j);
        if (match) {
            if (j.p >= j.end || *j.p != '"') { *err = "the field's value is not a string"; return -2; }
            size_t need = (size_t)(j.end - j.p) + 1;
            if (need > *cap) { *cap = need; *out = lg_realloc(*out, need); }
            long r = str(&j, *out);
            if (r < 0) { *err = j.err; return -2; }
            (*out)[r] = 0;
            return r;
        }
        if (!skip_value(&j, 0)) { *err = j.err; return -2; }
        ws(&j);
        if (j.p < j.end && *j.p == ',') { j.p++; continue; }
        if (j.p < j.end && *j.p == '}') return -1;
        *err = "expected ',' or '}'";
        return -2;
    }
}
