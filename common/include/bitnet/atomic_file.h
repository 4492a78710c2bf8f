/* atomic_file.h — every file bitparity writes appears whole or not at all.
 *
 * A writer opens a temporary file ".NAME.tmp.XXXXXX" in the destination's
 * directory (same file system, so the final rename is atomic), writes it
 * through the stdio stream or bn_atomic_file_write, and commits: flush,
 * fsync, rename onto NAME. Abort (or any failed commit) closes and unlinks
 * the temporary file. Until the commit renames, an existing NAME is left
 * byte for byte as it was; a reader never sees a half-written NAME.
 *
 * The temporary file gets the mode a plain fopen would have given NAME
 * (0666 less the umask), or the mode of the regular file it replaces.
 * A destination that exists and is not a regular file (/dev/null, a FIFO,
 * /dev/stdout) is written in place: there is nothing to replace atomically.
 * A symbolic link at the destination is replaced by the new file (its
 * target is left as it was), as with any rename.
 *
 * Cancellation: with a cancel flag (bn_atomic_file_set_cancel),
 * bn_atomic_file_write polls it every MiB and commit refuses to publish once
 * it is set, so an interrupted writer never replaces the old file.
 */
#ifndef BITNET_ATOMIC_FILE_H
#define BITNET_ATOMIC_FILE_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_atomic_file bn_atomic_file;

/* Creates the temporary file next to `path` and opens a stream on it
 * (binary, fully buffered). BN_ERR_IO naming path and the system's reason
 * when the directory is missing or not writable; BN_ERR_INVALID when path is
 * empty or an existing directory. On failure *out is NULL and nothing is
 * left on disk. */
bn_status bn_atomic_file_open(const char *path, bn_atomic_file **out, bn_error *err);

/* The stream to write with (fwrite, fprintf, setvbuf before the first write,
 * fileno for pwrite). Do not fclose it: commit or abort does. */
FILE *bn_atomic_file_stream(const bn_atomic_file *f);

/* The destination path given to open (for messages). */
const char *bn_atomic_file_path(const bn_atomic_file *f);

/* The temporary file's path (equal to the destination when written in
 * place). For tests and messages. */
const char *bn_atomic_file_temp_path(const bn_atomic_file *f);

/* Polls *cancel (NULL: never) in bn_atomic_file_write and commit. */
void bn_atomic_file_set_cancel(bn_atomic_file *f, const volatile sig_atomic_t *cancel);

/* Writes n bytes to the stream in pieces of at most 1 MiB, checking the
 * cancel flag before each: BN_ERR_CANCELLED ("interrupted"), or BN_ERR_IO
 * naming the destination and the system's reason. data may be NULL when
 * n == 0. The file stays open either way; the caller aborts it. */
bn_status bn_atomic_file_write(bn_atomic_file *f, const void *data, size_t n, bn_error *err);

/* From now on bn_atomic_file_write only copies into buffers (buffer_bytes
 * in all, at least 4 MiB) that a thread of the file's own writes in order
 * while the caller goes on; the caller waits only when every buffer is
 * queued. For large outputs of a computation (a trace of gigabytes): the
 * page-cache copy and the kernel's write throttling then cost the caller
 * nothing. A failed background write is reported by the next write, flush
 * or commit (BN_ERR_IO naming the destination and the system's reason).
 * Do not write through the stream afterwards; pwrite after
 * bn_atomic_file_flush. Commit and abort end the thread. BN_ERR_NOMEM or
 * BN_ERR_INTERNAL when the buffers or the thread cannot be had. */
bn_status bn_atomic_file_write_behind(bn_atomic_file *f, size_t buffer_bytes, bn_error *err);

/* Everything written so far is in the file: the stream flushed, or the
 * write-behind thread done with every buffer. Its errors as write's. */
bn_status bn_atomic_file_flush(bn_atomic_file *f, bn_error *err);

/* Publishes the file: fails with BN_ERR_CANCELLED when the cancel flag is
 * set, else flushes, fsyncs, closes and renames the temporary file onto the
 * destination. Frees f in every case; on any failure the temporary file is
 * removed and the destination is untouched (BN_ERR_IO naming the path and
 * the step: write, sync, close or rename). */
bn_status bn_atomic_file_commit(bn_atomic_file *f, bn_error *err);

/* An anonymous file instead: it lives in memory (memfd_create), has no name
 * in any directory and vanishes with its last descriptor, so nothing is ever
 * left behind. For a result the caller reads back at once rather than keeps
 * (`bitparity check`'s own trace). `name` stands for it in messages.
 * Written as above; end it with bn_atomic_file_commit_fd (or abort). */
bn_status bn_atomic_file_open_anonymous(const char *name, bn_atomic_file **out, bn_error *err);

/* Ends an anonymous file: BN_ERR_CANCELLED when the cancel flag is set, else
 * flushes it and hands a descriptor of it to the caller in *fd (close it).
 * Frees f in every case; on failure *fd is -1 and nothing remains.
 * BN_ERR_INVALID for a named file (publish those with commit). */
bn_status bn_atomic_file_commit_fd(bn_atomic_file *f, int *fd, bn_error *err);

/* Closes and removes the temporary file and frees f, leaving the
 * destination untouched; NULL is fine. */
void bn_atomic_file_abort(bn_atomic_file *f);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_ATOMIC_FILE_H */
