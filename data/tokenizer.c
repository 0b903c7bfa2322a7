// tokenizer.c: see tokenizer.h. The protobuf reader handles only what tokenizer.model uses
// (ModelProto: 1 pieces, 2 trainer_spec, 3 normalizer_spec); unknown fields are skipped.
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../trainer/util.h"

typedef struct { int32_t start, len, prev, next, freeze; } sym;           // a symbol: bytes of the normalized text
typedef struct { float score; int32_t left, right, size; } pair;          // a candidate merge of two adjacent symbols

struct lg_tokenizer {
    char *path;
    int n;                  // vocab size
    char **piece;           // (n) NUL-terminated piece strings
    int *plen;              // (n)
    float *score;           // (n)
    uint8_t *type;          // (n) lg_piece_type
    int *normal_tab, *reserved_tab;  // open-addressing tables of ids (-1 empty); normal = NORMAL|USER_DEFINED|UNUSED
    uint32_t tab_mask;
    int byte_id[256];       // id of "<0xXX>" or unk
    int16_t *byte_val;      // (n) byte value of a BYTE piece, -1 otherwise
    int *user, n_user;      // user-defined piece ids (kept whole, never merged)
    int unk_id, bos_id, eos_id, byte_fallback, has_unused;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    char unk_surface[64];
    uint64_t hash;
    // scratch for encode (one thread per tokenizer)
    char *norm; size_t norm_cap;
    sym *syms; size_t syms_cap;
    pair *heap; size_t heap_n, heap_cap;
    int32_t *rev_left; uint32_t *rev_stamp; uint32_t stamp;  // (n) split point of unused pieces, per encode call
};

uint64_t lg_fnv1a64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t lg_tok_file_hash(const char *path) {
    size_t len;
    char *buf = lg_read_file(path, &len);
    uint64_t h = lg_fnv1a64(buf, len);
    free(buf);
    return h;
}

static inline uint32_t str_hash(const char *s, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int tab_find(const lg_tokenizer *t, const int *tab, const char *s, int n) {
    uint32_t i = str_hash(s, n) & t->tab_mask;
    for (;;) {
        int id = tab[i];
        if (id < 0) return -1;
        if (t->plen[id] == n && memcmp(t->piece[id], s, (size_t)n) == 0) return id;
        i = (i + 1) & t->tab_mask;
    }
}

static int tab_insert(lg_tokenizer *t, int *tab, int id) {
    uint32_t i = str_hash(t->piece[id], t->plen[id]) & t->tab_mask;
    while (tab[i] >= 0) {
        if (t->plen[tab[i]] == t->plen[id] && memcmp(t->piece[tab[i]], t->piece[id], (size_t)t->plen[id]) == 0) return 0;
        i = (i + 1) & t->tab_mask;
    }
    tab[i] = id;
    return 1;
}

// sentencepiece's PieceToId: reserved (control, unknown, byte) first, then normal pieces, else unk.
static int piece_to_id(const lg_tokenizer *t, const char *s, int n) {
    int id = tab_find(t, t->reserved_tab, s, n);
    if (id >= 0) return id;
    id = tab_find(t, t->normal_tab, s, n);
    return id >= 0 ? id : t->unk_id;
}

// ---- protobuf wire format ----
typedef struct { const uint8_t *p, *end; const char *path; } pb;

static uint64_t pb_varint(pb *r) {
    uint64_t v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (r->p >= r->end) lg_die("%s: truncated protobuf (varint past the end): not a sentencepiece model?", r->path);
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) return v;
    }
    lg_die("%s: malformed protobuf varint: not a sentencepiece model?", r->path);
}

// Skip a field of the given wire type; for length-delimited fields returns the sub-buffer.
static pb pb_field(pb *r, int wt) {
    pb sub = {r->p, r->p, r->path};
    size_t n = 0;
    switch (wt) {
    case 0: pb_varint(r); return sub;
    case 1: n = 8; break;
    case 2: n = (size_t)pb_varint(r); sub.p = r->p; break;
    case 5: n = 4; break;
    default: lg_die("%s: unsupported protobuf wire type %d: not a sentencepiece model?", r->path, wt);
    }
    if ((size_t)(r->end - r->p) < n) lg_die("%s: truncated protobuf field: the file is cut short", r->path);
    sub.end = r->p + n;
    r->p += n;
    return sub;
}

typedef struct { char *s; int len; float score; int type; } raw_piece;

static void parse_piece(pb r, raw_piece *out) {
    out->s = NULL; out->len = 0; out->score = 0; out->type = LG_PIECE_NORMAL;
    while (r.p < r.end) {
        uint64_t key = pb_varint(&r);
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 5) {
            memcpy(&out->score, r.p, 4);  // little-endian float, as protobuf stores it
            pb_field(&r, wt);
        } else if (f == 3 && wt == 0) {
            out->type = (int)pb_varint(&r);
        } else {
            pb sub = pb_field(&r, wt);
            if (f == 1 && wt == 2) {
                free(out->s);
                out->len = (int)(sub.end - sub.p);
                out->s = lg_malloc((size_t)out->len + 1);
                memcpy(out->s, sub.p, (size_t)out->len);
                out->s[out->len] = 0;
            }
        }
    }
}

lg_tokenizer *lg_tok_load(const char *path) {
    size_t flen;
    char *file = lg_read_file(path, &flen);
    lg_tokenizer *t = lg_calloc(1, sizeof *t);
    t->path = lg_strdup(path);
    t->hash = lg_fnv1a64(file, flen);
    pb r = {(const uint8_t *)file, (const uint8_t *)file + flen, path};
    raw_piece *rp = NULL;
    int n = 0, cap = 0;
    int model_type = 1, suffix = 0;  // proto2 defaults: UNIGRAM, false
    t->unk_id = 0; t->bos_id = 1; t->eos_id = 2;
    t->add_dummy_prefix = 1; t->remove_extra_ws = 1; t->escape_ws = 1;
    snprintf(t->unk_surface, sizeof t->unk_surface, " \xE2\x81\x87 ");
    size_t charsmap = 0;
    char norm_name[64] = "";
    while (r.p < r.end) {
        uint64_t key = pb_varint(&r);
        int f = (int)(key >> 3), wt = (int)(key & 7);
        pb sub = pb_field(&r, wt);
        if (f == 1 && wt == 2) {
            if (n == cap) { cap = cap ? 2 * cap : 1024; rp = lg_realloc(rp, (size_t)cap * sizeof *rp); }
            parse_piece(sub, &rp[n++]);
        } else if (f == 2 && wt == 2) {  // TrainerSpec
            while (sub.p < sub.end) {
                uint64_t k = pb_varint(&sub);
                int g = (int)(k >> 3), w = (int)(k & 7);
                if (w == 0) {
                    int64_t v = (int64_t)pb_varint(&sub);
                    if (g == 3) model_type = (int)v;
                    else if (g == 24) suffix = (int)v;
                    else if (g == 35) t->byte_fallback = (int)v;
                    else if (g == 40) t->unk_id = (int32_t)v;
                    else if (g == 41) t->bos_id = (int32_t)v;
                    else if (g == 42) t->eos_id = (int32_t)v;
                } else {
                    pb s2 = pb_field(&sub, w);
                    if (g == 44 && w == 2) snprintf(t->unk_surface, sizeof t->unk_surface, "%.*s", (int)(s2.end - s2.p), s2.p);
                }
            }
        } else if (f == 3 && wt == 2) {  // NormalizerSpec
            while (sub.p < sub.end) {
                uint64_t k = pb_varint(&sub);
                int g = (int)(k >> 3), w = (int)(k & 7);
                if (w == 0) {
                    int v = (int)pb_varint(&sub);
                    if (g == 3) t->add_dummy_prefix = v;
                    else if (g == 4) t->remove_extra_ws = v;
                    else if (g == 5) t->escape_ws = v;
                } else {
                    pb s2 = pb_field(&sub, w);
                    if (g == 1 && w == 2) snprintf(norm_name, sizeof norm_name, "%.*s", (int)(s2.end - s2.p), s2.p);
                    if (g == 2 && w == 2) charsmap = (size_t)(s2.end - s2.p);
                }
            }
        }
    }
    free(file);
    if (n == 0) lg_die("%s: no pieces: not a sentencepiece tokenizer.model", path);
    if (model_type != 2)
        lg_die("%s: trainer_spec.model_type is %d (%s), expected 2 (BPE, as Llama-2 uses)", path, model_type,
               model_type == 1 ? "UNIGRAM" : model_type == 3 ? "WORD" : model_type == 4 ? "CHAR" : "unknown");
    if (charsmap)
        lg_die("%s: normalizer_spec '%s' has a %zu-byte precompiled_charsmap (NFKC-style normalization); only the "
               "identity normalizer of Llama-2 is supported (train with normalization_rule_name=identity)",
               path, norm_name, charsmap);
    if (suffix) lg_die("%s: trainer_spec.treat_whitespace_as_suffix is set; only prefix whitespace (Llama-2) is supported", path);

    t->n = n;
    t->piece = lg_malloc((size_t)n * sizeof *t->piece);
    t->plen = lg_malloc((size_t)n * sizeof *t->plen);
    t->score = lg_malloc((size_t)n * sizeof *t->score);
    t->type = lg_malloc((size_t)n);
    t->byte_val = lg_malloc((size_t)n * sizeof *t->byte_val);
    uint32_t tc = 16;
    while (tc < 2u * (uint32_t)n) tc <<= 1;
    t->tab_mask = tc - 1;
    t->normal_tab = lg_malloc(tc * sizeof(int));
    t->reserved_tab = lg_malloc(tc * sizeof(int));
    memset(t->normal_tab, 0xff, tc * sizeof(int));
    memset(t->reserved_tab, 0xff, tc * sizeof(int));
    t->user = lg_malloc((size_t)n * sizeof(int));
    int unk = -1;
    for (int i = 0; i < n; i++) {
        t->piece[i] = rp[i].s ? rp[i].s : lg_strdup("");
        t->plen[i] = rp[i].len;
        t->score[i] = rp[i].score;
        int ty = rp[i].type;
        if (ty < 1 || ty > 6) lg_die("%s: piece %d has type %d, expected 1..6", path, i, ty);
        t->type[i] = (uint8_t)ty;
        t->byte_val[i] = -1;
        if (t->plen[i] == 0) lg_die("%s: piece %d is empty", path, i);
        int normal = ty == LG_PIECE_NORMAL || ty == LG_PIECE_USER_DEFINED || ty == LG_PIECE_UNUSED;
        if (!tab_insert(t, normal ? t->normal_tab : t->reserved_tab, i))
            lg_die("%s: piece %d ('%s') is defined twice", path, i, t->piece[i]);
        if (ty == LG_PIECE_USER_DEFINED) t->user[t->n_user++] = i;
        if (ty == LG_PIECE_UNUSED) t->has_unused = 1;
        if (ty == LG_PIECE_UNKNOWN) unk = i;
        if (ty == LG_PIECE_BYTE) {
            unsigned v;
            if (t->plen[i] != 6 || sscanf(t->piece[i], "<0x%2X>", &v) != 1)
                lg_die("%s: byte piece %d is '%s', expected <0xXX>", path, i, t->piece[i]);
            t->byte_val[i] = (int16_t)v;
        }
    }
    free(rp);
    if (unk < 0) lg_die("%s: no piece of type UNKNOWN (<unk>)", path);
    t->unk_id = unk;
    if (t->bos_id >= n || t->eos_id >= n) lg_die("%s: bos_id %d / eos_id %d out of range (vocab %d)", path, t->bos_id, t->eos_id, n);
    if (t->bos_id < 0) t->bos_id = -1;
    if (t->eos_id < 0) t->eos_id = -1;
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_id[b] = piece_to_id(t, s, 6);
    }
    if (t->has_unused) {
        t->rev_left = lg_malloc((size_t)n * sizeof *t->rev_left);
        t->rev_stamp = lg_calloc((size_t)n, sizeof *t->rev_stamp);
    }
    return t;
}

void lg_tok_free(lg_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->piece[i]);
    free(t->piece); free(t->plen); free(t->score); free(t->type); free(t->byte_val);
    free(t->normal_tab); free(t->reserved_tab); free(t->user);
    free(t->norm); free(t->syms); free(t->heap); free(t->rev_left); free(t->rev_stamp);
    free(t->path);
    free(t);
}

int lg_tok_vocab_size(const lg_tokenizer *t) { return t->n; }
int lg_tok_bos_id(const lg_tokenizer *t) { return t->bos_id; }
int lg_tok_eos_id(const lg_tokenizer *t) { return t->eos_id; }
int lg_tok_unk_id(const lg_tokenizer *t) { return t->unk_id; }
uint64_t lg_tok_hash(const lg_tokenizer *t) { return t->hash; }
const char *lg_tok_piece(const lg_tokenizer *t, int id, int *len) { if (len) *len = t->plen[id]; return t->piece[id]; }
float lg_tok_score(const lg_tokenizer *t, int id) { return t->score[id]; }
lg_piece_type lg_tok_type(const lg_tokenizer *t, int id) { return (lg_piece_type)t->type[id]; }

// ---- normalization ----

// Length of a valid UTF-8 character at s (n bytes left), or 0 when invalid (sentencepiece's DecodeUTF8 rules).
static int utf8_valid_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        if (cp >= 0x80) return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
        uint32_t cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
                      (s[3] & 0x3F);
        if (cp >= 0x10000 && cp <= 0x10FFFF) return 4;
    }
    return 0;
}

static const char WS[] = "\xE2\x96\x81";  // U+2581 "▁"
static const char REPL[] = "\xEF\xBF\xBD";  // U+FFFD

// Identity normalizer: out needs 3 * n + 3 bytes. Returns the normalized length.
static size_t normalize(const lg_tokenizer *t, const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    if (t->remove_extra_ws) while (i < n && in[i] == ' ') i++;
    if (i == n) return 0;
    if (t->add_dummy_prefix) {
        if (t->escape_ws) { memcpy(out, WS, 3); o = 3; } else out[o++] = ' ';
    }
    int prev_space = t->remove_extra_ws;
    while (i < n) {
        int ml = utf8_valid_len((const uint8_t *)in + i, n - i);
        if (ml == 0) {  // malformed byte: U+FFFD, one byte consumed
            memcpy(out + o, REPL, 3);
            o += 3;
            prev_space = 0;
            i++;
        } else if (in[i] == ' ') {
            if (!prev_space) {
                if (t->escape_ws) { memcpy(out + o, WS, 3); o += 3; } else out[o++] = ' ';
                prev_space = 1;
            }
            i++;
        } else {
            memcpy(out + o, in + i, (size_t)ml);
            o += (size_t)ml;
            i += (size_t)ml;
            prev_space = 0;
        }
        if (!t->remove_extra_ws) prev_space = 0;
    }
    if (t->remove_extra_ws) {
        if (t->escape_ws) while (o >= 3 && memcmp(out + o - 3, WS, 3) == 0) o -= 3;
        else while (o > 0 && out[o - 1] == ' ') o--;
    }
    return o;
}

// ---- BPE ----

static inline int pair_above(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(lg_tokenizer *t, pair p) {
    if (t->heap_n == t->heap_cap) {
        t->heap_cap = t->heap_cap ? 2 * t->heap_cap : 1024;
        t->heap = lg_realloc(t->heap, t->heap_cap * sizeof *t->heap);
    }
    size_t i = t->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_above(&p, &t->heap[up])) break;
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = p;
}

static pair heap_pop(lg_tokenizer *t) {
    pair top = t->heap[0], last = t->heap[--t->heap_n];
    size_t i = 0, n = t->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_above(&t->heap[c + 1], &t->heap[c])) c++;
        if (!pair_above(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

static void maybe_add_pair(lg_tokenizer *t, int l, int r) {
    if (l < 0 || r < 0) return;
    sym *L = &t->syms[l], *R = &t->syms[r];
    if (L->freeze || R->freeze) return;
    int size = L->len + R->len;
    int id = tab_find(t, t->normal_tab, t->norm + L->start, size);
    if (id < 0) return;
    pair p = {t->score[id], l, r, size};
    heap_push(t, p);
    if (t->type[id] == LG_PIECE_UNUSED) {  // remember how to split it again (last writer wins, as in sentencepiece)
        t->rev_left[id] = L->len;
        t->rev_stamp[id] = t->stamp;
    }
}

typedef struct { int32_t *v; size_t n, cap, first; } idvec;  // first: index of this text's first id

static void push_id(idvec *o, int32_t id) {
    if (o->n == o->cap) { o->cap = o->cap ? 2 * o->cap : 256; o->v = lg_realloc(o->v, o->cap * sizeof *o->v); }
    o->v[o->n++] = id;
}

static void emit(lg_tokenizer *t, int start, int len, idvec *o) {
    const char *s = t->norm + start;
    int id = piece_to_id(t, s, len);
    if (t->type[id] == LG_PIECE_UNUSED && t->rev_stamp[id] == t->stamp) {
        int ll = t->rev_left[id];
        emit(t, start, ll, o);
        emit(t, start + ll, len - ll, o);
        return;
    }
    if (t->type[id] == LG_PIECE_UNKNOWN && t->byte_fallback) {
        for (int i = 0; i < len; i++) push_id(o, t->byte_id[(uint8_t)s[i]]);
        return;
    }
    // Without byte fallback a run of unknown pieces becomes one <unk> (as sentencepiece merges them).
    if (t->type[id] == LG_PIECE_UNKNOWN && o->n > o->first && o->v[o->n - 1] == id) return;
    push_id(o, id);
}

static int user_match(const lg_tokenizer *t, const char *s, size_t n) {
    int best = 0;
    for (int k = 0; k < t->n_user; k++) {
        int id = t->user[k], l = t->plen[id];
        if ((size_t)l <= n && l > best && memcmp(s, t->piece[id], (size_t)l) == 0) best = l;
    }
    return best;
}

size_t lg_tok_encode(lg_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos, int32_t **ids,
                     size_t *cap) {
    idvec o = {*ids, 0, *cap, 0};
    if (add_bos && t->bos_id >= 0) push_id(&o, t->bos_id);
    o.first = o.n;
    size_t need = 3 * len + 4;
    if (need > t->norm_cap) { t->norm_cap = need; t->norm = lg_realloc(t->norm, need); }
    size_t nn = normalize(t, text, len, t->norm);
    if (nn > 0x7fffffff) lg_die("text of %zu bytes is too long to tokenize at once (2 GiB limit)", len);
    if (nn > t->syms_cap) { t->syms_cap = nn; t->syms = lg_realloc(t->syms, nn * sizeof *t->syms); }
    // Split into characters (user-defined pieces whole).
    int ns = 0;
    for (size_t i = 0; i < nn;) {
        int l = t->n_user ? user_match(t, t->norm + i, nn - i) : 0;
        int fr = l > 0;
        if (!l) {
            static const uint8_t one[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
            l = one[(uint8_t)t->norm[i] >> 4];
            if ((size_t)l > nn - i) l = (int)(nn - i);
        }
        sym s = {(int32_t)i, l, ns - 1, ns + 1, fr};
        t->syms[ns++] = s;
        i += (size_t)l;
    }
    if (ns) t->syms[ns - 1].next = -1;
    t->stamp++;
    t->heap_n = 0;
    for (int i = 1; i < ns; i++) maybe_add_pair(t, i - 1, i);
    while (t->heap_n) {
        pair p = heap_pop(t);
        sym *L = &t->syms[p.left], *R = &t->syms[p.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != p.size) continue;  // stale
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) t->syms[R->next].prev = p.left;
        R->len = 0;
        maybe_add_pair(t, L->prev, p.left);
        maybe_add_pair(t, p.left, L->next);
    }
    for (int i = ns ? 0 : -1; i >= 0; i = t->syms[i].next) emit(t, t->syms[i].start, t->syms[i].len, &o);
    if (add_eos && t->eos_id >= 0) push_id(&o, t->eos_id);
    *ids = o.v;
    *cap = o.cap;
    return o.n;
}

// ---- decode ----

typedef struct { char *s; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = lg_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

char *lg_tok_decode(const lg_tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    sbuf b = {lg_malloc(64), 0, 64};
    b.s[0] = 0;
    uint8_t *bytes = lg_malloc(n + 1);
    int first = 1;  // the dummy-prefix "▁" is dropped from the first piece after any control pieces
    for (size_t i = 0; i < n;) {
        int id = ids[i];
        if (id < 0 || id >= t->n) lg_die("decode: token id %d out of range (vocab %d)", id, t->n);
        if (t->type[id] == LG_PIECE_BYTE) {  // a run of byte pieces: valid UTF-8 kept, each bad byte -> U+FFFD
            size_t nb = 0;
            while (i < n && ids[i] >= 0 && ids[i] < t->n && t->type[ids[i]] == LG_PIECE_BYTE) bytes[nb++] = (uint8_t)t->byte_val[ids[i++]];
            for (size_t k = 0; k < nb;) {
                int ml = utf8_valid_len(bytes + k, nb - k);
                if (ml == 0) { sb_put(&b, REPL, 3); k++; }
                else { sb_put(&b, (const char *)bytes + k, (size_t)ml); k += (size_t)ml; }
            }
            first = 0;
            continue;
        }
        i++;
        if (t->type[id] == LG_PIECE_CONTROL) continue;
        if (t->type[id] == LG_PIECE_UNKNOWN) { sb_put(&b, t->unk_surface, strlen(t->unk_surface)); first = 0; continue; }
        const char *p = t->piece[id];
        int pl = t->plen[id];
        int strip = first;
        first = 0;
        if (strip && (t->add_dummy_prefix || t->remove_extra_ws) && pl >= 3 && memcmp(p, WS, 3) == 0) { p += 3; pl -= 3; }
        for (int k = 0; k < pl;) {
            if (k + 3 <= pl && memcmp(p + k, WS, 3) == 0) { sb_put(&b, " ", 1); k += 3; }
            else { sb_put(&b, p + k, 1); k++; }
        }
    }
    free(bytes);
    if (len) *len = b.n;
    return b.s;
}
