/* npz.h — the trace container at the byte level: a strict zip reader over
 * mmap, NumPy .npy headers, and a streaming zip writer.
 *
 * Reader: the central directory is located from the end-of-central-directory
 * record (ZIP64 records and extra fields included), indexed once and looked
 * up by name through a hash table. Members are stored (method 0) or deflated
 * (method 8); every read streams through zlib and checks the CRC-32 and the
 * declared size. Every offset and size is checked against the file size
 * before it is used, and nothing is allocated from a size the file claims
 * before that size has been bounded by the file itself.
 *
 * Writer: members are written one after the other (deflate level 1 or
 * stored), each local header patched in place once its CRC and sizes are
 * known; close writes the central directory, in ZIP64 form when there are
 * more than 65535 members or an offset or size does not fit 32 bits. Output
 * loads with numpy.load and Python's zipfile. Only the small per-member
 * directory entries stay in memory.
 *
 * Errors name the file, the member and, for zip structures, the byte offset.
 */
#ifndef PARITY_NPZ_H
#define PARITY_NPZ_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NPZ_MAX_DIMS 8

/* The element types a trace may hold (little-endian, C order). */
typedef enum npz_dtype {
    NPZ_F32 = 0, /* '<f4' */
    NPZ_F16,     /* '<f2' */
    NPZ_I8,      /* '|i1' */
    NPZ_I32,     /* '<i4' */
    NPZ_F64,     /* '<f8' */
    NPZ_DTYPE_COUNT
} npz_dtype;

/* numpy descr string of a dtype ("<f4"); "?" for an invalid value. */
const char *npz_dtype_descr(npz_dtype t);
/* Bytes per element; 0 for an invalid value. */
size_t npz_dtype_size(npz_dtype t);

/* One entry of the central directory. */
typedef struct npz_member {
    const char *name;      /* NUL-terminated, owned by the reader/writer */
    uint16_t method;       /* 0 stored, 8 deflated */
    uint32_t crc32;        /* of the uncompressed bytes */
    uint64_t comp_size;    /* bytes of member data in the file */
    uint64_t size;         /* uncompressed bytes */
    uint64_t local_offset; /* of the local file header */
} npz_member;

/* A parsed .npy header. */
typedef struct npz_array_info {
    npz_dtype dtype;
    int ndim;                    /* 0..NPZ_MAX_DIMS (0 = scalar) */
    int64_t shape[NPZ_MAX_DIMS]; /* numpy order; entries past ndim are 1 */
    int64_t nelem;               /* product of shape */
    uint64_t nbytes;             /* nelem * dtype size */
    uint64_t data_offset;        /* bytes of magic + header inside the member */
} npz_array_info;

/* An array loaded into memory. */
typedef struct npz_array {
    npz_array_info info;
    void *data; /* [info.nbytes] malloc'ed; release with npz_array_free */
} npz_array;

/* Frees a->data and zeroes a; NULL is fine. */
void npz_array_free(npz_array *a);

/* --- reader ----------------------------------------------------------- */
typedef struct npz_reader npz_reader;

/* Maps `path` and indexes its central directory. On success *out owns the
 * mapping (close with npz_close); on failure *out is NULL and err names the
 * file and the offending structure and offset. Member data is validated
 * lazily, when it is read. */
bn_status npz_open(const char *path, npz_reader **out, bn_error *err);

/* Same on a caller-owned buffer that must outlive the reader; `name` is used
 * in messages (fuzzing, tests). */
bn_status npz_open_memory(const void *buf, size_t size, const char *name, npz_reader **out, bn_error *err);

void npz_close(npz_reader *r); /* NULL is fine */

const char *npz_path(const npz_reader *r); /* the name given at open */

/* The whole container as read: the mapping or the caller's buffer
 * ([*size] bytes, NULL when empty), valid until npz_close. */
const void *npz_bytes(const npz_reader *r, uint64_t *size);
uint64_t npz_file_size(const npz_reader *r);
int64_t npz_count(const npz_reader *r); /* number of members */
/* Member i in central-directory order; NULL when i is out of range. */
const npz_member *npz_member_at(const npz_reader *r, int64_t i);
/* Index of the member named exactly `name`, or -1. Names are unique (open
 * rejects duplicates). */
int64_t npz_find(const npz_reader *r, const char *name);

/* Receives consecutive pieces of a member's uncompressed bytes. Returning
 * anything but BN_OK stops the read with that status (fill err). */
typedef bn_status (*npz_chunk_fn)(void *ud, const void *data, size_t n, bn_error *err);

/* Reads all of member i into dst, which holds `cap` >= size bytes. Checks the
 * local header, the inflated size and the CRC-32. */
bn_status npz_read(const npz_reader *r, int64_t i, void *dst, uint64_t cap, bn_error *err);

/* Streams member i through fn in pieces of at most 1 MiB (stored members are
 * passed straight from the mapping, without a copy). The CRC-32 and size are
 * checked at the end: a consumer must not act on the bytes before this
 * returns BN_OK. */
bn_status npz_read_chunks(const npz_reader *r, int64_t i, npz_chunk_fn fn, void *ud, bn_error *err);

/* Reads the first min(n, size) bytes of member i into dst and sets *got. No
 * CRC check (the member is not read to its end). */
bn_status npz_read_prefix(const npz_reader *r, int64_t i, void *dst, uint64_t n, uint64_t *got,
                          bn_error *err);

/* Parses the .npy header of member i (format 1.0, 2.0 or 3.0): dtype one of
 * npz_dtype, C order, and a shape whose byte size equals the rest of the
 * member exactly. */
bn_status npz_array_info_at(const npz_reader *r, int64_t i, npz_array_info *info, bn_error *err);

/* Reads the array data of member i (described by `info` from
 * npz_array_info_at) into dst of info->nbytes bytes, checking the CRC. */
bn_status npz_read_array_data(const npz_reader *r, int64_t i, const npz_array_info *info, void *dst,
                              bn_error *err);

/* npz_array_info_at + allocation + npz_read_array_data. On failure *out is
 * zeroed. */
bn_status npz_load_array(const npz_reader *r, int64_t i, npz_array *out, bn_error *err);

/* Parses a .npy header held in buf[0..len) of a member of `member_size`
 * bytes. `what` ("file.npz: member 'x.npy'") prefixes messages. Needs only
 * the header bytes, not the data. */
bn_status npz_parse_npy_header(const void *buf, size_t len, uint64_t member_size, const char *what,
                               npz_array_info *info, bn_error *err);

/* --- writer ----------------------------------------------------------- */
typedef enum npz_compression {
    NPZ_DEFLATE_FAST = 0, /* zlib level 1: the default */
    NPZ_STORED = 1,
} npz_compression;

typedef struct npz_writer npz_writer;

/* Starts writing `path` with members compressed as `comp`. The members go to
 * a temporary file next to path (bitnet/atomic_file.h) that close renames
 * onto path: until then an existing file of that name is untouched. */
bn_status npz_writer_open(const char *path, npz_compression comp, npz_writer **out, bn_error *err);

/* Same into an anonymous in-memory file (bitnet/atomic_file.h) that nothing
 * on disk ever holds; `name` stands for it in messages and as the reader's
 * name. Finish it with npz_writer_close_open. */
bn_status npz_writer_open_anonymous(const char *name, npz_compression comp, npz_writer **out, bn_error *err);

/* Polls *cancel (NULL: never) at every MiB written: adding a member then
 * fails with BN_ERR_CANCELLED and the writer has failed (abort it). */
void npz_writer_set_cancel(npz_writer *w, const volatile sig_atomic_t *cancel);

/* The members' bytes are written by a thread of the writer's own from
 * buffer_bytes of buffers while the caller goes on
 * (bn_atomic_file_write_behind): for a large archive produced by a
 * computation. Call before the first member. */
bn_status npz_writer_write_behind(npz_writer *w, size_t buffer_bytes, bn_error *err);

/* Appends member `name` (e.g. "e0/logits.npy") holding a .npy (format 1.0,
 * numpy's own header bytes) of `ndim` <= NPZ_MAX_DIMS dims `shape` and `data`
 * in C order (data may be NULL when the shape has no elements). Names must be
 * unique, non-empty and shorter than 64 KiB. Refusals (bad name, duplicate)
 * leave the writer usable; a failed write makes close fail. */
bn_status npz_writer_add_array(npz_writer *w, const char *name, npz_dtype dtype, const int64_t *shape,
                               int ndim, const void *data, bn_error *err);

/* Appends member `name` holding n raw bytes (meta.yaml, index.tsv). */
bn_status npz_writer_add_bytes(npz_writer *w, const char *name, const void *data, uint64_t n, bn_error *err);

/* Writes a standalone .npy file (`inspect --dump`): numpy's header, then
 * the data in C order, atomically (bitnet/atomic_file.h; cancel as above,
 * NULL: never). On failure nothing is published. */
bn_status npz_write_npy_file(const char *path, npz_dtype dtype, const int64_t *shape, int ndim,
                             const void *data, const volatile sig_atomic_t *cancel, bn_error *err);

/* Number of members added so far. */
int64_t npz_writer_count(const npz_writer *w);

/* Writes the central directory, then renames the finished file onto the
 * path, and frees w in every case. After any earlier failure (or a failure
 * here, or cancellation) it removes the temporary file and fails, leaving
 * an existing file at path as it was. */
bn_status npz_writer_close(npz_writer *w, bn_error *err);

/* Finishes w as npz_writer_close does and opens what was written: the
 * published file, or for an anonymous writer its memory (mapped, no copy).
 * Frees w in every case; on failure *out is NULL. */
bn_status npz_writer_close_open(npz_writer *w, npz_reader **out, bn_error *err);

/* Frees w and removes the temporary file (error paths); NULL is fine. */
void npz_writer_abort(npz_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_NPZ_H */
