// jsonl.h: the one thing lgdata needs from JSON Lines: the string value of a top-level field of each line's object.
#pragma once
#include <stddef.h>

// Find top-level key `field` in the JSON object in line[0..n) and decode its string value (escapes, \uXXXX
// with surrogate pairs; lone surrogates become U+FFFD) into *out (grown with realloc). Returns the decoded
// length, -1 when the object has no such key, or -2 (with *err set) when the line is not valid JSON of that shape.
long lg_jsonl_field(const char *line, size_t n, const char *field, char **out, size_t *cap, const char **err);
