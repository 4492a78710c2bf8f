/* gguf.h — strict GGUF v2/v3 reader over mmap, and a streaming writer.
 *
 * The reader validates everything before use (docs/specs/gguf.md): every count,
 * length and offset against the file size, unique keys and tensor names,
 * n_dims <= 4, element counts without overflow, ne[0] a multiple of the
 * type's block, tensors in bounds, aligned and non-overlapping. Failures give
 * one line naming the file, the field or tensor, and the byte offset.
 * Stricter than ggml where the spec leaves room: ne[i] >= 1 (no empty
 * tensors), BOOL values 0 or 1, names without NUL bytes; tensors may sit at
 * any aligned, in-bounds, non-overlapping offset (packing is not required).
 */
#ifndef BITNET_GGUF_H
#define BITNET_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_gguf_vtype {
    BN_GGUF_UINT8 = 0,
    BN_GGUF_INT8 = 1,
    BN_GGUF_UINT16 = 2,
    BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4,
    BN_GGUF_INT32 = 5,
    BN_GGUF_FLOAT32 = 6,
    BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8,
    BN_GGUF_ARRAY = 9,
    BN_GGUF_UINT64 = 10,
    BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12,
    BN_GGUF_VTYPE_COUNT
} bn_gguf_vtype;

#define BN_GGUF_MAX_DIMS 4
#define BN_GGUF_DEFAULT_ALIGNMENT 32

typedef struct bn_gguf bn_gguf; /* an open, validated file */

typedef struct bn_gguf_tensor {
    const char *name;         /* NUL-terminated copy owned by the bn_gguf */
    uint32_t type;            /* ggml type id (bitnet/quant.h) */
    uint32_t n_dims;          /* 1..4 */
    int64_t ne[BN_GGUF_MAX_DIMS]; /* ggml order, ne[0] fastest; unused = 1 */
    int64_t nelem;            /* product of ne */
    uint64_t offset;          /* relative to the data section */
    uint64_t abs_offset;      /* from the start of the file */
    uint64_t nbytes;          /* bn_type_tensor_nbytes of type and shape */
    const void *data;         /* into the read-only mapping */
} bn_gguf_tensor;

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct bn_gguf_str {
    const char *ptr;
    uint64_t len;
} bn_gguf_str;

/* Opens and validates `path`. On success *out owns the mapping; close it with
 * bn_gguf_close. On failure *out is NULL and err names file/field/offset. */
bn_status bn_gguf_open(const char *path, bn_gguf **out, bn_error *err);

/* Where an opened file's bytes live. Both give the same bytes, hence the
 * same results bit for bit. */
typedef enum bn_gguf_load {
    BN_GGUF_LOAD_MMAP = 0, /* a read-only mapping of the file: opens at once, pages come in as they are read */
    BN_GGUF_LOAD_MEMORY,   /* the whole file read into anonymous memory (transparent huge pages where the
                            * kernel gives them), read-only afterwards: slower to open, faster to stream
                            * the weights from on every decoded token (bench/run.sh measures both) */
} bn_gguf_load;

/* bn_gguf_open with the bytes placed as `how` says. A file that ends early
 * while it is read (BN_GGUF_LOAD_MEMORY) is an error naming the offset. */
bn_status bn_gguf_open_with(const char *path, bn_gguf_load how, bn_gguf **out, bn_error *err);

/* For a file read into memory (BN_GGUF_LOAD_MEMORY): makes its bytes
 * writable (true) or read-only again (false), so that a tensor's bytes can
 * be rearranged in place (bn_model_load_with's I2_S row groups); the
 * header and metadata must not change. INVALID for a mapping of the file
 * or a caller's buffer, INTERNAL when the kernel refuses. */
bn_status bn_gguf_set_writable(bn_gguf *g, bool writable, bn_error *err);

/* "mmap" or "memory" (the CLI's --load); false for anything else. */
bool bn_gguf_load_parse(const char *s, bn_gguf_load *out);

/* Same checks on a caller-owned buffer (fuzzing, tests); the buffer must
 * outlive the handle. `name` is used in messages. */
bn_status bn_gguf_open_memory(const void *buf, size_t size, const char *name,
                              bn_gguf **out, bn_error *err);

void bn_gguf_close(bn_gguf *g); /* NULL is fine */

uint32_t bn_gguf_version(const bn_gguf *g);
uint64_t bn_gguf_file_size(const bn_gguf *g);
uint64_t bn_gguf_alignment(const bn_gguf *g);
/* Start of the data section; may lie past the end of a file without tensors. */
uint64_t bn_gguf_data_offset(const bn_gguf *g);
const char *bn_gguf_path(const bn_gguf *g);

/* --- key/value metadata ---------------------------------------------- */
int64_t bn_gguf_kv_count(const bn_gguf *g);
/* Index of `key`, or -1. */
int64_t bn_gguf_find_key(const bn_gguf *g, const char *key);
const char *bn_gguf_kv_key(const bn_gguf *g, int64_t i);         /* NUL-terminated */
bn_gguf_vtype bn_gguf_kv_type(const bn_gguf *g, int64_t i);
/* For arrays: element type and count (count 1 / type = kv type for scalars). */
bn_gguf_vtype bn_gguf_kv_elem_type(const bn_gguf *g, int64_t i);
uint64_t bn_gguf_kv_count_elems(const bn_gguf *g, int64_t i);
/* Raw little-endian element data of a scalar or non-string array. */
const void *bn_gguf_kv_data(const bn_gguf *g, int64_t i);
/* Element j of a string value (j = 0) or of an array of strings. */
bn_gguf_str bn_gguf_kv_str(const bn_gguf *g, int64_t i, uint64_t j);
/* Element j of a numeric/bool value or array, converted. */
int64_t bn_gguf_kv_int(const bn_gguf *g, int64_t i, uint64_t j);
double bn_gguf_kv_float(const bn_gguf *g, int64_t i, uint64_t j);

/* Typed look-ups by key. NOT_FOUND when absent; INVALID (naming the key and
 * both types) when the stored type does not convert: get_int accepts every
 * integer type and bool (and checks the value fits int64), get_float f32/f64,
 * get_str a STRING. */
bn_status bn_gguf_get_int(const bn_gguf *g, const char *key, int64_t *out, bn_error *err);
bn_status bn_gguf_get_float(const bn_gguf *g, const char *key, double *out, bn_error *err);
bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_error *err);
/* Array look-up: checks the value is an ARRAY of elem_type (BN_GGUF_VTYPE_COUNT
 * = any) and returns its count. */
bn_status bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_vtype elem_type,
                          int64_t *kv_index, uint64_t *count, bn_error *err);

const char *bn_gguf_vtype_name(bn_gguf_vtype t);
/* Bytes of one element of a numeric or bool type as stored (little-endian);
 * 0 for STRING, ARRAY and unknown types. */
size_t bn_gguf_vtype_size(bn_gguf_vtype t);

/* --- tensors ---------------------------------------------------------- */
int64_t bn_gguf_tensor_count(const bn_gguf *g);
const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, int64_t i); /* file order */
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name); /* or NULL */

/* --- streaming writer --------------------------------------------------
 * Usage: open; add key/values; declare every tensor (name, type, shape);
 * then write each tensor's bytes in declaration order; close. The header is
 * written when the first tensor's data arrives (or at close when there are
 * no tensors). A `general.alignment` UINT32 key sets the alignment. */
typedef struct bn_gguf_writer bn_gguf_writer;

/* Starts writing `path` for GGUF `version` 2 or 3 (0 = 3), through a
 * temporary file that close renames onto path (bitnet/atomic_file.h): an
 * existing file of that name is untouched until then. Every add_* call checks
 * its input (non-empty unique keys, general.alignment a UINT32 power of two,
 * BOOL 0/1, tensor names of 1..63 bytes and unique, n_dims 1..4, ne >= 1,
 * supported types with ne[0] a block multiple) and leaves the writer usable
 * after a rejected call. Tensor data is padded with zeros to the alignment. */
bn_status bn_gguf_writer_open(const char *path, uint32_t version,
                              bn_gguf_writer **out, bn_error *err);
/* Scalar of any numeric/bool type; `value` points at one element. */
bn_status bn_gguf_writer_add_scalar(bn_gguf_writer *w, const char *key, bn_gguf_vtype type,
                                    const void *value, bn_error *err);
bn_status bn_gguf_writer_add_str(bn_gguf_writer *w, const char *key, const char *value,
                                 bn_error *err);
/* Array of numeric/bool elements (packed little-endian). */
bn_status bn_gguf_writer_add_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype elem_type,
                                 const void *elems, uint64_t count, bn_error *err);
bn_status bn_gguf_writer_add_str_arr(bn_gguf_writer *w, const char *key,
                                     const char *const *strs, uint64_t count, bn_error *err);
/* Convenience wrappers. */
bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err);
bn_status bn_gguf_writer_add_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err);
bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err);
bn_status bn_gguf_writer_add_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err);

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const int64_t *ne, bn_error *err);
/* Next declared tensor's bytes; nbytes must equal its declared size. */
bn_status bn_gguf_writer_write_tensor(bn_gguf_writer *w, const void *data, uint64_t nbytes,
                                      bn_error *err);
/* Streams the next declared tensor's bytes in pieces (large tensors never
 * held whole): the tensor is complete, and padded, once the pieces add up to
 * its declared size; more than that fails. */
bn_status bn_gguf_writer_write_tensor_part(bn_gguf_writer *w, const void *data, uint64_t nbytes,
                                           bn_error *err);
/* Finishes the file (fails if declared tensors were not all written),
 * renames it onto the path and frees w in every case; on failure nothing is
 * published. */
bn_status bn_gguf_writer_close(bn_gguf_writer *w, bn_error *err);
/* Polls *cancel (NULL: never) at every MiB written: write_tensor and close
 * then fail with BN_ERR_CANCELLED. */
void bn_gguf_writer_set_cancel(bn_gguf_writer *w, const volatile sig_atomic_t *cancel);
/* Frees w and removes the temporary file (error paths); NULL is fine. */
void bn_gguf_writer_abort(bn_gguf_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_GGUF_H */
