// json.h: a small JSON reader/writer for config.json, safetensors headers, index files and run state.
// A parsed document is a tree of lg_json nodes; objects keep key order (export keeps every source field in order).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { LG_JSON_NULL, LG_JSON_BOOL, LG_JSON_NUMBER, LG_JSON_STRING, LG_JSON_ARRAY, LG_JSON_OBJECT } lg_json_type;

typedef struct lg_json {
    lg_json_type type;
    char *key;               // member name when inside an object, else NULL
    double num;              // NUMBER (and BOOL as 0/1)
    char *num_text;          // NUMBER: the source text, so integers > 2^53 and exact floats round-trip
    char *str;               // STRING (UTF-8, unescaped)
    struct lg_json **items;  // ARRAY elements / OBJECT members, in source order
    int n, cap;
} lg_json;

// Parse text; on error returns NULL and writes "line L col C: what was expected" into err.
lg_json *lg_json_parse(const char *text, size_t len, char *err, size_t errlen);
// Parse a file; dies with "path: line L col C: ..." on error.
lg_json *lg_json_parse_file(const char *path);
void lg_json_free(lg_json *j);

lg_json *lg_json_get(const lg_json *obj, const char *key);   // NULL if absent or obj not an object
// Typed getters that die naming `what` (e.g. "model/config.json") and the key when the type is wrong.
// The *_or variants return dflt when the key is absent or null.
int64_t lg_json_int(const lg_json *obj, const char *key, const char *what);
int64_t lg_json_int_or(const lg_json *obj, const char *key, int64_t dflt, const char *what);
double lg_json_num(const lg_json *obj, const char *key, const char *what);
double lg_json_num_or(const lg_json *obj, const char *key, double dflt, const char *what);
const char *lg_json_str(const lg_json *obj, const char *key, const char *what);
const char *lg_json_str_or(const lg_json *obj, const char *key, const char *dflt, const char *what);
int lg_json_bool_or(const lg_json *obj, const char *key, int dflt, const char *what);

// Builders (for export and state files). Setting an existing key replaces its value in place (order kept).
lg_json *lg_json_new(lg_json_type type);
lg_json *lg_json_new_num(double v);
lg_json *lg_json_new_int(int64_t v);
lg_json *lg_json_new_str(const char *s);
lg_json *lg_json_new_bool(int b);
void lg_json_set(lg_json *obj, const char *key, lg_json *val);  // takes ownership of val
void lg_json_remove(lg_json *obj, const char *key);
void lg_json_append(lg_json *arr, lg_json *val);                // takes ownership
// Serialize; indent < 0: compact one line, else pretty with that many spaces. Caller frees the string.
char *lg_json_dump(const lg_json *j, int indent);
