/* gguf.c — strict GGUF v2/v3 reader and streaming writer (docs/specs/gguf.md).
 *
 * The reader walks the header twice with the same code. The first pass
 * validates every field against the bytes that remain and counts what the
 * handle needs (keys, tensors, string elements, name bytes); only then is one
 * block allocated, whose size is bounded by the file size because every
 * counted item consumed bytes of the file. The second pass fills the block
 * and checks tensor placement, which needs the data-section offset known
 * from the end of the first pass. Sorting afterwards finds duplicate keys and
 * names, and overlapping tensors.
 *
 * Decisions beyond the spec:
 * - ne[i] must be >= 1: empty tensors (ggml allows ne = 0) never occur in a
 *   model and are rejected like negative sizes.
 * - BOOL values (scalars and array elements) must be 0 or 1.
 * - Tensor names and keys must not be empty or contain NUL bytes.
 * - Tensors may sit at any aligned, in-bounds, non-overlapping offset (the
 *   tolerant reading of the spec); ggml's packed order is not required.
 * - With no tensors the data offset may lie past the end of the file (a
 *   vocab-only file need not pad its end); it is then never dereferenced.
 * All multi-byte fields are decoded as little-endian byte by byte, so the
 * reader does not depend on the host's byte order or alignment.
 */
#include "bitnet/gguf.h"

#include "bitnet/atomic_file.h"
#include "bitnet/quant.h"
#include "bits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME, including the NUL */
/* Smallest encodings, used to bound counts by the bytes left: a kv is a key
 * length, a 1-byte key, a type and a 1-byte value; a tensor info is a name
 * length, a 1-byte name, n_dims, one ne, the type and the offset. */
#define KV_MIN_BYTES (8 + 1 + 4 + 1)
#define TENSOR_MIN_BYTES (8 + 1 + 4 + 8 + 4 + 8)

/* Bytes per element of each value type; 0 for STRING and ARRAY. */
static const uint8_t vtype_size[BN_GGUF_VTYPE_COUNT] = {
    [BN_GGUF_UINT8] = 1,  [BN_GGUF_INT8] = 1,    [BN_GGUF_UINT16] = 2, [BN_GGUF_INT16] = 2,
    [BN_GGUF_UINT32] = 4, [BN_GGUF_INT32] = 4,   [BN_GGUF_FLOAT32] = 4, [BN_GGUF_BOOL] = 1,
    [BN_GGUF_UINT64] = 8, [BN_GGUF_INT64] = 8,   [BN_GGUF_FLOAT64] = 8,
};

static const char *const vtype_names[BN_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};

size_t bn_gguf_vtype_size(bn_gguf_vtype t) { return (unsigned)t < BN_GGUF_VTYPE_COUNT ? vtype_size[t] : 0; }

const char *bn_gguf_vtype_name(bn_gguf_vtype t) {
    return (unsigned)t < BN_GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }


/* ------------------------------------------------------------------------
 * The handle
 */

typedef struct gguf_kv {
    const char *key;         /* NUL-terminated copy in the arena */
    uint64_t offset;         /* file offset of the key's length field */
    bn_gguf_vtype type;      /* value type; ARRAY for arrays */
    bn_gguf_vtype elem_type; /* element type; = type for scalars */
    uint64_t count;          /* elements; 1 for scalars */
    const uint8_t *data;     /* first element (numeric/bool), in the mapping */
    const uint64_t *str_off; /* [count] file offsets of each string's length field (STRING elems) */
} gguf_kv;

struct bn_gguf {
    const uint8_t *base;     /* [size] file bytes: the mapping or the caller's buffer */
    uint64_t size;
    void *map;               /* mapping to munmap at close; NULL for memory buffers */
    bool in_memory;          /* map is the file read into anonymous memory (BN_GGUF_LOAD_MEMORY) */
    const char *name;        /* file name for messages (arena) */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;    /* first aligned byte after the tensor infos */
    int64_t n_kv;
    gguf_kv *kv;             /* [n_kv] file order */
    const gguf_kv **kv_by_key; /* [n_kv] sorted by key, for look-ups */
    int64_t n_tensors;
    bn_gguf_tensor *tensors; /* [n_tensors] file order */
    const bn_gguf_tensor **t_by_name; /* [n_tensors] sorted by name */
    uint64_t *str_off;       /* [n_strings] every string element's length-field offset */
    char *arena;             /* keys, tensor names and the file name, NUL-terminated */
};

/* ------------------------------------------------------------------------
 * Parser: a cursor over the bytes plus the context named in messages.
 */

typedef struct parser {
    const uint8_t *base; /* [size] */
    uint64_t size;
    uint64_t pos;        /* next byte to read */
    const char *file;
    bn_error *err;
    char ctx[112];       /* the field/key/tensor being read, for messages */
    /* Totals of the counting pass = sizes of the filling pass's arrays. */
    uint64_t n_strings;
    uint64_t arena_bytes;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* known only in the filling pass */
    bn_gguf *g;           /* NULL while counting */
    uint64_t str_next;    /* next free slot of g->str_off */
    uint64_t arena_next;  /* next free byte of g->arena */
} parser;

/* Replaces control bytes that a hostile name carried into a message, so that
 * printing the message cannot drive a terminal. */
static void scrub(bn_error *err) {
    if (!err) return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* Formats "FILE: <what> at byte offset N (ctx)" into err; returns code. */
BN_PRINTF(4, 5)
static bn_status fail(parser *ps, uint64_t at, bn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(ps->err, code, fmt, ap);
    va_end(ap);
    bn_error_prefix(ps->err, ps->file);
    bn_error_appendf(ps->err, " at byte offset %llu (%s)", (unsigned long long)at, ps->ctx);
    scrub(ps->err);
    return code;
}

/* Sets the message context; names from the file are clipped so that one
 * hostile 2 GB key cannot crowd the rest of the message out. */
BN_PRINTF(2, 3)
static void set_ctx(parser *ps, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->ctx, sizeof ps->ctx, fmt, ap);
    va_end(ap);
}

static uint64_t left(const parser *ps) { return ps->size - ps->pos; }

/* Returns the next n bytes, or fails naming `field`. */
static bn_status take(parser *ps, uint64_t n, const char *field, const uint8_t **out) {
    if (left(ps) < n)
        return fail(ps, ps->pos, BN_ERR_FORMAT,
                    "unexpected end of file reading %s (needs %llu bytes, %llu left)", field,
                    (unsigned long long)n, (unsigned long long)left(ps));
    *out = ps->base + ps->pos;
    ps->pos += n;
    return BN_OK;
}

static bn_status rd_u32(parser *ps, const char *field, uint32_t *v) {
    const uint8_t *p = NULL;
    bn_status st = take(ps, 4, field, &p);
    if (st == BN_OK) *v = le32(p);
    return st;
}

static bn_status rd_u64(parser *ps, const char *field, uint64_t *v) {
    const uint8_t *p = NULL;
    bn_status st = take(ps, 8, field, &p);
    if (st == BN_OK) *v = le64(p);
    return st;
}

/* A length-prefixed string; the length is checked before the bytes exist. */
static bn_status rd_str(parser *ps, const char *field, bn_gguf_str *s) {
    uint64_t at = ps->pos, len;
    bn_status st = rd_u64(ps, field, &len);
    if (st != BN_OK) return st;
    if (len > left(ps))
        return fail(ps, at, BN_ERR_FORMAT,
                    "%s length %llu exceeds the %llu bytes left before the end of file", field,
                    (unsigned long long)len, (unsigned long long)left(ps));
    s->ptr = (const char *)ps->base + ps->pos;
    s->len = len;
    ps->pos += len;
    return BN_OK;
}

/* Checks a key or tensor name read at `at`; `limit` = 0 for no length limit. */
static bn_status check_name(parser *ps, uint64_t at, const char *what, bn_gguf_str s,
                            uint64_t limit) {
    if (s.len == 0) return fail(ps, at, BN_ERR_FORMAT, "empty %s", what);
    if (limit && s.len >= limit)
        return fail(ps, at, BN_ERR_FORMAT, "%s of %llu bytes (at most %llu allowed)", what,
                    (unsigned long long)s.len, (unsigned long long)(limit - 1));
    if (memchr(s.ptr, '\0', s.len))
        return fail(ps, at, BN_ERR_FORMAT, "%s contains a NUL byte", what);
    return BN_OK;
}

/* Copies a validated name into the arena (filling pass) or counts it. */
static const char *arena_copy(parser *ps, bn_gguf_str s) {
    if (!ps->g) {
        ps->arena_bytes += s.len + 1;
        return NULL;
    }
    char *dst = ps->g->arena + ps->arena_next;
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    ps->arena_next += s.len + 1;
    return dst;
}

/* `count` elements of `type` (not ARRAY) at the cursor: bounds, BOOL values,
 * and string offsets recorded in the filling pass. */
static bn_status parse_elems(parser *ps, bn_gguf_vtype type, uint64_t count, gguf_kv *kv) {
    uint64_t at = ps->pos;
    if (type == BN_GGUF_STRING) {
        if (count > left(ps) / 8)
            return fail(ps, at, BN_ERR_FORMAT,
                        "%llu strings (at least 8 bytes each) do not fit in the %llu bytes left "
                        "before the end of file",
                        (unsigned long long)count, (unsigned long long)left(ps));
        if (kv) kv->str_off = ps->g->str_off + ps->str_next;
        for (uint64_t j = 0; j < count; j++) {
            bn_gguf_str s;
            uint64_t sat = ps->pos;
            bn_status st = rd_str(ps, "string", &s);
            if (st != BN_OK) return st;
            if (ps->g) ps->g->str_off[ps->str_next++] = sat;
        }
        if (!ps->g) ps->n_strings += count;
        return BN_OK;
    }
    uint64_t esize = vtype_size[type];
    if (count > left(ps) / esize)
        return fail(ps, at, BN_ERR_FORMAT,
                    "%llu %s values (%llu bytes each) do not fit in the %llu bytes left before the "
                    "end of file",
                    (unsigned long long)count, vtype_names[type], (unsigned long long)esize,
                    (unsigned long long)left(ps));
    const uint8_t *p = ps->base + ps->pos;
    if (type == BN_GGUF_BOOL)
        for (uint64_t j = 0; j < count; j++)
            if (p[j] > 1) return fail(ps, at + j, BN_ERR_FORMAT, "BOOL value %u (must be 0 or 1)", p[j]);
    if (kv) kv->data = p;
    ps->pos += count * esize;
    return BN_OK;
}

static bn_status check_vtype(parser *ps, uint64_t at, uint32_t t, const char *what) {
    if (t >= BN_GGUF_VTYPE_COUNT)
        return fail(ps, at, BN_ERR_FORMAT, "unknown %s %u", what, t);
    return BN_OK;
}

/* general.alignment rules: a UINT32 power of two. */
static bn_status parse_alignment(parser *ps, uint64_t at, const gguf_kv *kv, const uint8_t *val) {
    if (kv->type != BN_GGUF_UINT32)
        return fail(ps, at, BN_ERR_FORMAT, "general.alignment has type %s (must be UINT32)",
                    vtype_names[kv->type]);
    uint32_t a = le32(val);
    if (!is_pow2(a))
        return fail(ps, at, BN_ERR_FORMAT, "general.alignment %u is not a nonzero power of two", a);
    ps->alignment = a;
    return BN_OK;
}

static bn_status parse_kv(parser *ps, int64_t i) {
    gguf_kv tmp, *kv = ps->g ? &ps->g->kv[i] : &tmp;
    bn_gguf_str key;
    uint32_t type, elem;
    uint64_t at = ps->pos, count = 1;
    bn_status st;

    set_ctx(ps, "kv %lld", (long long)i);
    if ((st = rd_str(ps, "key", &key)) != BN_OK) return st;
    if ((st = check_name(ps, at, "key", key, 0)) != BN_OK) return st;
    set_ctx(ps, "key '%.*s%s'", (int)(key.len < 64 ? key.len : 64), key.ptr, key.len > 64 ? "..." : "");

    uint64_t tat = ps->pos;
    if ((st = rd_u32(ps, "value type", &type)) != BN_OK) return st;
    if ((st = check_vtype(ps, tat, type, "value type")) != BN_OK) return st;
    elem = type;
    if (type == BN_GGUF_ARRAY) {
        uint64_t eat = ps->pos;
        if ((st = rd_u32(ps, "array element type", &elem)) != BN_OK) return st;
        if (elem == BN_GGUF_ARRAY)
            return fail(ps, eat, BN_ERR_FORMAT, "nested array (arrays of arrays are not allowed)");
        if ((st = check_vtype(ps, eat, elem, "array element type")) != BN_OK) return st;
        if ((st = rd_u64(ps, "array count", &count)) != BN_OK) return st;
    }
    kv->key = arena_copy(ps, key);
    kv->offset = at;
    kv->type = (bn_gguf_vtype)type;
    kv->elem_type = (bn_gguf_vtype)elem;
    kv->count = count;
    kv->data = NULL;
    kv->str_off = NULL;
    uint64_t vat = ps->pos;
    if ((st = parse_elems(ps, kv->elem_type, count, ps->g ? kv : NULL)) != BN_OK) return st;
    if (key.len == 17 && memcmp(key.ptr, "general.alignment", 17) == 0)
        return parse_alignment(ps, tat, kv, ps->base + vat);
    return BN_OK;
}

/* n_dims and ne[]: dimensions >= 1, element count within int64. */
static bn_status parse_shape(parser *ps, bn_gguf_tensor *t) {
    uint64_t field = ps->pos;
    bn_status st = rd_u32(ps, "n_dims", &t->n_dims);
    if (st != BN_OK) return st;
    if (t->n_dims < 1 || t->n_dims > BN_GGUF_MAX_DIMS)
        return fail(ps, field, BN_ERR_FORMAT, "n_dims %u (must be 1..%d)", t->n_dims, BN_GGUF_MAX_DIMS);
    t->nelem = 1;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        field = ps->pos;
        if (d < t->n_dims && (st = rd_u64(ps, "ne", &v)) != BN_OK) return st;
        t->ne[d] = (int64_t)v;
        if (t->ne[d] < 1)
            return fail(ps, field, BN_ERR_FORMAT, "ne[%u] = %lld (dimensions must be >= 1)", d,
                        (long long)t->ne[d]);
        if (t->nelem > INT64_MAX / t->ne[d])
            return fail(ps, field, BN_ERR_FORMAT, "element count overflows int64 at ne[%u] = %lld", d,
                        (long long)t->ne[d]);
        t->nelem *= t->ne[d];
    }
    return BN_OK;
}

/* Aligned and inside the file; `field` is where the offset was read. */
static bn_status place_tensor(parser *ps, bn_gguf_tensor *t, uint64_t field) {
    uint64_t room = ps->size > ps->data_offset ? ps->size - ps->data_offset : 0;
    if (t->offset % ps->alignment != 0)
        return fail(ps, field, BN_ERR_FORMAT, "tensor data offset %llu is not a multiple of the alignment %llu",
                    (unsigned long long)t->offset, (unsigned long long)ps->alignment);
    if (t->offset > room || t->nbytes > room - t->offset)
        return fail(ps, field, BN_ERR_FORMAT,
                    "tensor data (%llu bytes at offset %llu of the data section, which starts at "
                    "%llu) extends beyond the end of file (size %llu)",
                    (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                    (unsigned long long)ps->data_offset, (unsigned long long)ps->size);
    t->abs_offset = ps->data_offset + t->offset;
    t->data = ps->base + t->abs_offset;
    return BN_OK;
}

/* One tensor info. Placement needs the data offset, known only in the
 * filling pass. */
static bn_status parse_tensor(parser *ps, int64_t i) {
    bn_gguf_tensor tmp, *t = ps->g ? &ps->g->tensors[i] : &tmp;
    bn_gguf_str name;
    uint64_t at = ps->pos, field;
    bn_status st;

    set_ctx(ps, "tensor %lld", (long long)i);
    if ((st = rd_str(ps, "tensor name", &name)) != BN_OK) return st;
    if ((st = check_name(ps, at, "tensor name", name, GGUF_MAX_NAME)) != BN_OK) return st;
    set_ctx(ps, "tensor '%.*s'", (int)name.len, name.ptr);
    if ((st = parse_shape(ps, t)) != BN_OK) return st;

    field = ps->pos;
    if ((st = rd_u32(ps, "tensor type", &t->type)) != BN_OK) return st;
    bn_error sub;
    st = bn_type_tensor_nbytes(t->type, t->ne[0], t->nelem, &t->nbytes, &sub);
    if (st != BN_OK) /* quant.h names the rule (block size, TL1/TL2, ...) */
        return fail(ps, field, st == BN_ERR_UNSUPPORTED ? st : BN_ERR_FORMAT, "%s", sub.msg);
    field = ps->pos;
    if ((st = rd_u64(ps, "tensor offset", &t->offset)) != BN_OK) return st;
    t->name = arena_copy(ps, name);
    return ps->g ? place_tensor(ps, t, field) : BN_OK;
}

/* Magic, version and the two counts, each count bounded by the bytes left. */
static bn_status parse_header(parser *ps, int64_t *n_tensors, int64_t *n_kv) {
    const uint8_t *magic = NULL;
    uint64_t nt, nk;
    bn_status st;

    set_ctx(ps, "header");
    if ((st = take(ps, 4, "magic", &magic)) != BN_OK) return st;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return fail(ps, 0, BN_ERR_FORMAT, "bad magic %02x %02x %02x %02x (not a GGUF file)", magic[0],
                    magic[1], magic[2], magic[3]);
    if ((st = rd_u32(ps, "version", &ps->version)) != BN_OK) return st;
    uint32_t v = ps->version;
    if (v != 0 && (v & 0xFFFFu) == 0)
        return fail(ps, 4, BN_ERR_UNSUPPORTED,
                    "version field 0x%08x: byte-swapped (big-endian) GGUF is not supported", v);
    if (v < 2 || v > 3)
        return fail(ps, 4, BN_ERR_UNSUPPORTED, "GGUF version %u is not supported (only 2 and 3)", v);
    if ((st = rd_u64(ps, "n_tensors", &nt)) != BN_OK || (st = rd_u64(ps, "n_kv", &nk)) != BN_OK)
        return st;
    *n_tensors = (int64_t)nt;
    *n_kv = (int64_t)nk;
    if (*n_tensors < 0)
        return fail(ps, 8, BN_ERR_FORMAT, "negative n_tensors %lld", (long long)*n_tensors);
    if (*n_kv < 0) return fail(ps, 16, BN_ERR_FORMAT, "negative n_kv %lld", (long long)*n_kv);
    if (nk > left(ps) / KV_MIN_BYTES)
        return fail(ps, 16, BN_ERR_FORMAT,
                    "n_kv %llu (at least %d bytes each) does not fit in the %llu bytes left before "
                    "the end of file",
                    (unsigned long long)nk, KV_MIN_BYTES, (unsigned long long)left(ps));
    if (nt > (left(ps) - nk * KV_MIN_BYTES) / TENSOR_MIN_BYTES)
        return fail(ps, 8, BN_ERR_FORMAT,
                    "n_tensors %llu (at least %d bytes each) and n_kv %llu (at least %d bytes "
                    "each) do not fit in the %llu bytes left before the end of file",
                    (unsigned long long)nt, TENSOR_MIN_BYTES, (unsigned long long)nk, KV_MIN_BYTES,
                    (unsigned long long)left(ps));
    return BN_OK;
}

/* One pass over the whole header: counting (ps->g NULL) or filling. */
static bn_status parse_all(parser *ps, int64_t *n_tensors, int64_t *n_kv) {
    bn_status st = parse_header(ps, n_tensors, n_kv);
    ps->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; st == BN_OK && i < *n_kv; i++) st = parse_kv(ps, i);
    for (int64_t i = 0; st == BN_OK && i < *n_tensors; i++) st = parse_tensor(ps, i);
    return st;
}

/* ------------------------------------------------------------------------
 * Sorting: duplicates, overlaps, look-up indexes.
 */

static int cmp_kv_key(const void *a, const void *b) {
    const gguf_kv *x = *(const gguf_kv *const *)a, *y = *(const gguf_kv *const *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->offset > y->offset) - (x->offset < y->offset);
}

static int cmp_t_name(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->offset > y->offset) - (x->offset < y->offset);
}

static int cmp_t_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset > y->offset ? 1 : -1;
    return (x > y) - (x < y); /* file order */
}

static bn_status check_unique(parser *ps, bn_gguf *g) {
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_by_key[i] = &g->kv[i];
    if (g->n_kv > 1) qsort(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_kv_key);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key) == 0) {
            set_ctx(ps, "key '%.64s'", g->kv_by_key[i]->key);
            return fail(ps, g->kv_by_key[i]->offset, BN_ERR_FORMAT,
                        "duplicate key (first at byte offset %llu)",
                        (unsigned long long)g->kv_by_key[i - 1]->offset);
        }

    const bn_gguf_tensor **t = g->t_by_name;
    for (int64_t i = 0; i < g->n_tensors; i++) t[i] = &g->tensors[i];
    if (g->n_tensors > 1) qsort(t, (size_t)g->n_tensors, sizeof *t, cmp_t_offset);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (t[i]->offset < t[i - 1]->offset + t[i - 1]->nbytes) {
            set_ctx(ps, "tensor '%s'", t[i]->name);
            return fail(ps, t[i]->abs_offset, BN_ERR_FORMAT,
                        "tensor data [%llu, %llu) overlaps tensor '%s' [%llu, %llu)",
                        (unsigned long long)t[i]->offset,
                        (unsigned long long)(t[i]->offset + t[i]->nbytes), t[i - 1]->name,
                        (unsigned long long)t[i - 1]->offset,
                        (unsigned long long)(t[i - 1]->offset + t[i - 1]->nbytes));
        }
    if (g->n_tensors > 1) qsort(t, (size_t)g->n_tensors, sizeof *t, cmp_t_name);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (strcmp(t[i - 1]->name, t[i]->name) == 0) {
            set_ctx(ps, "tensor '%s'", t[i]->name);
            return fail(ps, t[i]->abs_offset, BN_ERR_FORMAT, "duplicate tensor name");
        }
    return BN_OK;
}

/* ------------------------------------------------------------------------
 * Open / close
 */

/* Adds an array of n items of `size` bytes to the running total *off
 * (16-byte aligned); returns the array's offset or UINT64_MAX on overflow. */
static uint64_t carve(uint64_t *off, uint64_t n, uint64_t size) {
    uint64_t at = align_up(*off, 16);
    if (at < *off || (size && n > (UINT64_MAX - at) / size)) return UINT64_MAX;
    *off = at + n * size;
    return at;
}

/* One block: struct, kv[], kv_by_key[], tensors[], t_by_name[], str_off[], arena. */
static bn_status alloc_handle(parser *ps, int64_t n_tensors, int64_t n_kv, bn_gguf **out) {
    uint64_t total = sizeof(bn_gguf), name_len = strlen(ps->file) + 1;
    uint64_t o_kv = carve(&total, (uint64_t)n_kv, sizeof(gguf_kv));
    uint64_t o_kvs = carve(&total, (uint64_t)n_kv, sizeof(gguf_kv *));
    uint64_t o_t = carve(&total, (uint64_t)n_tensors, sizeof(bn_gguf_tensor));
    uint64_t o_ts = carve(&total, (uint64_t)n_tensors, sizeof(bn_gguf_tensor *));
    uint64_t o_str = carve(&total, ps->n_strings, sizeof(uint64_t));
    uint64_t o_arena = carve(&total, ps->arena_bytes + name_len, 1);
    if (o_kv == UINT64_MAX || o_kvs == UINT64_MAX || o_t == UINT64_MAX || o_ts == UINT64_MAX ||
        o_str == UINT64_MAX || o_arena == UINT64_MAX || total > SIZE_MAX)
        return bn_error_set(ps->err, BN_ERR_NOMEM, "%s: index of the header is too large", ps->file);
    char *block = calloc(1, (size_t)total);
    if (!block)
        return bn_error_nomem(ps->err, (unsigned long long)total, "%s: the header index", ps->file);
    bn_gguf *g = (bn_gguf *)block;
    g->kv = (gguf_kv *)(block + o_kv);
    g->kv_by_key = (const gguf_kv **)(block + o_kvs);
    g->tensors = (bn_gguf_tensor *)(block + o_t);
    g->t_by_name = (const bn_gguf_tensor **)(block + o_ts);
    g->str_off = (uint64_t *)(block + o_str);
    g->arena = block + o_arena;
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    memcpy(g->arena + ps->arena_bytes, ps->file, name_len);
    g->name = g->arena + ps->arena_bytes;
    *out = g;
    return BN_OK;
}

bn_status bn_gguf_open_memory(const void *buf, size_t size, const char *name, bn_gguf **out,
                              bn_error *err) {
    parser ps = {.base = buf, .size = size, .file = name ? name : "<memory>", .err = err};
    int64_t n_tensors, n_kv;
    bn_gguf *g = NULL;
    *out = NULL;
    if (!buf && size) return bn_error_set(err, BN_ERR_INVALID, "%s: NULL buffer", ps.file);

    bn_status st = parse_all(&ps, &n_tensors, &n_kv);
    if (st != BN_OK) return st;
    uint64_t header_end = ps.pos;
    ps.data_offset = align_up(header_end, ps.alignment);
    if ((st = alloc_handle(&ps, n_tensors, n_kv, &g)) != BN_OK) return st;

    ps.g = g;
    ps.pos = 0;
    st = parse_all(&ps, &n_tensors, &n_kv);
    if (st == BN_OK && (ps.pos != header_end || ps.str_next != ps.n_strings))
        st = bn_error_set(err, BN_ERR_INTERNAL, "%s: the two header passes disagree", ps.file);
    if (st == BN_OK) st = check_unique(&ps, g);
    if (st != BN_OK) {
        free(g);
        return st;
    }
    g->base = buf;
    g->size = size;
    g->version = ps.version;
    g->alignment = ps.alignment;
    g->data_offset = ps.data_offset;
    *out = g;
    return BN_OK;
}

/* Reads the whole file into fresh anonymous memory (BN_GGUF_LOAD_MEMORY).
 * Transparent huge pages are asked for: decoding a token reads every weight
 * once, and on the machines measured (bench/run.sh) the weights of a
 * page-cache mapping read 20-30 % slower than the same bytes in anonymous
 * memory. The pages are made read-only afterwards, as the file mapping is. */
static bn_status read_into_memory(int fd, const char *path, size_t size, void **out, bn_error *err) {
    *out = NULL;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return bn_error_set(err, BN_ERR_NOMEM, "%s: cannot allocate %zu bytes to read the file into: %s", path, size,
                            strerror(errno));
#ifdef MADV_HUGEPAGE
    (void)madvise(mem, size, MADV_HUGEPAGE); /* a hint: kernels without THP refuse it, which changes nothing */
#endif
    size_t done = 0;
    while (done < size) {
        const size_t piece = size - done < ((size_t)1 << 26) ? size - done : (size_t)1 << 26;
        const ssize_t got = pread(fd, (uint8_t *)mem + done, piece, (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            const int e = got < 0 ? errno : 0;
            munmap(mem, size);
            return bn_error_set(err, BN_ERR_IO, "%s: read failed at offset %zu of %zu: %s", path, done, size,
                                e ? strerror(e) : "the file ended early (was it truncated while being read?)");
        }
        done += (size_t)got;
    }
    if (mprotect(mem, size, PROT_READ) != 0) {
        const int e = errno;
        munmap(mem, size);
        return bn_error_set(err, BN_ERR_INTERNAL, "%s: cannot make the %zu bytes read-only: %s", path, size,
                            strerror(e));
    }
    *out = mem;
    return BN_OK;
}

bn_status bn_gguf_set_writable(bn_gguf *g, bool writable, bn_error *err) {
    if (!g || !g->in_memory)
        return bn_error_set(err, BN_ERR_INVALID, "%s: only a file read into memory can be made writable",
                            g ? g->name : "(null)");
    if (mprotect(g->map, (size_t)g->size, writable ? PROT_READ | PROT_WRITE : PROT_READ) != 0)
        return bn_error_set(err, BN_ERR_INTERNAL, "%s: cannot make the %llu bytes %s: %s", g->name,
                            (unsigned long long)g->size, writable ? "writable" : "read-only", strerror(errno));
    return BN_OK;
}

bn_status bn_gguf_open_with(const char *path, bn_gguf_load how, bn_gguf **out, bn_error *err) {
    *out = NULL;
    if (how != BN_GGUF_LOAD_MMAP && how != BN_GGUF_LOAD_MEMORY)
        return bn_error_set(err, BN_ERR_INVALID, "%s: unknown load mode %d", path, (int)how);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return bn_error_set(err, BN_ERR_IO, "%s: not a regular file%s%s", path, e ? ": " : "",
                            e ? strerror(e) : "");
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0 && how == BN_GGUF_LOAD_MEMORY) {
        bn_status st = read_into_memory(fd, path, size, &map, err);
        if (st) {
            close(fd);
            return st;
        }
    } else if (size > 0) { /* mmap of 0 bytes fails; the parser reports the empty file */
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return bn_error_set(err, BN_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, size,
                                strerror(e));
        }
    }
    close(fd); /* the mapping stays valid */
    bn_status st = bn_gguf_open_memory(map ? map : "", size, path, out, err);
    if (st != BN_OK) {
        if (map) munmap(map, size);
        return st;
    }
    (*out)->map = map;
    (*out)->in_memory = map && how == BN_GGUF_LOAD_MEMORY;
    return BN_OK;
}

bn_status bn_gguf_open(const char *path, bn_gguf **out, bn_error *err) {
    return bn_gguf_open_with(path, BN_GGUF_LOAD_MMAP, out, err);
}

bool bn_gguf_load_parse(const char *s, bn_gguf_load *out) {
    if (!strcmp(s, "mmap")) *out = BN_GGUF_LOAD_MMAP;
    else if (!strcmp(s, "memory")) *out = BN_GGUF_LOAD_MEMORY;
    else return false;
    return true;
}

void bn_gguf_close(bn_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, (size_t)g->size);
    free(g);
}

uint32_t bn_gguf_version(const bn_gguf *g) { return g->version; }
uint64_t bn_gguf_file_size(const bn_gguf *g) { return g->size; }
uint64_t bn_gguf_alignment(const bn_gguf *g) { return g->alignment; }
uint64_t bn_gguf_data_offset(const bn_gguf *g) { return g->data_offset; }
const char *bn_gguf_path(const bn_gguf *g) { return g->name; }

/* ------------------------------------------------------------------------
 * Key/value access
 */

static const gguf_kv *kv_at(const bn_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

int64_t bn_gguf_kv_count(const bn_gguf *g) { return g->n_kv; }

static int cmp_key_search(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const gguf_kv *const *)elem)->key);
}

int64_t bn_gguf_find_key(const bn_gguf *g, const char *key) {
    if (!g || !key || g->n_kv == 0) return -1;
    const gguf_kv *const *hit =
        bsearch(key, g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_key_search);
    return hit ? *hit - g->kv : -1;
}

const char *bn_gguf_kv_key(const bn_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

bn_gguf_vtype bn_gguf_kv_type(const bn_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : BN_GGUF_VTYPE_COUNT;
}

bn_gguf_vtype bn_gguf_kv_elem_type(const bn_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->elem_type : BN_GGUF_VTYPE_COUNT;
}

uint64_t bn_gguf_kv_count_elems(const bn_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->count : 0;
}

const void *bn_gguf_kv_data(const bn_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->data : NULL;
}

bn_gguf_str bn_gguf_kv_str(const bn_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = kv_at(g, i);
    bn_gguf_str s = {NULL, 0};
    if (!kv || kv->elem_type != BN_GGUF_STRING || j >= kv->count) return s;
    const uint8_t *p = g->base + kv->str_off[j];
    s.len = le64(p);
    s.ptr = (const char *)p + 8;
    return s;
}

/* Element j as int64 when it is an integer or bool; *ok false if it does not
 * fit (UINT64 above INT64_MAX) or is not an integer. */
static int64_t elem_int(const gguf_kv *kv, uint64_t j, bool *ok) {
    const uint8_t *p = kv->data + j * vtype_size[kv->elem_type];
    *ok = true;
    switch (kv->elem_type) {
    case BN_GGUF_UINT8: case BN_GGUF_BOOL: return p[0];
    case BN_GGUF_INT8: return (int8_t)p[0];
    case BN_GGUF_UINT16: return (uint16_t)(p[0] | p[1] << 8);
    case BN_GGUF_INT16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case BN_GGUF_UINT32: return le32(p);
    case BN_GGUF_INT32: return (int32_t)le32(p);
    case BN_GGUF_INT64: return (int64_t)le64(p);
    case BN_GGUF_UINT64:
        if (le64(p) > INT64_MAX) break;
        return (int64_t)le64(p);
    default: break;
    }
    *ok = false;
    return 0;
}

static double elem_float(const gguf_kv *kv, uint64_t j, bool *ok) {
    const uint8_t *p = kv->data + j * vtype_size[kv->elem_type];
    *ok = true;
    if (kv->elem_type == BN_GGUF_FLOAT32) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    if (kv->elem_type == BN_GGUF_FLOAT64) {
        uint64_t u = le64(p);
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    *ok = false;
    return 0;
}

static bool numeric_elem(const gguf_kv *kv, uint64_t j) {
    return kv && j < kv->count && kv->data != NULL;
}

int64_t bn_gguf_kv_int(const bn_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = kv_at(g, i);
    bool ok;
    if (!numeric_elem(kv, j)) return 0;
    int64_t v = elem_int(kv, j, &ok);
    if (ok) return v;
    if (kv->elem_type == BN_GGUF_UINT64) return INT64_MAX; /* saturated */
    double d = elem_float(kv, j, &ok);
    /* Saturating conversion: out-of-range double -> int64 is undefined. */
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

double bn_gguf_kv_float(const bn_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = kv_at(g, i);
    bool ok;
    if (!numeric_elem(kv, j)) return 0;
    double d = elem_float(kv, j, &ok);
    if (ok) return d;
    if (kv->elem_type == BN_GGUF_UINT64) return (double)le64(kv->data + j * 8);
    return (double)elem_int(kv, j, &ok);
}

/* Finds `key` or fails with NOT_FOUND. */
static bn_status lookup(const bn_gguf *g, const char *key, const gguf_kv **kv, bn_error *err) {
    int64_t i = bn_gguf_find_key(g, key);
    if (i < 0) return bn_error_set(err, BN_ERR_NOT_FOUND, "%s: key '%s' not found", g->name, key);
    *kv = &g->kv[i];
    return BN_OK;
}

static bn_status wrong_type(const bn_gguf *g, const gguf_kv *kv, const char *expected, bn_error *err) {
    char have[32];
    if (kv->type == BN_GGUF_ARRAY)
        snprintf(have, sizeof have, "ARRAY of %s", vtype_names[kv->elem_type]);
    else
        snprintf(have, sizeof have, "%s", vtype_names[kv->type]);
    bn_error_set(err, BN_ERR_INVALID, "%s: value of type %s where %s was expected at byte offset %llu (key '%s')",
                 g->name, have, expected, (unsigned long long)kv->offset, kv->key);
    scrub(err);
    return BN_ERR_INVALID;
}

bn_status bn_gguf_get_int(const bn_gguf *g, const char *key, int64_t *out, bn_error *err) {
    const gguf_kv *kv = NULL;
    bool ok;
    bn_status st = lookup(g, key, &kv, err);
    if (st != BN_OK) return st;
    if (kv->type == BN_GGUF_ARRAY || kv->type == BN_GGUF_STRING || kv->type == BN_GGUF_FLOAT32 ||
        kv->type == BN_GGUF_FLOAT64)
        return wrong_type(g, kv, "an integer or BOOL", err);
    int64_t v = elem_int(kv, 0, &ok);
    if (!ok) {
        bn_error_set(err, BN_ERR_INVALID, "%s: UINT64 value %llu does not fit int64 at byte offset %llu (key '%s')",
                     g->name, (unsigned long long)le64(kv->data), (unsigned long long)kv->offset, kv->key);
        scrub(err);
        return BN_ERR_INVALID;
    }
    *out = v;
    return BN_OK;
}

bn_status bn_gguf_get_float(const bn_gguf *g, const char *key, double *out, bn_error *err) {
    const gguf_kv *kv = NULL;
    bool ok;
    bn_status st = lookup(g, key, &kv, err);
    if (st != BN_OK) return st;
    if (kv->type != BN_GGUF_FLOAT32 && kv->type != BN_GGUF_FLOAT64)
        return wrong_type(g, kv, "FLOAT32 or FLOAT64", err);
    *out = elem_float(kv, 0, &ok);
    return BN_OK;
}

bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_error *err) {
    const gguf_kv *kv = NULL;
    bn_status st = lookup(g, key, &kv, err);
    if (st != BN_OK) return st;
    if (kv->type != BN_GGUF_STRING) return wrong_type(g, kv, "STRING", err);
    *out = bn_gguf_kv_str(g, kv - g->kv, 0);
    return BN_OK;
}

bn_status bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_vtype elem_type,
                          int64_t *kv_index, uint64_t *count, bn_error *err) {
    const gguf_kv *kv = NULL;
    bn_status st = lookup(g, key, &kv, err);
    if (st != BN_OK) return st;
    if (kv->type != BN_GGUF_ARRAY || (elem_type != BN_GGUF_VTYPE_COUNT && kv->elem_type != elem_type)) {
        char want[32];
        if (elem_type == BN_GGUF_VTYPE_COUNT)
            snprintf(want, sizeof want, "an ARRAY");
        else
            snprintf(want, sizeof want, "ARRAY of %s", bn_gguf_vtype_name(elem_type));
        return wrong_type(g, kv, want, err);
    }
    if (kv_index) *kv_index = kv - g->kv;
    if (count) *count = kv->count;
    return BN_OK;
}

/* ------------------------------------------------------------------------
 * Tensors
 */

int64_t bn_gguf_tensor_count(const bn_gguf *g) { return g->n_tensors; }

const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

static int cmp_name_search(const void *name, const void *elem) {
    return strcmp((const char *)name, (*(const bn_gguf_tensor *const *)elem)->name);
}

const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    if (!g || !name || g->n_tensors == 0) return NULL;
    const bn_gguf_tensor *const *hit =
        bsearch(name, g->t_by_name, (size_t)g->n_tensors, sizeof *g->t_by_name, cmp_name_search);
    return hit ? *hit : NULL;
}

/* ------------------------------------------------------------------------
 * Writer: key/values and tensor infos are buffered until the first tensor's
 * data (or close), because the header starts with their counts and the
 * alignment key may come at any point before.
 */

typedef struct wtensor {
    char name[GGUF_MAX_NAME]; /* NUL-terminated */
    uint32_t type, n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS];
    uint64_t nbytes;          /* bn_type_tensor_nbytes */
    uint64_t offset;          /* in the data section, assigned when the header is written */
} wtensor;

struct bn_gguf_writer {
    bn_atomic_file *file;     /* renamed onto path by a successful close */
    char *path;
    uint32_t version;
    uint32_t alignment;
    uint8_t *kv_buf;          /* [kv_len] encoded key/values, file order */
    size_t kv_len, kv_cap;
    char **keys;              /* [n_kv] copies, for duplicate checks */
    int64_t n_kv, keys_cap;
    wtensor *tensors;         /* [n_tensors] declaration order */
    int64_t n_tensors, tensors_cap;
    int64_t n_written;        /* tensors whose data is written */
    uint64_t part_written;    /* bytes of tensor n_written given so far by write_tensor_part */
    bool header_done;
    uint64_t pos;             /* bytes written to the file */
    bn_error io_error;        /* the first failed write (or cancellation); reported at the next call */
};

/* Grows *buf (of *cap items of `size`) to hold `need` items. */
static bool grow(void **buf, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap) return true;
    int64_t n = *cap ? *cap * 2 : 16;
    while (n < need) n *= 2;
    if ((uint64_t)n > SIZE_MAX / size) return false;
    void *p = realloc(*buf, (size_t)n * size);
    if (!p) return false;
    *buf = p;
    *cap = n;
    return true;
}

static bool put_bytes(bn_gguf_writer *w, const void *p, size_t n) {
    int64_t cap = (int64_t)w->kv_cap;
    if (n > (size_t)INT64_MAX - w->kv_len) return false;
    if (!grow((void **)&w->kv_buf, &cap, (int64_t)(w->kv_len + n), 1)) return false;
    w->kv_cap = (size_t)cap;
    if (n) memcpy(w->kv_buf + w->kv_len, p, n);
    w->kv_len += n;
    return true;
}

static void enc32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void enc64(uint8_t *p, uint64_t v) {
    enc32(p, (uint32_t)v);
    enc32(p + 4, (uint32_t)(v >> 32));
}

static bool put_u32(bn_gguf_writer *w, uint32_t v) {
    uint8_t b[4];
    enc32(b, v);
    return put_bytes(w, b, 4);
}

static bool put_u64(bn_gguf_writer *w, uint64_t v) {
    uint8_t b[8];
    enc64(b, v);
    return put_bytes(w, b, 8);
}

static bool put_str(bn_gguf_writer *w, const char *s) {
    size_t n = strlen(s);
    return put_u64(w, n) && put_bytes(w, s, n);
}

/* Numeric elements, converted to little-endian from host order. */
static bool put_elems(bn_gguf_writer *w, bn_gguf_vtype t, const void *elems, uint64_t count) {
    size_t es = vtype_size[t];
    const uint8_t *p = elems;
    for (uint64_t j = 0; j < count; j++, p += es) {
        uint64_t v = 0;
        uint8_t b[8];
        if (es == 1) v = p[0];
        else if (es == 2) { uint16_t x; memcpy(&x, p, 2); v = x; }
        else if (es == 4) { uint32_t x; memcpy(&x, p, 4); v = x; }
        else memcpy(&v, p, 8);
        enc64(b, v);
        if (!put_bytes(w, b, es)) return false;
    }
    return true;
}

BN_PRINTF(4, 5)
static bn_status wfail(const bn_gguf_writer *w, bn_error *err, bn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(err, code, fmt, ap);
    va_end(ap);
    bn_error_prefix(err, w ? w->path : "<writer>");
    return code;
}

bn_status bn_gguf_writer_open(const char *path, uint32_t version, bn_gguf_writer **out, bn_error *err) {
    *out = NULL;
    if (version == 0) version = 3;
    if (version != 2 && version != 3)
        return bn_error_set(err, BN_ERR_INVALID, "%s: cannot write GGUF version %u (only 2 and 3)", path,
                            version);
    bn_gguf_writer *w = calloc(1, sizeof *w);
    char *p = w ? strdup(path) : NULL;
    if (!p) {
        free(w);
        return bn_error_nomem(err, sizeof *w + strlen(path) + 1, "%s: the GGUF writer", path);
    }
    bn_status st = bn_atomic_file_open(path, &w->file, err);
    if (st) {
        free(p);
        free(w);
        return st;
    }
    w->path = p;
    w->version = version;
    w->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return BN_OK;
}

/* Validates a new key and appends its name and type; the caller appends the
 * value. On NOMEM the buffer is rolled back by the caller via *mark. */
static bn_status begin_kv(bn_gguf_writer *w, const char *key, uint32_t type, size_t *mark, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "<writer>: NULL writer");
    if (w->header_done)
        return wfail(w, err, BN_ERR_INVALID, "key '%s' added after tensor data was written", key ? key : "");
    if (!key || !*key) return wfail(w, err, BN_ERR_INVALID, "empty key");
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return wfail(w, err, BN_ERR_INVALID, "duplicate key '%s'", key);
    *mark = w->kv_len;
    if (!grow((void **)&w->keys, &w->keys_cap, w->n_kv + 1, sizeof *w->keys) || !put_str(w, key) ||
        !put_u32(w, type))
        return wfail(w, err, BN_ERR_NOMEM, "key '%s': out of memory (%zu bytes)", key, 2 * w->kv_len + strlen(key) + 12);
    return BN_OK;
}

/* Records the key once its value is in the buffer, or rolls back. */
static bn_status end_kv(bn_gguf_writer *w, const char *key, size_t mark, bool ok, bn_error *err) {
    char *copy = ok ? strdup(key) : NULL;
    if (!copy) {
        w->kv_len = mark;
        return wfail(w, err, BN_ERR_NOMEM, "key '%s': out of memory (%zu bytes)", key, strlen(key) + 1);
    }
    w->keys[w->n_kv++] = copy;
    return BN_OK;
}

static bn_status check_numeric(bn_gguf_writer *w, const char *key, bn_gguf_vtype t, const void *elems,
                               uint64_t count, bn_error *err) {
    if ((unsigned)t >= BN_GGUF_VTYPE_COUNT || vtype_size[t] == 0)
        return wfail(w, err, BN_ERR_INVALID, "key '%s': type %d is not a numeric or BOOL type",
                     key ? key : "", (int)t);
    if (count && !elems) return wfail(w, err, BN_ERR_INVALID, "key '%s': NULL value", key ? key : "");
    if (t == BN_GGUF_BOOL)
        for (uint64_t j = 0; j < count; j++)
            if (((const uint8_t *)elems)[j] > 1)
                return wfail(w, err, BN_ERR_INVALID, "key '%s': BOOL value %u (must be 0 or 1)", key,
                             ((const uint8_t *)elems)[j]);
    return BN_OK;
}

bn_status bn_gguf_writer_add_scalar(bn_gguf_writer *w, const char *key, bn_gguf_vtype type,
                                    const void *value, bn_error *err) {
    size_t mark;
    bn_status st = check_numeric(w, key, type, value, 1, err);
    if (st != BN_OK) return st;
    bool is_align = key && strcmp(key, "general.alignment") == 0;
    uint32_t a = 0;
    if (is_align) {
        if (type != BN_GGUF_UINT32)
            return wfail(w, err, BN_ERR_INVALID, "general.alignment must be UINT32, not %s",
                         vtype_names[type]);
        memcpy(&a, value, 4);
        if (!is_pow2(a))
            return wfail(w, err, BN_ERR_INVALID, "general.alignment %u is not a nonzero power of two", a);
    }
    if ((st = begin_kv(w, key, type, &mark, err)) != BN_OK) return st;
    if ((st = end_kv(w, key, mark, put_elems(w, type, value, 1), err)) != BN_OK) return st;
    if (is_align) w->alignment = a;
    return BN_OK;
}

bn_status bn_gguf_writer_add_str(bn_gguf_writer *w, const char *key, const char *value, bn_error *err) {
    size_t mark;
    if (!value) return wfail(w, err, BN_ERR_INVALID, "key '%s': NULL string", key ? key : "");
    if (key && strcmp(key, "general.alignment") == 0)
        return wfail(w, err, BN_ERR_INVALID, "general.alignment must be UINT32, not STRING");
    bn_status st = begin_kv(w, key, BN_GGUF_STRING, &mark, err);
    return st != BN_OK ? st : end_kv(w, key, mark, put_str(w, value), err);
}

static bn_status begin_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype elem, uint64_t count,
                           size_t *mark, bn_error *err) {
    if (key && strcmp(key, "general.alignment") == 0)
        return wfail(w, err, BN_ERR_INVALID, "general.alignment must be UINT32, not ARRAY");
    bn_status st = begin_kv(w, key, BN_GGUF_ARRAY, mark, err);
    if (st == BN_OK && !(put_u32(w, elem) && put_u64(w, count))) {
        w->kv_len = *mark;
        return wfail(w, err, BN_ERR_NOMEM, "key '%s': out of memory (%zu bytes)", key, 2 * w->kv_len + 12);
    }
    return st;
}

bn_status bn_gguf_writer_add_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype elem_type,
                                 const void *elems, uint64_t count, bn_error *err) {
    size_t mark;
    bn_status st = check_numeric(w, key, elem_type, elems, count, err);
    if (st == BN_OK) st = begin_arr(w, key, elem_type, count, &mark, err);
    return st != BN_OK ? st : end_kv(w, key, mark, put_elems(w, elem_type, elems, count), err);
}

bn_status bn_gguf_writer_add_str_arr(bn_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t count, bn_error *err) {
    size_t mark;
    for (uint64_t j = 0; j < count; j++)
        if (!strs || !strs[j])
            return wfail(w, err, BN_ERR_INVALID, "key '%s': string %llu is NULL", key ? key : "",
                         (unsigned long long)j);
    bn_status st = begin_arr(w, key, BN_GGUF_STRING, count, &mark, err);
    if (st != BN_OK) return st;
    bool ok = true;
    for (uint64_t j = 0; ok && j < count; j++) ok = put_str(w, strs[j]);
    return end_kv(w, key, mark, ok, err);
}

bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err) {
    return bn_gguf_writer_add_scalar(w, key, BN_GGUF_UINT32, &v, err);
}

bn_status bn_gguf_writer_add_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err) {
    return bn_gguf_writer_add_scalar(w, key, BN_GGUF_INT32, &v, err);
}

bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err) {
    return bn_gguf_writer_add_scalar(w, key, BN_GGUF_FLOAT32, &v, err);
}

bn_status bn_gguf_writer_add_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err) {
    uint8_t b = v ? 1 : 0;
    return bn_gguf_writer_add_scalar(w, key, BN_GGUF_BOOL, &b, err);
}

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const int64_t *ne, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "<writer>: NULL writer");
    if (!name) name = "";
    if (w->header_done)
        return wfail(w, err, BN_ERR_INVALID, "tensor '%s' declared after tensor data was written", name);
    size_t len = strlen(name);
    if (len == 0 || len >= GGUF_MAX_NAME)
        return wfail(w, err, BN_ERR_INVALID, "tensor name '%s' has %zu bytes (must be 1..%d)", name, len,
                     GGUF_MAX_NAME - 1);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return wfail(w, err, BN_ERR_INVALID, "duplicate tensor '%s'", name);
    if (n_dims < 1 || n_dims > BN_GGUF_MAX_DIMS || !ne)
        return wfail(w, err, BN_ERR_INVALID, "tensor '%s': n_dims %u (must be 1..%d)", name, n_dims,
                     BN_GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims};
    int64_t nelem = 1;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1 || nelem > INT64_MAX / t.ne[d])
            return wfail(w, err, BN_ERR_INVALID, "tensor '%s': ne[%u] = %lld (must be >= 1, product within int64)",
                         name, d, (long long)t.ne[d]);
        nelem *= t.ne[d];
    }
    bn_error sub;
    bn_status st = bn_type_tensor_nbytes(type, t.ne[0], nelem, &t.nbytes, &sub);
    if (st != BN_OK) return wfail(w, err, st, "tensor '%s': %s", name, sub.msg);
    if (!grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof *w->tensors))
        return wfail(w, err, BN_ERR_NOMEM, "tensor '%s': out of memory (%zu bytes)", name,
                     (size_t)(2 * w->tensors_cap + 16) * sizeof *w->tensors);
    memcpy(t.name, name, len + 1);
    w->tensors[w->n_tensors++] = t;
    return BN_OK;
}

static void wwrite(bn_gguf_writer *w, const void *p, uint64_t n) {
    if (n && !w->io_error.code) bn_atomic_file_write(w->file, p, (size_t)n, &w->io_error);
    w->pos += n;
}

static void wpad(bn_gguf_writer *w) {
    static const uint8_t zeros[64];
    uint64_t pad = align_up(w->pos, w->alignment) - w->pos;
    while (pad) {
        uint64_t n = pad < sizeof zeros ? pad : sizeof zeros;
        wwrite(w, zeros, n);
        pad -= n;
    }
}

static void write_header(bn_gguf_writer *w) {
    uint8_t b[8 + 4 + 8 * BN_GGUF_MAX_DIMS + 4 + 8];
    memcpy(b, GGUF_MAGIC, 4);
    enc32(b + 4, w->version);
    enc64(b + 8, (uint64_t)w->n_tensors);
    enc64(b + 16, (uint64_t)w->n_kv);
    wwrite(w, b, 24);
    wwrite(w, w->kv_buf, w->kv_len);
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        size_t len = strlen(t->name), n = 4;
        enc64(b, len);
        wwrite(w, b, 8);
        wwrite(w, t->name, len);
        enc32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++, n += 8) enc64(b + n, (uint64_t)t->ne[d]);
        enc32(b + n, t->type);
        t->offset = off;
        enc64(b + n + 4, off);
        wwrite(w, b, n + 12);
        off += align_up(t->nbytes, w->alignment);
    }
    wpad(w);
    w->header_done = true;
}

static bn_status io_status(bn_gguf_writer *w, bn_error *err) {
    if (!w->io_error.code) return BN_OK;
    if (err) *err = w->io_error;
    return w->io_error.code;
}

bn_status bn_gguf_writer_write_tensor(bn_gguf_writer *w, const void *data, uint64_t nbytes, bn_error *err) {
    if (w && w->n_written < w->n_tensors) { /* the rest is write_tensor_part's to check */
        const wtensor *t = &w->tensors[w->n_written];
        if (w->part_written)
            return wfail(w, err, BN_ERR_INVALID, "tensor '%s': whole data given after %llu partial bytes", t->name,
                         (unsigned long long)w->part_written);
        if (nbytes != t->nbytes || (!data && nbytes))
            return wfail(w, err, BN_ERR_INVALID, "tensor '%s': %llu bytes given, %llu declared", t->name,
                         (unsigned long long)nbytes, (unsigned long long)t->nbytes);
    }
    return bn_gguf_writer_write_tensor_part(w, data, nbytes, err);
}

bn_status bn_gguf_writer_write_tensor_part(bn_gguf_writer *w, const void *data, uint64_t nbytes, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "<writer>: NULL writer");
    if (w->n_written >= w->n_tensors)
        return wfail(w, err, BN_ERR_INVALID, "tensor data beyond the %lld declared tensors",
                     (long long)w->n_tensors);
    const wtensor *t = &w->tensors[w->n_written];
    if (nbytes > t->nbytes - w->part_written || (!data && nbytes))
        return wfail(w, err, BN_ERR_INVALID, "tensor '%s': %llu more bytes given after %llu, %llu declared", t->name,
                     (unsigned long long)nbytes, (unsigned long long)w->part_written,
                     (unsigned long long)t->nbytes);
    if (!w->header_done) write_header(w);
    wwrite(w, data, nbytes);
    w->part_written += nbytes;
    if (w->part_written == t->nbytes) {
        wpad(w);
        w->n_written++;
        w->part_written = 0;
    }
    return io_status(w, err);
}

static void writer_free(bn_gguf_writer *w) {
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->kv_buf);
    free(w->tensors);
    free(w->path);
    free(w);
}

bn_status bn_gguf_writer_close(bn_gguf_writer *w, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "<writer>: NULL writer");
    bn_status st = BN_OK;
    if (w->n_written < w->n_tensors)
        st = wfail(w, err, BN_ERR_INVALID, "only %lld of %lld declared tensors were written",
                   (long long)w->n_written, (long long)w->n_tensors);
    else if (!w->header_done)
        write_header(w);
    if (st == BN_OK) st = io_status(w, err);
    /* never publish a truncated file: only a complete one is renamed onto path */
    if (st == BN_OK) st = bn_atomic_file_commit(w->file, err);
    else bn_atomic_file_abort(w->file);
    writer_free(w);
    return st;
}

void bn_gguf_writer_set_cancel(bn_gguf_writer *w, const volatile sig_atomic_t *cancel) {
    bn_atomic_file_set_cancel(w->file, cancel);
}

void bn_gguf_writer_abort(bn_gguf_writer *w) {
    if (!w) return;
    bn_atomic_file_abort(w->file);
    writer_free(w);
}
