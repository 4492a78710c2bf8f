/* npz.c — zip (APPNOTE 6.3) reader/writer restricted to what .npz needs, and
 * .npy headers. See bitnet/npz.h for the contract. */
#include "bitnet/npz.h"

#include "bitnet/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h> /* CRC-32: PCLMUL code, about 2x zlib's; the same polynomial */
#include <zlib.h>

/* Record signatures and fixed sizes (APPNOTE 4.3). */
enum {
    SIG_LOCAL = 0x04034b50,
    SIG_CENTRAL = 0x02014b50,
    SIG_EOCD = 0x06054b50,
    SIG_ZIP64_EOCD = 0x06064b50,
    SIG_ZIP64_LOCATOR = 0x07064b50,
    LOCAL_SIZE = 30,
    CENTRAL_SIZE = 46,
    EOCD_SIZE = 22,
    ZIP64_EOCD_SIZE = 56,
    ZIP64_LOCATOR_SIZE = 20,
    EXTRA_ZIP64 = 0x0001,
    METHOD_STORED = 0,
    METHOD_DEFLATE = 8,
    FLAG_ENCRYPTED = 0x0001,
    FLAG_UTF8 = 0x0800,
};
#define FIELD32_MAX 0xFFFFFFFFu
#define FIELD16_MAX 0xFFFFu
#define EOCD_MAX_COMMENT 65535u
/* Deflate cannot expand data by more than 1032:1 (zlib technical details), so
 * a size claiming more is a lie we can reject before allocating anything. */
#define DEFLATE_MAX_RATIO 1032u
/* Streaming granularity: big enough for zlib's fast paths, small enough that
 * the CRC pass runs on data still in cache. */
#define CHUNK ((size_t)256 * 1024)
#define WRITE_BUF ((size_t)1 << 20) /* the writer's stdio buffer: large page-cache writes */
/* numpy writes headers of < 100 bytes; 1 MiB is far beyond any sane one. */
#define NPY_MAX_HEADER ((uint64_t)1 << 20)
#define NPY_MAGIC "\x93NUMPY"
/* Member count limit: keeps indices in int64 table slots and the directory
 * arrays of a hostile file bounded. */
#define MAX_MEMBERS ((int64_t)1 << 28)
/* 1980-01-01 00:00: a fixed timestamp keeps identical traces byte-identical. */
#define DOS_DATE_1980 0x0021u

static const struct {
    const char *descr;
    size_t size;
} dtype_table[NPZ_DTYPE_COUNT] = {
    [NPZ_F32] = {"<f4", 4}, [NPZ_F16] = {"<f2", 2}, [NPZ_I8] = {"|i1", 1},
    [NPZ_I32] = {"<i4", 4}, [NPZ_F64] = {"<f8", 8},
};

const char *npz_dtype_descr(npz_dtype t) {
    return (unsigned)t < NPZ_DTYPE_COUNT ? dtype_table[t].descr : "?";
}

size_t npz_dtype_size(npz_dtype t) { return (unsigned)t < NPZ_DTYPE_COUNT ? dtype_table[t].size : 0; }

void npz_array_free(npz_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* --- little-endian fields ---------------------------------------------- */
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static uint8_t *wr16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}
static uint8_t *wr32(uint8_t *p, uint32_t v) { return wr16(wr16(p, v & 0xFFFF), v >> 16); }
static uint8_t *wr64(uint8_t *p, uint64_t v) { return wr32(wr32(p, (uint32_t)v), (uint32_t)(v >> 32)); }
static uint32_t clamp32(uint64_t v) { return v >= FIELD32_MAX ? FIELD32_MAX : (uint32_t)v; }
static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
typedef unsigned long long ull; /* for printf */

/* --- name -> member index ---------------------------------------------- */
/* Open addressing over the member array; both reader and writer use it. */
typedef struct name_table {
    int64_t *slots; /* [mask + 1] member index + 1; 0 = empty */
    uint64_t mask;
} name_table;

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Slot holding `name`, or the empty slot where it would go. */
static uint64_t table_slot(const name_table *t, const npz_member *m, const char *name) {
    uint64_t i = hash_name(name) & t->mask;
    while (t->slots[i] && strcmp(m[t->slots[i] - 1].name, name) != 0) i = (i + 1) & t->mask;
    return i;
}

static int64_t table_find(const name_table *t, const npz_member *m, const char *name) {
    if (!t->slots) return -1;
    return t->slots[table_slot(t, m, name)] - 1;
}

/* Rebuilds the table for members [0, n) with room to grow to `room`
 * entries at load factor <= 1/2. Returns the index of a duplicate name's
 * first occurrence in *dup (-1 when none). */
static bn_status table_build(name_table *t, const npz_member *m, int64_t n, int64_t room, int64_t *dup) {
    uint64_t size = 16;
    while (size < (uint64_t)room * 2) size *= 2;
    int64_t *slots = calloc(size, sizeof *slots);
    if (!slots) return BN_ERR_NOMEM;
    free(t->slots);
    t->slots = slots;
    t->mask = size - 1;
    *dup = -1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t s = table_slot(t, m, m[i].name);
        if (t->slots[s]) {
            *dup = t->slots[s] - 1;
            return BN_OK;
        }
        t->slots[s] = i + 1;
    }
    return BN_OK;
}

/* --- reader --------------------------------------------------------------- */
struct npz_reader {
    const uint8_t *base; /* [size] the mapping or the caller's buffer */
    uint64_t size;
    bool mapped;         /* base is ours to munmap */
    int fd;              /* the mapped file, for pread of stored data; -1 for a buffer */
    char *name;          /* file name for messages */
    uint64_t cd_offset;  /* member data must end before the central directory */
    npz_member *members; /* [n] central-directory order */
    int64_t n;
    char *names; /* every member name, NUL-terminated, back to back */
    name_table table;
};

/* Sets err to "<file>: member '<name>': <message>". */
BN_PRINTF(5, 6)
static bn_status member_error(const npz_reader *r, const npz_member *m, bn_error *err, bn_status code,
                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_error_setv(err, code, fmt, ap);
    va_end(ap);
    bn_error_prefixf(err, "%s: member '%s'", r->name, m->name);
    return code;
}

typedef struct cd_loc {
    uint64_t count;  /* entries */
    uint64_t offset; /* first entry */
    uint64_t size;   /* bytes */
    uint64_t end;    /* offset of the record that follows the directory */
} cd_loc;

/* The end-of-central-directory record is the last thing in the file, before
 * a comment of up to 64 KiB: scan backwards for a signature whose comment
 * length fits. */
static bn_status find_eocd(const npz_reader *r, uint64_t *pos, bn_error *err) {
    if (r->size < EOCD_SIZE)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %llu bytes is too small for a zip archive", r->name,
                            (ull)r->size);
    uint64_t lo = r->size - EOCD_SIZE > EOCD_MAX_COMMENT ? r->size - EOCD_SIZE - EOCD_MAX_COMMENT : 0;
    for (uint64_t p = r->size - EOCD_SIZE + 1; p-- > lo;) {
        const uint8_t *e = r->base + p;
        if (rd32(e) == SIG_EOCD && p + EOCD_SIZE + rd16(e + 20) <= r->size) {
            *pos = p;
            return BN_OK;
        }
    }
    return bn_error_set(err, BN_ERR_FORMAT,
                        "%s: no end-of-central-directory record in the last %llu bytes (not a zip)", r->name,
                        (ull)(r->size - lo));
}

/* Replaces the 32-bit directory fields by the ZIP64 record's when the
 * locator precedes the EOCD at `e`. */
static bn_status read_zip64_eocd(const npz_reader *r, uint64_t e, cd_loc *cd, uint32_t *disks,
                                 bn_error *err) {
    const uint8_t *l = r->base + e - ZIP64_LOCATOR_SIZE;
    uint64_t z = rd64(l + 8);
    if (rd32(l + 16) > 1 || rd32(l + 4) != 0)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported",
                            r->name);
    uint64_t limit = e - ZIP64_LOCATOR_SIZE;
    if (z > limit || limit - z < ZIP64_EOCD_SIZE)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: ZIP64 end record offset %llu (locator at offset %llu) out of range", r->name,
                            (ull)z, (ull)limit);
    const uint8_t *p = r->base + z;
    if (rd32(p) != SIG_ZIP64_EOCD)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: bad ZIP64 end record signature at offset %llu", r->name,
                            (ull)z);
    *disks |= rd32(p + 16) | rd32(p + 20);
    if (rd64(p + 24) != rd64(p + 32)) *disks |= 1;
    cd->count = rd64(p + 32);
    cd->size = rd64(p + 40);
    cd->offset = rd64(p + 48);
    cd->end = z;
    return BN_OK;
}

static bn_status locate_cd(const npz_reader *r, cd_loc *cd, bn_error *err) {
    uint64_t e = 0;
    bn_status st = find_eocd(r, &e, err);
    if (st) return st;
    const uint8_t *p = r->base + e;
    uint32_t disks = rd16(p + 4) | rd16(p + 6);
    if (rd16(p + 8) != rd16(p + 10)) disks |= 1;
    cd->count = rd16(p + 10);
    cd->size = rd32(p + 12);
    cd->offset = rd32(p + 16);
    cd->end = e;
    if (e >= ZIP64_LOCATOR_SIZE && rd32(p - ZIP64_LOCATOR_SIZE) == SIG_ZIP64_LOCATOR) {
        disks = 0; /* the ZIP64 record's fields replace the clamped ones */
        st = read_zip64_eocd(r, e, cd, &disks, err);
        if (st) return st;
    }
    if (disks)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported",
                            r->name);
    if (cd->offset > cd->end || cd->size > cd->end - cd->offset)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: central directory (offset %llu, %llu bytes) runs past its end record "
                            "at offset %llu",
                            r->name, (ull)cd->offset, (ull)cd->size, (ull)cd->end);
    if (cd->count > cd->size / CENTRAL_SIZE || cd->count > (uint64_t)MAX_MEMBERS)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: end record claims %llu members in a %llu-byte central directory", r->name,
                            (ull)cd->count, (ull)cd->size);
    return BN_OK;
}

/* ZIP64 extended information (APPNOTE 4.5.3): 64-bit values of exactly those
 * fields whose 32-bit slots hold 0xFFFFFFFF, in this order. */
static bool parse_zip64_extra(const uint8_t *x, uint32_t len, uint64_t *size, uint64_t *comp, uint64_t *off) {
    uint64_t *fields[3] = {size, comp, off};
    while (len >= 4) {
        uint32_t id = rd16(x), n = rd16(x + 2);
        if (n > len - 4) return false;
        if (id == EXTRA_ZIP64) {
            const uint8_t *q = x + 4;
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != FIELD32_MAX) continue;
                if (q + 8 > x + 4 + n) return false;
                *fields[k] = rd64(q);
                q += 8;
            }
            return true;
        }
        x += 4 + n;
        len -= 4 + n;
    }
    return *size != FIELD32_MAX && *comp != FIELD32_MAX && *off != FIELD32_MAX;
}

/* Parses central entry at `off` into m (name copied to *names); *len = the
 * entry's length. Bounds: the entry lies within the directory. */
static bn_status parse_entry(const npz_reader *r, const cd_loc *cd, int64_t i, uint64_t off, npz_member *m,
                             char **names, uint64_t *len, bn_error *err) {
    uint64_t left = cd->offset + cd->size - off;
    const uint8_t *p = r->base + off;
    if (left < CENTRAL_SIZE || rd32(p) != SIG_CENTRAL)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: central directory entry %lld at offset %llu: %s",
                            r->name, (long long)i, (ull)off,
                            left < CENTRAL_SIZE ? "truncated" : "bad signature");
    uint32_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
    *len = (uint64_t)CENTRAL_SIZE + nlen + xlen + clen;
    if (*len > left || nlen == 0 || memchr(p + CENTRAL_SIZE, 0, nlen))
        return bn_error_set(err, BN_ERR_FORMAT, "%s: central directory entry %lld at offset %llu: %s",
                            r->name, (long long)i, (ull)off,
                            *len > left ? "name/extra fields run past the directory" : "bad name");
    memcpy(*names, p + CENTRAL_SIZE, nlen);
    (*names)[nlen] = '\0';
    m->name = *names;
    *names += nlen + 1;
    m->method = rd16(p + 10);
    m->crc32 = rd32(p + 16);
    m->comp_size = rd32(p + 20);
    m->size = rd32(p + 24);
    m->local_offset = rd32(p + 42);
    if (rd16(p + 8) & FLAG_ENCRYPTED)
        return member_error(r, m, err, BN_ERR_UNSUPPORTED, "encrypted members are not supported");
    if (m->method != METHOD_STORED && m->method != METHOD_DEFLATE)
        return member_error(r, m, err, BN_ERR_UNSUPPORTED, "compression method %u (only stored and deflate)",
                            m->method);
    if (!parse_zip64_extra(p + CENTRAL_SIZE + nlen, xlen, &m->size, &m->comp_size, &m->local_offset))
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "bad or missing ZIP64 extra field (central entry at offset %llu)", (ull)off);
    return BN_OK;
}

/* Size claims that no member data in this file could satisfy. */
static bn_status check_entry_sizes(const npz_reader *r, const npz_member *m, bn_error *err) {
    if (m->local_offset > r->cd_offset || m->comp_size > r->cd_offset - m->local_offset)
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "data (%llu bytes at offset %llu) runs past the central directory at "
                            "offset %llu",
                            (ull)m->comp_size, (ull)m->local_offset, (ull)r->cd_offset);
    if (m->method == METHOD_STORED && m->size != m->comp_size)
        return member_error(r, m, err, BN_ERR_FORMAT, "stored member with size %llu != %llu", (ull)m->size,
                            (ull)m->comp_size);
    if (m->method == METHOD_DEFLATE && m->size / DEFLATE_MAX_RATIO > m->comp_size)
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "declared size %llu is impossible for %llu deflated bytes", (ull)m->size,
                            (ull)m->comp_size);
    return BN_OK;
}

static bn_status index_members(npz_reader *r, bn_error *err) {
    cd_loc cd;
    bn_status st = locate_cd(r, &cd, err);
    if (st) return st;
    r->cd_offset = cd.offset;
    /* Both allocations are bounded by the directory's real size. */
    r->members = calloc(cd.count ? cd.count : 1, sizeof *r->members);
    r->names = malloc(cd.size + 1);
    if (!r->members || !r->names)
        return bn_error_nomem(err, (cd.count ? cd.count : 1) * sizeof *r->members + cd.size + 1,
                              "%s: the central directory of %llu members", r->name, (unsigned long long)cd.count);
    char *names = r->names;
    uint64_t off = cd.offset;
    for (int64_t i = 0; i < (int64_t)cd.count; i++) {
        uint64_t len = 0;
        st = parse_entry(r, &cd, i, off, &r->members[i], &names, &len, err);
        if (!st) st = check_entry_sizes(r, &r->members[i], err);
        if (st) return st;
        r->n = i + 1;
        off += len;
    }
    int64_t dup;
    if (table_build(&r->table, r->members, r->n, r->n, &dup))
        return bn_error_nomem(err, (unsigned long long)r->n * 2 * sizeof(int64_t), "%s: the name table of %lld members",
                              r->name, (long long)r->n);
    if (dup >= 0) return member_error(r, &r->members[dup], err, BN_ERR_FORMAT, "duplicate member name");
    return BN_OK;
}

static bn_status reader_new(const char *name, npz_reader **out, bn_error *err) {
    *out = calloc(1, sizeof **out);
    if (*out) (*out)->fd = -1;
    if (*out) (*out)->name = strdup(name ? name : "(memory)");
    if (!*out || !(*out)->name) {
        free(*out);
        *out = NULL;
        return bn_error_nomem(err, sizeof **out, "%s: the reader", name ? name : "(memory)");
    }
    return BN_OK;
}

static bn_status reader_finish(npz_reader **out, bn_error *err) {
    bn_status st = index_members(*out, err);
    if (st) {
        npz_close(*out);
        *out = NULL;
    }
    return st;
}

bn_status npz_open_memory(const void *buf, size_t size, const char *name, npz_reader **out, bn_error *err) {
    bn_status st = reader_new(name, out, err);
    if (st) return st;
    (*out)->base = buf;
    (*out)->size = size;
    return reader_finish(out, err);
}

/* Maps the regular file open on fd (the caller closes fd) and indexes it. */
static bn_status open_fd(int fd, const char *name, npz_reader **out, bn_error *err) {
    *out = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return bn_error_set(err, BN_ERR_IO, "%s: not a regular file", name);
    void *map = NULL;
    if (sb.st_size > 0) {
        map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) return bn_error_set(err, BN_ERR_IO, "%s: mmap failed: %s", name, strerror(errno));
    }
    bn_status st = reader_new(name, out, err);
    if (st) {
        if (map) munmap(map, (size_t)sb.st_size);
        return st;
    }
    (*out)->base = map;
    (*out)->size = (uint64_t)sb.st_size;
    (*out)->mapped = map != NULL;
    (*out)->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* -1: stored data is read from the mapping */
    return reader_finish(out, err);
}

bn_status npz_open(const char *path, npz_reader **out, bn_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    bn_status st = open_fd(fd, path, out, err);
    close(fd);
    return st;
}

const void *npz_bytes(const npz_reader *r, uint64_t *size) {
    *size = r->size;
    return r->base;
}

void npz_close(npz_reader *r) {
    if (!r) return;
    if (r->mapped) munmap((void *)r->base, (size_t)r->size);
    if (r->fd >= 0) close(r->fd);
    free(r->members);
    free(r->names);
    free(r->table.slots);
    free(r->name);
    free(r);
}

const char *npz_path(const npz_reader *r) { return r->name; }
uint64_t npz_file_size(const npz_reader *r) { return r->size; }
int64_t npz_count(const npz_reader *r) { return r->n; }

const npz_member *npz_member_at(const npz_reader *r, int64_t i) {
    return i >= 0 && i < r->n ? &r->members[i] : NULL;
}

int64_t npz_find(const npz_reader *r, const char *name) { return table_find(&r->table, r->members, name); }

/* --- member extraction ---------------------------------------------------- */
/* Where inflated bytes go: [0, skip) are produced and checksummed but not
 * delivered (a .npy header), [skip, want) go to dst or fn. */
typedef struct sink {
    uint64_t skip;
    uint64_t want; /* <= member size */
    uint8_t *dst;  /* receives [skip, want) when not NULL */
    npz_chunk_fn fn;
    void *ud;
    bool full; /* want == size: check the stream end and the CRC */
} sink;

/* Delivers bytes [pos, pos + n) of the member, minus the skipped prefix. */
static bn_status deliver(const sink *s, uint64_t pos, const uint8_t *p, size_t n, bn_error *err) {
    if (pos + n <= s->skip) return BN_OK;
    size_t off = pos < s->skip ? (size_t)(s->skip - pos) : 0;
    if (s->dst) {
        if (p + off != s->dst + (pos + off - s->skip))
            memcpy(s->dst + (pos + off - s->skip), p + off, n - off);
        return BN_OK;
    }
    return s->fn(s->ud, p + off, n - off, err);
}

/* Validates the local header and returns the member's data in the file. */
static bn_status member_data(const npz_reader *r, const npz_member *m, const uint8_t **data, bn_error *err) {
    uint64_t lo = m->local_offset;
    if (lo > r->cd_offset || r->cd_offset - lo < LOCAL_SIZE)
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "local header offset %llu past the central "
                            "directory at offset %llu",
                            (ull)lo, (ull)r->cd_offset);
    const uint8_t *p = r->base + lo;
    uint32_t nlen = rd16(p + 26), xlen = rd16(p + 28);
    uint64_t start = lo + LOCAL_SIZE + nlen + xlen;
    if (rd32(p) != SIG_LOCAL)
        return member_error(r, m, err, BN_ERR_FORMAT, "bad local header signature at offset %llu", (ull)lo);
    if (start > r->cd_offset || m->comp_size > r->cd_offset - start)
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "data (%llu bytes at offset %llu) runs past the central directory at "
                            "offset %llu",
                            (ull)m->comp_size, (ull)start, (ull)r->cd_offset);
    if (nlen != strlen(m->name) || memcmp(p + LOCAL_SIZE, m->name, nlen) != 0 || rd16(p + 8) != m->method)
        return member_error(r, m, err, BN_ERR_FORMAT,
                            "local header at offset %llu disagrees with the central directory", (ull)lo);
    *data = r->base + start;
    return BN_OK;
}

static bn_status check_crc(const npz_reader *r, const npz_member *m, uint32_t crc, bn_error *err) {
    if (crc == m->crc32) return BN_OK;
    return member_error(r, m, err, BN_ERR_FORMAT, "CRC-32 mismatch (computed %08x, stored %08x)",
                        (unsigned)crc, (unsigned)m->crc32);
}

/* n bytes at file offset off into dst, through the kernel's copy. */
static bn_status pread_all(const npz_reader *r, const npz_member *m, uint8_t *dst, size_t n, uint64_t off,
                           bn_error *err) {
    while (n) {
        const ssize_t got = pread(r->fd, dst, n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return member_error(r, m, err, BN_ERR_IO, "read at offset %llu failed: %s", (ull)off,
                                got < 0 ? strerror(errno) : "the file is shorter than when it was opened");
        dst += got, n -= (size_t)got, off += (uint64_t)got;
    }
    return BN_OK;
}

/* A stored member's bytes, checksummed piece by piece while in cache. From
 * a file they are read with pread, not from the mapping: the first touch of
 * page-cache pages through a fresh mapping runs at ~2 GB/s on these VMs
 * (each 4 KiB page a separate stream for the prefetcher and the TLB), the
 * kernel's copy at ~7 GB/s, and `compare` reads every byte of two traces. */
static bn_status extract_stored(const npz_reader *r, const npz_member *m, const uint8_t *data, const sink *s,
                                bn_error *err) {
    uint32_t crc = 0;
    uint8_t *tmp = NULL;
    bn_status st = BN_OK;
    for (uint64_t pos = 0; pos < s->want && !st;) {
        size_t n = (size_t)min64(s->want - pos, CHUNK);
        const uint8_t *bytes = data + pos;
        if (r->fd >= 0) {
            const uint64_t off = (uint64_t)(data - r->base) + pos;
            if (s->dst && pos >= s->skip) { /* straight into the caller's buffer */
                uint8_t *dst = s->dst + (pos - s->skip);
                if ((st = pread_all(r, m, dst, n, off, err))) break;
                bytes = dst;
            } else {
                if (!tmp && !(tmp = malloc(CHUNK))) {
                    st = member_error(r, m, err, BN_ERR_NOMEM, "cannot allocate %zu bytes to read into", CHUNK);
                    break;
                }
                if (s->dst && pos + n > s->skip) n = (size_t)(s->skip - pos); /* up to the array data */
                if ((st = pread_all(r, m, tmp, n, off, err))) break;
                bytes = tmp;
            }
        }
        if (s->full) crc = libdeflate_crc32(crc, bytes, n);
        st = deliver(s, pos, bytes, n, err);
        pos += n;
    }
    free(tmp);
    if (st) return st;
    return s->full ? check_crc(r, m, crc, err) : BN_OK;
}

/* One inflate step's output area: into the caller's buffer when the bytes
 * are delivered there, else into tmp; a 1-byte probe once `want` bytes are
 * out, to see that the stream really ends there. */
static size_t next_out(const sink *s, uint64_t pos, uint8_t *tmp, uint8_t *probe, uint8_t **out) {
    uint64_t left = s->want - pos;
    if (left == 0) {
        *out = probe;
        return 1;
    }
    if (pos < s->skip) {
        *out = tmp;
        return (size_t)min64(min64(left, s->skip - pos), CHUNK);
    }
    *out = s->dst ? s->dst + (pos - s->skip) : tmp;
    return (size_t)min64(left, CHUNK);
}

static bn_status extract_deflate(const npz_reader *r, const npz_member *m, const uint8_t *data, const sink *s,
                                 bn_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    uint8_t *tmp = (!s->dst || s->skip) ? malloc(CHUNK) : NULL;
    if ((!s->dst || s->skip) && !tmp) {
        bn_error_nomem(err, CHUNK, "%s: member '%s': the inflate buffer", r->name, m->name);
        return BN_ERR_NOMEM;
    }
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        free(tmp);
        return member_error(r, m, err, BN_ERR_NOMEM, "zlib inflateInit2 failed");
    }
    uint32_t crc = 0;
    uint64_t pos = 0, in_pos = 0;
    uint8_t probe;
    bn_status st = BN_OK;
    for (;;) {
        if (z.avail_in == 0 && in_pos < m->comp_size) {
            z.next_in = (Bytef *)(uintptr_t)(data + in_pos);
            z.avail_in = (uInt)min64(m->comp_size - in_pos, (uint64_t)1 << 30);
            in_pos += z.avail_in;
        }
        if (pos == s->want && !s->full) break;
        uint8_t *out;
        size_t room = next_out(s, pos, tmp, &probe, &out);
        z.next_out = out;
        z.avail_out = (uInt)room;
        int ret = inflate(&z, Z_NO_FLUSH);
        size_t got = room - z.avail_out;
        if (out == &probe && got) {
            st = member_error(r, m, err, BN_ERR_FORMAT, "inflates to more than the declared %llu bytes",
                              (ull)m->size);
            break;
        }
        if (s->full && got) crc = libdeflate_crc32(crc, out, got);
        if (out == tmp && got && (st = deliver(s, pos, out, got, err))) break;
        pos += got;
        if (ret == Z_STREAM_END) {
            if (pos < s->want)
                st = member_error(r, m, err, BN_ERR_FORMAT, "inflates to %llu bytes, declared %llu", (ull)pos,
                                  (ull)m->size);
            break;
        }
        if (ret == Z_BUF_ERROR && z.avail_in == 0 && in_pos == m->comp_size) {
            st = member_error(r, m, err, BN_ERR_FORMAT, "deflate stream truncated after %llu of %llu bytes",
                              (ull)pos, (ull)m->size);
            break;
        }
        if (ret != Z_OK) {
            st = member_error(r, m, err, BN_ERR_FORMAT, "bad deflate stream after %llu bytes: %s", (ull)pos,
                              z.msg ? z.msg : "zlib error");
            break;
        }
    }
    inflateEnd(&z);
    free(tmp);
    if (!st && s->full) st = check_crc(r, m, crc, err);
    return st;
}

static bn_status extract(const npz_reader *r, int64_t i, sink *s, bn_error *err) {
    const npz_member *m = npz_member_at(r, i);
    if (!m)
        return bn_error_set(err, BN_ERR_INVALID, "%s: member index %lld out of range (%lld members)", r->name,
                            (long long)i, (long long)r->n);
    const uint8_t *data = NULL;
    bn_status st = member_data(r, m, &data, err);
    if (st) return st;
    if (s->want > m->size) s->want = m->size;
    s->full = s->want == m->size;
    return m->method == METHOD_STORED ? extract_stored(r, m, data, s, err)
                                      : extract_deflate(r, m, data, s, err);
}

bn_status npz_read(const npz_reader *r, int64_t i, void *dst, uint64_t cap, bn_error *err) {
    const npz_member *m = npz_member_at(r, i);
    if (m && cap < m->size)
        return member_error(r, m, err, BN_ERR_INVALID, "buffer of %llu bytes for %llu bytes", (ull)cap,
                            (ull)m->size);
    sink s = {.want = m ? m->size : 0, .dst = dst};
    return extract(r, i, &s, err);
}

bn_status npz_read_chunks(const npz_reader *r, int64_t i, npz_chunk_fn fn, void *ud, bn_error *err) {
    const npz_member *m = npz_member_at(r, i);
    sink s = {.want = m ? m->size : 0, .fn = fn, .ud = ud};
    return extract(r, i, &s, err);
}

bn_status npz_read_prefix(const npz_reader *r, int64_t i, void *dst, uint64_t n, uint64_t *got,
                          bn_error *err) {
    sink s = {.want = n, .dst = dst};
    *got = 0;
    bn_status st = extract(r, i, &s, err);
    if (!st) *got = s.want;
    return st;
}

/* --- .npy headers --------------------------------------------------------- */
/* A cursor over the header's Python dict literal. */
typedef struct cursor {
    const char *p, *end;
    const char *start;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool eat_word(cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* A quoted Python string without escapes into out[cap]. */
static bool parse_pystr(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[n] = '\0';
    return true;
}

/* "(a, b, c)" with an optional trailing comma; "()" is a scalar. */
static bool parse_shape(cursor *c, npz_array_info *info) {
    if (!eat(c, '(')) return false;
    info->ndim = 0;
    while (!eat(c, ')')) {
        skip_ws(c);
        if (info->ndim == NPZ_MAX_DIMS || c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return false;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 longs */
        info->shape[info->ndim++] = v;
        if (!eat(c, ',')) {
            if (!eat(c, ')')) return false;
            break;
        }
    }
    return true;
}

static bn_status header_error(const char *what, const cursor *c, bn_error *err, const char *why) {
    return bn_error_set(err, BN_ERR_FORMAT, "%s: bad .npy header near byte %d: %s (header: %.*s)", what,
                        (int)(c->p - c->start), why, (int)(c->end - c->start > 120 ? 120 : c->end - c->start),
                        c->start);
}

static bn_status parse_descr(const char *what, const char *d, npz_dtype *out, bn_error *err) {
    for (int t = 0; t < NPZ_DTYPE_COUNT; t++) {
        const char *want = dtype_table[t].descr;
        /* Byte order is meaningless for one byte: numpy writes '|', allow '<'. */
        if (strcmp(d, want) == 0 ||
            (dtype_table[t].size == 1 && d[0] == '<' && strcmp(d + 1, want + 1) == 0)) {
            *out = (npz_dtype)t;
            return BN_OK;
        }
    }
    const char *why = d[0] == '>' ? "big-endian data" : strchr(d, 'O') ? "object arrays" : "this dtype";
    return bn_error_set(err, BN_ERR_UNSUPPORTED,
                        "%s: dtype '%s' not supported (%s; supported: <f4 <f2 |i1 <i4 <f8)", what, d, why);
}

/* Parses the dict literal: exactly the keys descr, fortran_order, shape. */
static bn_status parse_dict(const char *what, cursor *c, npz_array_info *info, bn_error *err) {
    char key[32], descr[64] = "";
    int seen = 0; /* bit 0 descr, 1 fortran_order, 2 shape */
    bool fortran = false;
    if (!eat(c, '{')) return header_error(what, c, err, "expected '{'");
    while (!eat(c, '}')) {
        if (!parse_pystr(c, key, sizeof key) || !eat(c, ':'))
            return header_error(what, c, err, "expected a quoted key and ':'");
        int bit = strcmp(key, "descr") == 0           ? 1
                  : strcmp(key, "fortran_order") == 0 ? 2
                  : strcmp(key, "shape") == 0         ? 4
                                                      : 0;
        if (!bit || (seen & bit)) return header_error(what, c, err, "unknown or repeated key");
        seen |= bit;
        bool ok = bit == 1   ? parse_pystr(c, descr, sizeof descr)
                  : bit == 2 ? ((fortran = eat_word(c, "True")) || eat_word(c, "False"))
                             : parse_shape(c, info);
        if (!ok)
            return header_error(what, c, err,
                                bit == 1   ? "descr must be a simple dtype string (no structured dtypes)"
                                : bit == 2 ? "fortran_order must be True or False"
                                           : "shape must be a tuple of at most 8 integers");
        if (!eat(c, ',')) {
            if (!eat(c, '}')) return header_error(what, c, err, "expected ',' or '}'");
            break;
        }
    }
    skip_ws(c);
    if (c->p != c->end) return header_error(what, c, err, "junk after the dict");
    if (seen != 7) return header_error(what, c, err, "missing key (need descr, fortran_order, shape)");
    if (fortran)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: fortran_order arrays are not supported", what);
    return parse_descr(what, descr, &info->dtype, err);
}

/* nelem and nbytes of the shape, refusing products that overflow. */
static bn_status shape_size(const char *what, npz_array_info *info, bn_error *err) {
    uint64_t isz = npz_dtype_size(info->dtype);
    int64_t n = 1;
    for (int d = 0; d < info->ndim; d++) {
        int64_t v = info->shape[d];
        if (v != 0 && n > INT64_MAX / (int64_t)isz / v)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: shape product overflows at dim %d (%lld)", what, d,
                                (long long)v);
        n *= v;
    }
    for (int d = info->ndim; d < NPZ_MAX_DIMS; d++) info->shape[d] = 1;
    info->nelem = n;
    info->nbytes = (uint64_t)n * isz;
    return BN_OK;
}

bn_status npz_parse_npy_header(const void *buf, size_t len, uint64_t member_size, const char *what,
                               npz_array_info *info, bn_error *err) {
    const uint8_t *b = buf;
    memset(info, 0, sizeof *info);
    if (len < 10 || memcmp(b, NPY_MAGIC, 6) != 0)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: not a .npy array (bad magic)", what);
    uint64_t pre, hlen;
    if (b[6] == 1) {
        pre = 10, hlen = rd16(b + 8);
    } else if ((b[6] == 2 || b[6] == 3) && len >= 12) {
        pre = 12, hlen = rd32(b + 8);
    } else {
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: .npy format %u.%u not supported", what, b[6], b[7]);
    }
    if (pre + hlen > member_size)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: .npy header of %llu bytes runs past the %llu-byte member", what,
                            (ull)(pre + hlen), (ull)member_size);
    if (pre + hlen > len)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: .npy header of %llu bytes is truncated (have %llu)",
                            what, (ull)(pre + hlen), (ull)len);
    cursor c = {(const char *)b + pre, (const char *)b + pre + hlen, (const char *)b + pre};
    bn_status st = parse_dict(what, &c, info, err);
    if (!st) st = shape_size(what, info, err);
    if (st) return st;
    info->data_offset = pre + hlen;
    if (member_size - info->data_offset != info->nbytes)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: shape of %lld %s elements needs %llu data bytes, the member holds %llu",
                            what, (long long)info->nelem, dtype_table[info->dtype].descr, (ull)info->nbytes,
                            (ull)(member_size - info->data_offset));
    return BN_OK;
}

bn_status npz_array_info_at(const npz_reader *r, int64_t i, npz_array_info *info, bn_error *err) {
    const npz_member *m = npz_member_at(r, i);
    if (!m)
        return bn_error_set(err, BN_ERR_INVALID, "%s: member index %lld out of range", r->name, (long long)i);
    char what[BN_ERROR_MSG_MAX / 2];
    snprintf(what, sizeof what, "%s: member '%s'", r->name, m->name);
    uint8_t small[4096], *buf = small;
    uint64_t got;
    bn_status st = npz_read_prefix(r, i, small, sizeof small, &got, err);
    if (st) return st;
    /* Longer headers are legal (format 2.0+): read exactly as much as the
     * header says, within a sane cap. */
    if (got >= 12 && memcmp(small, NPY_MAGIC, 6) == 0 && small[6] >= 2 && small[6] <= 3) {
        uint64_t need = 12 + (uint64_t)rd32(small + 8);
        if (need > got && need <= NPY_MAX_HEADER && need <= m->size) {
            if (!(buf = malloc(need))) return bn_error_nomem(err, need, "%s: the .npy header", what);
            st = npz_read_prefix(r, i, buf, need, &got, err);
        }
    }
    if (!st) st = npz_parse_npy_header(buf, (size_t)got, m->size, what, info, err);
    if (buf != small) free(buf);
    return st;
}

bn_status npz_read_array_data(const npz_reader *r, int64_t i, const npz_array_info *info, void *dst,
                              bn_error *err) {
    sink s = {.skip = info->data_offset, .want = info->data_offset + info->nbytes, .dst = dst};
    const npz_member *m = npz_member_at(r, i);
    if (m && s.want != m->size)
        return member_error(r, m, err, BN_ERR_INVALID, "array info does not describe this member");
    return extract(r, i, &s, err);
}

bn_status npz_load_array(const npz_reader *r, int64_t i, npz_array *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    bn_status st = npz_array_info_at(r, i, &out->info, err);
    if (st) return st;
    /* nbytes equals the member's size minus its header, itself bounded by
     * the compressed size and the deflate ratio. */
    out->data = malloc(out->info.nbytes ? out->info.nbytes : 1);
    if (!out->data)
        return bn_error_nomem(err, (ull)out->info.nbytes, "%s: member '%s': its array", r->name,
                              npz_member_at(r, i)->name);
    st = npz_read_array_data(r, i, &out->info, out->data, err);
    if (st) npz_array_free(out);
    return st;
}

/* --- writer --------------------------------------------------------------- */
struct npz_writer {
    bn_atomic_file *file; /* renamed onto path by a successful close, or anonymous */
    FILE *f;              /* its stream */
    char *path;
    char *fbuf; /* [WRITE_BUF] stdio buffer */
    npz_compression comp;
    bool anonymous;      /* an in-memory file (npz_writer_open_anonymous) */
    bool failed;         /* a write failed: close fails and publishes nothing */
    uint64_t pos;        /* bytes written so far */
    npz_member *entries; /* [n] central directory, names malloc'ed */
    int64_t n, cap;
    name_table table;
    z_stream z; /* reused across members (deflateReset) */
    bool z_ready;
    uint8_t *zout; /* [CHUNK] deflate output */
    /* the member being written */
    npz_member cur;
    bool cur_zip64;     /* local header carries a ZIP64 extra field */
    uint64_t cur_start; /* offset of its data */
    uint64_t cur_in;    /* uncompressed bytes so far */
    uint32_t cur_crc;
    bool cur_known;          /* stored member with its CRC computed up front: header final, no patch */
    uint32_t cur_known_crc;
};

static bn_status w_fail(npz_writer *w, bn_error *err, bn_status code, const char *what) {
    w->failed = true;
    return bn_error_set(err, code, "%s: %s: %s", w->path, what,
                        code == BN_ERR_IO ? strerror(errno) : "failed");
}

/* Every byte goes through here: the atomic file polls cancellation per MiB. */
static bn_status w_write(npz_writer *w, const void *p, size_t n, bn_error *err) {
    bn_status st = bn_atomic_file_write(w->file, p, n, err);
    if (st) {
        w->failed = true;
        return st;
    }
    w->pos += n;
    return BN_OK;
}

/* The writer over a file of either kind: `path` names it (in messages only
 * when anonymous). */
static bn_status writer_open(const char *path, bool anonymous, npz_compression comp, npz_writer **out,
                             bn_error *err) {
    *out = NULL;
    npz_writer *w = calloc(1, sizeof *w);
    if (!w) return bn_error_nomem(err, sizeof *w, "%s: the npz writer", path);
    w->comp = comp;
    w->path = strdup(path);
    w->fbuf = malloc(WRITE_BUF);
    w->zout = malloc(CHUNK);
    if (!w->path || !w->fbuf || !w->zout) {
        npz_writer_abort(w);
        return bn_error_nomem(err, WRITE_BUF + CHUNK + strlen(path) + 1, "%s: the npz writer's buffers", path);
    }
    if (comp == NPZ_DEFLATE_FAST) {
        if (deflateInit2(&w->z, 1, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            npz_writer_abort(w);
            return bn_error_set(err, BN_ERR_NOMEM, "%s: zlib deflateInit2 failed", path);
        }
        w->z_ready = true;
    }
    bn_status st = anonymous ? bn_atomic_file_open_anonymous(path, &w->file, err)
                             : bn_atomic_file_open(path, &w->file, err);
    if (st) {
        npz_writer_abort(w);
        return st;
    }
    w->anonymous = anonymous;
    w->f = bn_atomic_file_stream(w->file);
    setvbuf(w->f, w->fbuf, _IOFBF, WRITE_BUF);
    *out = w;
    return BN_OK;
}

bn_status npz_writer_open(const char *path, npz_compression comp, npz_writer **out, bn_error *err) {
    return writer_open(path, false, comp, out, err);
}

bn_status npz_writer_open_anonymous(const char *name, npz_compression comp, npz_writer **out, bn_error *err) {
    return writer_open(name && *name ? name : "(in memory)", true, comp, out, err);
}

void npz_writer_set_cancel(npz_writer *w, const volatile sig_atomic_t *cancel) {
    bn_atomic_file_set_cancel(w->file, cancel);
}

bn_status npz_writer_write_behind(npz_writer *w, size_t buffer_bytes, bn_error *err) {
    return bn_atomic_file_write_behind(w->file, buffer_bytes, err);
}

int64_t npz_writer_count(const npz_writer *w) { return w->n; }

static bool name_is_utf8(const char *s) {
    for (; *s; s++)
        if ((uint8_t)*s >= 0x80) return true;
    return false;
}

/* Writes the local header. A stored member whose CRC is known (crc_known:
 * add_member had all its bytes) gets its final CRC and sizes at once, so
 * nothing is patched and the stream is never flushed per member: a trace's
 * thousands of small taps then reach the file in the stdio buffer's large
 * writes (page-cache writes of 64 KiB run at a sixth of the speed of 1 MiB
 * ones here). Otherwise zero CRC/sizes, patched by member_end. */
static bn_status member_begin(npz_writer *w, const char *name, uint64_t size, bool crc_known, uint32_t crc,
                              bn_error *err) {
    size_t nlen = name ? strlen(name) : 0;
    if (w->failed) return bn_error_set(err, BN_ERR_INVALID, "%s: writer already failed", w->path);
    if (nlen == 0 || nlen > FIELD16_MAX)
        return bn_error_set(err, BN_ERR_INVALID, "%s: member name must have 1..65535 bytes", w->path);
    if (table_find(&w->table, w->entries, name) >= 0)
        return bn_error_set(err, BN_ERR_INVALID, "%s: duplicate member '%s'", w->path, name);
    memset(&w->cur, 0, sizeof w->cur);
    if (!(w->cur.name = strdup(name))) {
        w->failed = true;
        return bn_error_nomem(err, strlen(name) + 1, "%s: member name '%s'", w->path, name);
    }
    w->cur.method = w->comp == NPZ_STORED ? METHOD_STORED : METHOD_DEFLATE;
    w->cur.size = size;
    w->cur.local_offset = w->pos;
    uint64_t bound = w->comp == NPZ_STORED ? size : deflateBound(&w->z, size);
    w->cur_zip64 = bound >= FIELD32_MAX;
    w->cur_in = 0;
    w->cur_crc = 0;
    w->cur_known = crc_known && w->comp == NPZ_STORED;
    w->cur_known_crc = crc;
    const bool final = w->cur_known;
    uint8_t h[LOCAL_SIZE + 20], *p = h;
    p = wr32(p, SIG_LOCAL);
    p = wr16(p, w->cur_zip64 ? 45 : 20);
    p = wr16(p, name_is_utf8(name) ? FLAG_UTF8 : 0);
    p = wr16(p, w->cur.method);
    p = wr16(p, 0);
    p = wr16(p, DOS_DATE_1980);
    p = wr32(p, final ? crc : 0);
    p = wr32(p, w->cur_zip64 ? FIELD32_MAX : final ? (uint32_t)size : 0);
    p = wr32(p, w->cur_zip64 ? FIELD32_MAX : final ? (uint32_t)size : 0);
    p = wr16(p, (uint32_t)nlen);
    p = wr16(p, w->cur_zip64 ? 20 : 0);
    bn_status st = w_write(w, h, LOCAL_SIZE, err);
    if (!st) st = w_write(w, name, nlen, err);
    if (!st && w->cur_zip64) {
        p = wr16(wr16(h, EXTRA_ZIP64), 16);
        p = wr64(wr64(p, final ? size : 0), final ? size : 0);
        st = w_write(w, h, 20, err);
    }
    w->cur_start = w->pos;
    return st;
}

/* Runs deflate over the pending input with `flush`, writing full buffers. */
static bn_status deflate_pump(npz_writer *w, int flush, bn_error *err) {
    for (;;) {
        w->z.next_out = w->zout;
        w->z.avail_out = (uInt)CHUNK;
        int ret = deflate(&w->z, flush);
        if (ret == Z_STREAM_ERROR) return w_fail(w, err, BN_ERR_INTERNAL, "zlib deflate");
        bn_status st = w_write(w, w->zout, CHUNK - w->z.avail_out, err);
        if (st) return st;
        if (flush == Z_FINISH ? ret == Z_STREAM_END : (w->z.avail_in == 0 && w->z.avail_out != 0))
            return BN_OK;
    }
}

static bn_status member_write(npz_writer *w, const void *data, uint64_t n, bn_error *err) {
    const uint8_t *p = data;
    if (n && !w->cur_known) w->cur_crc = libdeflate_crc32(w->cur_crc, p, (size_t)n);
    w->cur_in += n;
    if (w->comp == NPZ_STORED) return w_write(w, p, (size_t)n, err);
    while (n) {
        uInt k = (uInt)min64(n, (uint64_t)1 << 30);
        w->z.next_in = (Bytef *)(uintptr_t)p;
        w->z.avail_in = k;
        bn_status st = deflate_pump(w, Z_NO_FLUSH, err);
        if (st) return st;
        p += k;
        n -= k;
    }
    return BN_OK;
}

static bn_status patch(npz_writer *w, uint64_t off, const uint8_t *b, size_t n, bn_error *err) {
    bn_status st = bn_atomic_file_flush(w->file, err);
    if (st) {
        w->failed = true;
        return st;
    }
    if (pwrite(fileno(w->f), b, n, (off_t)off) != (ssize_t)n)
        return w_fail(w, err, BN_ERR_IO, "patching a local header failed");
    return BN_OK;
}

/* Finishes the stream, patches the local header, records the entry. */
static bn_status member_end(npz_writer *w, bn_error *err) {
    bn_status st = BN_OK;
    if (w->comp != NPZ_STORED) {
        w->z.avail_in = 0;
        st = deflate_pump(w, Z_FINISH, err);
        deflateReset(&w->z);
    }
    if (st) return st;
    npz_member *m = &w->cur;
    m->crc32 = w->cur_known ? w->cur_known_crc : w->cur_crc;
    m->comp_size = w->pos - w->cur_start;
    if (w->cur_in != m->size) return w_fail(w, err, BN_ERR_INTERNAL, "member size bookkeeping");
    if (!w->cur_zip64 && m->comp_size >= FIELD32_MAX) return w_fail(w, err, BN_ERR_INTERNAL, "deflate bound");
    if (w->cur_known && m->comp_size != m->size) return w_fail(w, err, BN_ERR_INTERNAL, "stored size bookkeeping");
    uint8_t b[16];
    wr32(wr32(wr32(b, m->crc32), w->cur_zip64 ? FIELD32_MAX : (uint32_t)m->comp_size),
         w->cur_zip64 ? FIELD32_MAX : (uint32_t)m->size);
    if (!w->cur_known) st = patch(w, m->local_offset + 14, b, 12, err);
    if (!st && !w->cur_known && w->cur_zip64) {
        wr64(wr64(b, m->size), m->comp_size);
        st = patch(w, m->local_offset + LOCAL_SIZE + strlen(m->name) + 4, b, 16, err);
    }
    if (st) return st;
    if (w->n == w->cap) {
        int64_t cap = w->cap ? w->cap * 2 : 64;
        npz_member *e = realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e) {
            w->failed = true;
            return bn_error_nomem(err, (size_t)cap * sizeof *e, "%s: the directory of %lld members", w->path,
                                  (long long)cap);
        }
        w->entries = e;
        w->cap = cap;
        int64_t dup;
        if (table_build(&w->table, w->entries, w->n, cap, &dup)) {
            w->failed = true;
            return bn_error_nomem(err, (size_t)cap * 2 * sizeof(int64_t), "%s: the name table of %lld members",
                                  w->path, (long long)cap);
        }
    }
    w->entries[w->n] = *m;
    w->table.slots[table_slot(&w->table, w->entries, m->name)] = w->n + 1;
    w->n++;
    m->name = NULL; /* now owned by entries */
    return BN_OK;
}

/* begin + the pieces + end, freeing the pending name on failure. */
static bn_status add_member(npz_writer *w, const char *name, const void *const *parts, const uint64_t *sizes,
                            int nparts, bn_error *err) {
    uint64_t total = 0;
    uint32_t crc = 0;
    for (int k = 0; k < nparts; k++) total += sizes[k];
    if (w->comp == NPZ_STORED) /* the CRC first: the header is then final (member_begin) */
        for (int k = 0; k < nparts; k++)
            if (sizes[k]) crc = libdeflate_crc32(crc, parts[k], (size_t)sizes[k]);
    bn_status st = member_begin(w, name, total, w->comp == NPZ_STORED, crc, err);
    for (int k = 0; k < nparts && !st; k++) st = member_write(w, parts[k], sizes[k], err);
    if (!st) st = member_end(w, err);
    if (st) {
        free((char *)w->cur.name);
        w->cur.name = NULL;
    }
    return st;
}

bn_status npz_writer_add_bytes(npz_writer *w, const char *name, const void *data, uint64_t n, bn_error *err) {
    return add_member(w, name, &data, &n, 1, err);
}

/* numpy's own layout: dict literal padded with spaces to a multiple of 64
 * bytes, ending in '\n'. At most 8 dims keep it well within format 1.0. */
static size_t npy_header(npz_dtype dt, const int64_t *shape, int ndim, char *h, size_t cap) {
    memcpy(h, NPY_MAGIC "\x01\x00", 8);
    int n = 10 + snprintf(h + 10, cap - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                          dtype_table[dt].descr);
    for (int d = 0; d < ndim; d++)
        n += snprintf(h + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    n += snprintf(h + n, cap - (size_t)n, ndim == 1 ? ",), }" : "), }");
    size_t total = ((size_t)n + 1 + 63) / 64 * 64;
    memset(h + n, ' ', total - (size_t)n - 1);
    h[total - 1] = '\n';
    wr16((uint8_t *)h + 8, (uint32_t)(total - 10));
    return total;
}

bn_status npz_writer_add_array(npz_writer *w, const char *name, npz_dtype dtype, const int64_t *shape,
                               int ndim, const void *data, bn_error *err) {
    if ((unsigned)dtype >= NPZ_DTYPE_COUNT || ndim < 0 || ndim > NPZ_MAX_DIMS || (ndim && !shape))
        return bn_error_set(err, BN_ERR_INVALID, "%s: member '%s': bad dtype or ndim %d", w->path,
                            name ? name : "", ndim);
    npz_array_info info = {.dtype = dtype, .ndim = ndim};
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return bn_error_set(err, BN_ERR_INVALID, "%s: member '%s': negative dim %d", w->path, name, d);
        info.shape[d] = shape[d];
    }
    char what[BN_ERROR_MSG_MAX / 2];
    snprintf(what, sizeof what, "%s: member '%s'", w->path, name ? name : "");
    bn_status st = shape_size(what, &info, err);
    if (st) return st;
    if (info.nbytes && !data) return bn_error_set(err, BN_ERR_INVALID, "%s: no data", what);
    char h[512];
    size_t hlen = npy_header(dtype, shape, ndim, h, sizeof h);
    const void *parts[2] = {h, data};
    uint64_t sizes[2] = {hlen, info.nbytes};
    return add_member(w, name, parts, sizes, 2, err);
}

static bn_status write_central(npz_writer *w, const npz_member *m, bn_error *err) {
    uint64_t big[3] = {m->size, m->comp_size, m->local_offset};
    uint8_t h[CENTRAL_SIZE], x[4 + 24], *q = x + 4;
    for (int k = 0; k < 3; k++)
        if (big[k] >= FIELD32_MAX) q = wr64(q, big[k]);
    size_t xlen = q == x + 4 ? 0 : (size_t)(q - x);
    wr16(wr16(x, EXTRA_ZIP64), (uint32_t)(xlen ? xlen - 4 : 0));
    uint32_t version = xlen ? 45 : 20;
    size_t nlen = strlen(m->name);
    uint8_t *p = h;
    p = wr32(p, SIG_CENTRAL);
    p = wr16(p, 3u << 8 | version); /* made by: Unix */
    p = wr16(p, version);
    p = wr16(p, name_is_utf8(m->name) ? FLAG_UTF8 : 0);
    p = wr16(p, m->method);
    p = wr16(p, 0);
    p = wr16(p, DOS_DATE_1980);
    p = wr32(p, m->crc32);
    p = wr32(p, clamp32(m->comp_size));
    p = wr32(p, clamp32(m->size));
    p = wr16(p, (uint32_t)nlen);
    p = wr16(p, (uint32_t)xlen);
    p = wr16(p, 0);
    p = wr16(p, 0);
    p = wr16(p, 0);
    p = wr32(p, 0100644u << 16); /* rw-r--r-- regular file */
    wr32(p, clamp32(m->local_offset));
    bn_status st = w_write(w, h, CENTRAL_SIZE, err);
    if (!st) st = w_write(w, m->name, nlen, err);
    if (!st) st = w_write(w, x, xlen, err);
    return st;
}

static bn_status write_end_records(npz_writer *w, uint64_t cd_offset, bn_error *err) {
    uint64_t cd_size = w->pos - cd_offset, count = (uint64_t)w->n;
    uint8_t b[ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE + EOCD_SIZE], *p = b;
    if (count > FIELD16_MAX || cd_offset >= FIELD32_MAX || cd_size >= FIELD32_MAX) {
        uint64_t z = w->pos;
        p = wr32(p, SIG_ZIP64_EOCD);
        p = wr64(p, ZIP64_EOCD_SIZE - 12);
        p = wr16(p, 3u << 8 | 45);
        p = wr16(p, 45);
        p = wr64(p, 0); /* this disk, directory disk */
        p = wr64(wr64(p, count), count);
        p = wr64(wr64(p, cd_size), cd_offset);
        p = wr32(p, SIG_ZIP64_LOCATOR);
        p = wr32(p, 0);
        p = wr64(p, z);
        p = wr32(p, 1);
    }
    p = wr32(p, SIG_EOCD);
    p = wr32(p, 0);
    p = wr16(p, count > FIELD16_MAX ? FIELD16_MAX : (uint32_t)count);
    p = wr16(p, count > FIELD16_MAX ? FIELD16_MAX : (uint32_t)count);
    p = wr32(p, clamp32(cd_size));
    p = wr32(p, clamp32(cd_offset));
    p = wr16(p, 0);
    return w_write(w, b, (size_t)(p - b), err);
}

static void writer_free(npz_writer *w) {
    for (int64_t i = 0; i < w->n; i++) free((char *)w->entries[i].name);
    free((char *)w->cur.name);
    if (w->z_ready) deflateEnd(&w->z);
    free(w->entries);
    free(w->table.slots);
    free(w->zout);
    free(w->path);
    free(w->fbuf);
    free(w);
}

/* Writes the central directory and ends the file: published at its path,
 * or (fd != NULL, anonymous) handed over as a descriptor. Frees w. */
static bn_status writer_finish(npz_writer *w, int *fd, bn_error *err) {
    bn_status st =
        w->failed ? bn_error_set(err, BN_ERR_INVALID, "%s: an earlier write failed", w->path) : BN_OK;
    uint64_t cd_offset = w->pos;
    for (int64_t i = 0; i < w->n && !st; i++) st = write_central(w, &w->entries[i], err);
    if (!st) st = write_end_records(w, cd_offset, err);
    if (st) bn_atomic_file_abort(w->file);
    else if (fd) st = bn_atomic_file_commit_fd(w->file, fd, err);
    else st = bn_atomic_file_commit(w->file, err);
    w->file = NULL;
    writer_free(w);
    return st;
}

bn_status npz_writer_close(npz_writer *w, bn_error *err) {
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "npz_writer_close: NULL writer");
    return writer_finish(w, NULL, err);
}

bn_status npz_writer_close_open(npz_writer *w, npz_reader **out, bn_error *err) {
    *out = NULL;
    if (!w) return bn_error_set(err, BN_ERR_INVALID, "npz_writer_close_open: NULL writer");
    char *name = strdup(w->path);
    if (!name) {
        bn_error_nomem(err, strlen(w->path) + 1, "%s: the trace's name", w->path);
        npz_writer_abort(w);
        return BN_ERR_NOMEM;
    }
    bn_status st;
    if (w->anonymous) {
        int fd = -1;
        st = writer_finish(w, &fd, err);
        if (!st) st = open_fd(fd, name, out, err);
        if (fd >= 0) close(fd); /* the mapping keeps the memory */
    } else {
        st = writer_finish(w, NULL, err);
        if (!st) st = npz_open(name, out, err);
    }
    free(name);
    return st;
}

void npz_writer_abort(npz_writer *w) {
    if (!w) return;
    bn_atomic_file_abort(w->file);
    writer_free(w);
}

bn_status npz_write_npy_file(const char *path, npz_dtype dtype, const int64_t *shape, int ndim,
                             const void *data, const volatile sig_atomic_t *cancel, bn_error *err) {
    if ((unsigned)dtype >= NPZ_DTYPE_COUNT || ndim < 0 || ndim > NPZ_MAX_DIMS || (ndim && !shape))
        return bn_error_set(err, BN_ERR_INVALID, "%s: bad dtype or ndim %d", path, ndim);
    npz_array_info info = {.dtype = dtype, .ndim = ndim};
    for (int d = 0; d < ndim; d++) info.shape[d] = shape[d];
    bn_status st = shape_size(path, &info, err);
    if (st) return st;
    char h[512];
    const size_t hlen = npy_header(dtype, shape, ndim, h, sizeof h);
    bn_atomic_file *f;
    if ((st = bn_atomic_file_open(path, &f, err))) return st;
    bn_atomic_file_set_cancel(f, cancel);
    st = bn_atomic_file_write(f, h, hlen, err);
    if (!st) st = bn_atomic_file_write(f, data, (size_t)info.nbytes, err);
    if (st) {
        bn_atomic_file_abort(f);
        return st;
    }
    return bn_atomic_file_commit(f, err);
}
