/* atomic_file.c — temporary file + rename (see atomic_file.h). */
#define _GNU_SOURCE /* memfd_create */
#include "bitnet/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    WRITE_PIECE = 1 << 20, /* cancellation is polled this often */
    NAME_KEEP = 200,       /* bytes of NAME kept in ".NAME.tmp.XXXXXX" (NAME_MAX is 255) */
    SUFFIX_LEN = 6,
    CREATE_TRIES = 64,
};

enum { WB_BUFFERS = 4 };

/* bn_atomic_file_write_behind's state. The caller fills buffer `fill`,
 * marks it full and goes on with the next one; the writer thread writes the
 * full buffers to fd in the same cyclic order and marks them empty. A
 * buffer is the caller's while it is not full and the writer's while it
 * is: full[], error and stop change only under mu. */
typedef struct write_behind {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change of full[], error or stop */
    int fd;
    uint8_t *buf[WB_BUFFERS];
    size_t cap;              /* bytes per buffer */
    size_t len[WB_BUFFERS];  /* bytes in each */
    bool full[WB_BUFFERS];
    int fill;                /* the caller's buffer */
    bool stop;               /* commit: exit once nothing is full */
    bool discard;            /* abort: exit at once, dropping what is queued */
    int error;               /* errno of the first failed write; later data is dropped */
} write_behind;

struct bn_atomic_file {
    FILE *f;
    char *path;    /* destination */
    char *tmp;     /* temporary file; == path when written in place */
    bool in_place; /* destination is a device, FIFO, ...: no rename */
    bool anonymous; /* a memfd: no name, nothing to rename or remove */
    const volatile sig_atomic_t *cancel;
    uint64_t written;  /* bytes through bn_atomic_file_write */
    uint64_t kicked;   /* of which the kernel was asked to start writing back */
    write_behind *wb;  /* NULL until bn_atomic_file_write_behind */
};

static bn_status write_behind_hand_over(bn_atomic_file *f, bool wait_all, bn_error *err);
static void write_behind_end(bn_atomic_file *f, bool discard);

static void atomic_free(bn_atomic_file *f) {
    if (f->tmp != f->path) free(f->tmp);
    free(f->path);
    free(f);
}

/* Six name characters; getrandom when it answers, else the clock and pid
 * (collisions are retried by the caller's O_EXCL loop either way). */
static void random_suffix(char out[SUFFIX_LEN], unsigned attempt) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint8_t b[SUFFIX_LEN];
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 12 ^ attempt;
        for (int i = 0; i < SUFFIX_LEN; i++) { /* splitmix64 steps */
            z += 0x9e3779b97f4a7c15ull;
            uint64_t x = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
            b[i] = (uint8_t)((x ^ x >> 27) * 0x94d049bb133111ebull >> 56);
        }
    }
    for (int i = 0; i < SUFFIX_LEN; i++) out[i] = chars[b[i] % (sizeof chars - 1)];
}

/* Creates "<dir>/.<name>.tmp.XXXXXX" with O_EXCL; returns the fd or -1
 * (errno set) and the malloc'ed name in *tmp_out. */
static int create_temp(const char *path, char **tmp_out) {
    const char *slash = strrchr(path, '/');
    const size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0; /* with its '/' */
    const char *name = path + dir_len;
    size_t name_len = strlen(name);
    if (name_len > NAME_KEEP) name_len = NAME_KEEP;
    const size_t cap = dir_len + 1 + name_len + 5 + SUFFIX_LEN + 1;
    char *tmp = malloc(cap);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(tmp, path, dir_len);
    tmp[dir_len] = '.';
    memcpy(tmp + dir_len + 1, name, name_len);
    memcpy(tmp + dir_len + 1 + name_len, ".tmp.", 5);
    char *suffix = tmp + dir_len + 1 + name_len + 5;
    suffix[SUFFIX_LEN] = '\0';
    for (unsigned attempt = 0; attempt < CREATE_TRIES; attempt++) {
        random_suffix(suffix, attempt);
        /* 0666: the kernel applies the umask, as fopen(path, "w") would */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST) break;
    }
    const int e = errno;
    free(tmp);
    errno = e;
    return -1;
}

bn_status bn_atomic_file_open(const char *path, bn_atomic_file **out, bn_error *err) {
    *out = NULL;
    if (!path || !*path) return bn_error_set(err, BN_ERR_INVALID, "output path is empty");
    const size_t len = strlen(path);
    struct stat st;
    const bool exists = stat(path, &st) == 0;
    if ((exists && S_ISDIR(st.st_mode)) || path[len - 1] == '/')
        return bn_error_set(err, BN_ERR_INVALID, "%s: is a directory, not a file to write", path);
    bn_atomic_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return bn_error_nomem(err, sizeof *f + strlen(path) + 1, "%s: the output file's state", path);
    }
    int fd;
    if (exists && !S_ISREG(st.st_mode)) {
        f->in_place = true;
        f->tmp = f->path;
        fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    } else {
        fd = create_temp(path, &f->tmp);
        /* replacing a file keeps its permissions, as writing into it did
         * (best effort: on failure the umask's mode stays) */
        if (fd >= 0 && exists) (void)fchmod(fd, st.st_mode & 07777);
    }
    if (fd < 0) {
        const int e = errno;
        if (!f->in_place) f->tmp = NULL;
        atomic_free(f);
        return bn_error_set(err, e == ENOMEM ? BN_ERR_NOMEM : BN_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    if (!(f->f = fdopen(fd, "wb"))) {
        const int e = errno;
        close(fd);
        bn_atomic_file_abort(f);
        return bn_error_set(err, BN_ERR_NOMEM, "%s: cannot open a stream: %s", path, strerror(e));
    }
    *out = f;
    return BN_OK;
}

bn_status bn_atomic_file_open_anonymous(const char *name, bn_atomic_file **out, bn_error *err) {
    *out = NULL;
    if (!name || !*name) name = "(anonymous)";
    bn_atomic_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        free(f);
        return bn_error_nomem(err, sizeof *f + strlen(name) + 1, "%s: the in-memory file's state", name);
    }
    f->anonymous = f->in_place = true; /* in place: abort and commit have no file name to remove */
    f->tmp = f->path;
    const int fd = memfd_create("bitparity", MFD_CLOEXEC);
    if (fd < 0 || !(f->f = fdopen(fd, "w+b"))) {
        const int e = errno;
        if (fd >= 0) close(fd);
        bn_atomic_file_abort(f);
        return bn_error_set(err, e == ENOMEM ? BN_ERR_NOMEM : BN_ERR_IO, "%s: cannot create an in-memory file: %s",
                            name, strerror(e));
    }
    *out = f;
    return BN_OK;
}

bn_status bn_atomic_file_commit_fd(bn_atomic_file *f, int *fd, bn_error *err) {
    *fd = -1;
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "bn_atomic_file_commit_fd: NULL file");
    if (!f->anonymous) {
        bn_error_set(err, BN_ERR_INVALID, "%s: a named file is published with commit", f->path);
        bn_atomic_file_abort(f);
        return BN_ERR_INVALID;
    }
    bn_status st = bn_cancel_check(f->cancel, err);
    if (!st && f->wb) st = write_behind_hand_over(f, true, err);
    write_behind_end(f, st != BN_OK);
    if (!st && (fflush(f->f) != 0 || ferror(f->f)))
        st = bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    if (!st && (*fd = fcntl(fileno(f->f), F_DUPFD_CLOEXEC, 0)) < 0)
        st = bn_error_set(err, BN_ERR_IO, "%s: dup failed: %s", f->path, strerror(errno));
    bn_atomic_file_abort(f); /* the stream's own descriptor; *fd keeps the memory */
    return st;
}

FILE *bn_atomic_file_stream(const bn_atomic_file *f) { return f->f; }
const char *bn_atomic_file_path(const bn_atomic_file *f) { return f->path; }
const char *bn_atomic_file_temp_path(const bn_atomic_file *f) { return f->tmp; }
void bn_atomic_file_set_cancel(bn_atomic_file *f, const volatile sig_atomic_t *cancel) { f->cancel = cancel; }

/* Every WRITEBACK_STEP bytes the kernel is asked to start writing the file
 * back (sync_file_range, which does not wait): the disk then works while
 * the caller computes, and commit's fsync of a trace of gigabytes finds
 * little left to do. A failure only means no head start: fsync decides. */
#define WRITEBACK_STEP ((uint64_t)64 << 20)

static void kick_writeback(int fd) {
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
}

static void start_writeback(bn_atomic_file *f) {
    if (f->in_place || f->anonymous || f->written - f->kicked < WRITEBACK_STEP || fflush(f->f) != 0) return;
    kick_writeback(fileno(f->f));
    f->kicked = f->written;
}

/* ---- write-behind ---------------------------------------------------------- */

/* n bytes to fd, across short writes and EINTR: 0 or the errno. */
static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        const ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return errno;
        if (k == 0) return EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *write_behind_main(void *arg) {
    bn_atomic_file *f = arg;
    write_behind *w = f->wb;
    const bool kick = !f->in_place && !f->anonymous;
    uint64_t written = 0, kicked = 0;
    pthread_mutex_lock(&w->mu);
    for (int i = 0;; i = (i + 1) % WB_BUFFERS) {
        while (!w->full[i] && !w->stop && !w->discard) pthread_cond_wait(&w->cv, &w->mu);
        if (w->discard || !w->full[i]) break;
        const bool failed = w->error != 0;
        pthread_mutex_unlock(&w->mu);
        const int e = failed ? 0 : write_all(w->fd, w->buf[i], w->len[i]);
        written += w->len[i];
        if (!failed && !e && kick && written - kicked >= WRITEBACK_STEP) {
            kick_writeback(w->fd);
            kicked = written;
        }
        pthread_mutex_lock(&w->mu);
        if (e && !w->error) w->error = e;
        w->len[i] = 0;
        w->full[i] = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static bn_status write_behind_error(const bn_atomic_file *f, int e, bn_error *err) {
    return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
}

/* Hands the caller's buffer to the writer (if it holds anything) and, with
 * wait_all, waits until the writer has written everything; else until the
 * next buffer is free. Returns the writer's first error. */
static bn_status write_behind_hand_over(bn_atomic_file *f, bool wait_all, bn_error *err) {
    write_behind *w = f->wb;
    pthread_mutex_lock(&w->mu);
    if (w->len[w->fill]) {
        w->full[w->fill] = true;
        w->fill = (w->fill + 1) % WB_BUFFERS;
        pthread_cond_broadcast(&w->cv);
    }
    for (;;) {
        bool busy = w->full[w->fill];
        for (int i = 0; wait_all && i < WB_BUFFERS; i++) busy = busy || w->full[i];
        if (!busy) break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    const int e = w->error;
    pthread_mutex_unlock(&w->mu);
    return e ? write_behind_error(f, e, err) : BN_OK;
}

static void write_behind_free(write_behind *w) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    for (int i = 0; i < WB_BUFFERS; i++) free(w->buf[i]);
    free(w);
}

/* Stops the writer thread (discard: dropping what is queued) and frees it. */
static void write_behind_end(bn_atomic_file *f, bool discard) {
    write_behind *w = f->wb;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    w->discard = discard;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    write_behind_free(w);
    f->wb = NULL;
}

bn_status bn_atomic_file_write_behind(bn_atomic_file *f, size_t buffer_bytes, bn_error *err) {
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "bn_atomic_file_write_behind: NULL file");
    if (f->wb) return BN_OK;
    if (fflush(f->f) != 0) return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    const size_t cap = buffer_bytes / WB_BUFFERS < WRITE_PIECE ? WRITE_PIECE : buffer_bytes / WB_BUFFERS;
    write_behind *w = calloc(1, sizeof *w);
    if (!w) return bn_error_nomem(err, sizeof *w, "%s: the write-behind state", f->path);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < WB_BUFFERS; i++)
        if (!(w->buf[i] = malloc(cap))) {
            write_behind_free(w);
            return bn_error_nomem(err, cap * WB_BUFFERS, "%s: the write-behind buffers", f->path);
        }
    w->cap = cap;
    w->fd = fileno(f->f);
    /* the thread takes no signals: an interrupt reaches the caller's thread,
     * whose cancel flag the writes poll */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    f->wb = w;
    const int rc = pthread_create(&w->thread, NULL, write_behind_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        f->wb = NULL;
        write_behind_free(w);
        return bn_error_set(err, BN_ERR_INTERNAL, "%s: cannot start the writer thread: %s", f->path, strerror(rc));
    }
    return BN_OK;
}

bn_status bn_atomic_file_flush(bn_atomic_file *f, bn_error *err) {
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "bn_atomic_file_flush: NULL file");
    if (f->wb) return write_behind_hand_over(f, true, err);
    if (fflush(f->f) != 0 || ferror(f->f))
        return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    return BN_OK;
}

/* bn_atomic_file_write with a writer thread: copies into the buffers. */
static bn_status write_behind_write(bn_atomic_file *f, const uint8_t *p, size_t n, bn_error *err) {
    write_behind *w = f->wb;
    while (n) {
        bn_status st = bn_cancel_check(f->cancel, err);
        if (st) return st;
        size_t k = w->cap - w->len[w->fill];
        if (k > n) k = n;
        if (k > WRITE_PIECE) k = WRITE_PIECE;
        memcpy(w->buf[w->fill] + w->len[w->fill], p, k);
        w->len[w->fill] += k;
        p += k;
        n -= k;
        f->written += k;
        if (w->len[w->fill] == w->cap && (st = write_behind_hand_over(f, false, err))) return st;
    }
    return BN_OK;
}

bn_status bn_atomic_file_write(bn_atomic_file *f, const void *data, size_t n, bn_error *err) {
    const uint8_t *p = data;
    if (f->wb) return write_behind_write(f, p, n, err);
    while (n) {
        bn_status st = bn_cancel_check(f->cancel, err);
        if (st) return st;
        const size_t k = n < WRITE_PIECE ? n : WRITE_PIECE;
        if (fwrite(p, 1, k, f->f) != k)
            return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
        p += k;
        n -= k;
        f->written += k;
    }
    start_writeback(f);
    return BN_OK;
}

bn_status bn_atomic_file_commit(bn_atomic_file *f, bn_error *err) {
    if (!f) return bn_error_set(err, BN_ERR_INVALID, "bn_atomic_file_commit: NULL file");
    if (f->anonymous) {
        bn_error_set(err, BN_ERR_INVALID, "%s: an anonymous file has no name to publish (commit_fd)", f->path);
        bn_atomic_file_abort(f);
        return BN_ERR_INVALID;
    }
    bn_status st = bn_cancel_check(f->cancel, err);
    if (!st && f->wb) st = write_behind_hand_over(f, true, err);
    write_behind_end(f, st != BN_OK);
    const char *step = NULL;
    if (!st && (fflush(f->f) != 0 || ferror(f->f))) step = "write";
    else if (!st && !f->in_place && fsync(fileno(f->f)) != 0) step = "sync";
    int e = errno;
    FILE *stream = f->f;
    f->f = NULL;
    if (fclose(stream) != 0 && !st && !step) step = "close", e = errno;
    if (!st && !step && !f->in_place && rename(f->tmp, f->path) != 0) step = "rename", e = errno;
    if (!st && step) st = bn_error_set(err, BN_ERR_IO, "%s: %s failed: %s", f->path, step, strerror(e));
    if (st && !f->in_place) unlink(f->tmp);
    atomic_free(f);
    return st;
}

void bn_atomic_file_abort(bn_atomic_file *f) {
    if (!f) return;
    write_behind_end(f, true);
    if (f->f) fclose(f->f);
    if (!f->in_place && f->tmp) unlink(f->tmp);
    atomic_free(f);
}
