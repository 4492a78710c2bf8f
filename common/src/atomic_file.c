/* atomic_file.c — temporary file + rename (see atomic_file.h). */
#define _GNU_SOURCE /* memfd_create */
#include "bitnet/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
    DIRECT_ALIGN = 4096,   /* O_DIRECT's buffer, offset and length alignment (any block size up to 4 KiB) */
    DIRECT_BUF = 8 << 20,  /* each of the two direct buffers */
};

/* Direct streaming (bn_atomic_file_set_direct): the caller's bytes are
 * copied into one of two aligned buffers; a full one is handed to a writer
 * thread that pwrite()s it with O_DIRECT while the caller fills the other.
 * The page cache is bypassed: on VMs whose freed memory goes back to the
 * host, every fresh page-cache page costs a host fault, and buffered writes
 * of a multi-GB trace ran at 0.5-1 GB/s of pure system time on the caller's
 * thread; direct writes run at the disk's speed at next to no CPU. */
typedef struct {
    uint8_t *buf[2];   /* [DIRECT_BUF] each, DIRECT_ALIGN-aligned */
    int fill_buf;      /* the buffer being filled */
    size_t fill;       /* bytes in it */
    uint64_t fill_off; /* file offset of its first byte */
    int fd;
    pthread_t thread;
    bool thread_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    int queued;          /* buffer handed to the thread (-1: none); cleared once written */
    uint64_t queued_off; /* its file offset */
    bool stop;
    int error; /* errno of the first failed write; 0 none */
} direct_stream;

struct bn_atomic_file {
    FILE *f;
    char *path;    /* destination */
    char *tmp;     /* temporary file; == path when written in place */
    bool in_place; /* destination is a device, FIFO, ...: no rename */
    bool anonymous; /* a memfd: no name, nothing to rename or remove */
    const volatile sig_atomic_t *cancel;
    uint64_t written;  /* bytes through bn_atomic_file_write */
    uint64_t kicked;   /* of which the kernel was asked to start writing back */
    direct_stream *direct; /* non-NULL while streaming with O_DIRECT */
};

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

/* --- direct streaming ------------------------------------------------------ */

/* pwrite until all of [p, p+n) is at off: 0 or the errno. A file system
 * that accepted O_DIRECT but refuses this write's alignment (EINVAL) gets
 * it, and the rest of the file, through the page cache instead. */
static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        const ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EINVAL) {
            const int fl = fcntl(fd, F_GETFL);
            if (fl >= 0 && (fl & O_DIRECT) && fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0) continue;
            errno = EINVAL;
        }
        if (k <= 0) return k < 0 ? errno : EIO;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static void *direct_writer_main(void *arg) {
    direct_stream *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->queued < 0 && !d->stop) pthread_cond_wait(&d->cv, &d->mu);
        if (d->queued < 0) break; /* stopped with nothing queued */
        const int idx = d->queued;
        const uint64_t off = d->queued_off;
        const bool failed = d->error != 0;
        pthread_mutex_unlock(&d->mu);
        const int e = failed ? 0 : pwrite_all(d->fd, d->buf[idx], DIRECT_BUF, off);
        pthread_mutex_lock(&d->mu);
        if (e && !d->error) d->error = e;
        d->queued = -1;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Starts the writer thread with every signal blocked (the process's
 * handlers run on the caller's threads). False: write synchronously. */
static bool direct_start_thread(direct_stream *d) {
    sigset_t all, old;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0) return false;
    d->thread_running = pthread_create(&d->thread, NULL, direct_writer_main, d) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return d->thread_running;
}

/* Hands the full fill buffer to the writer thread (after the previous one
 * is written) and starts filling the other: 0 or the errno of a failed
 * write, this one's or an earlier one's. */
static int direct_queue(direct_stream *d) {
    int e = 0;
    if (!d->thread_running && !direct_start_thread(d)) {
        e = pwrite_all(d->fd, d->buf[d->fill_buf], DIRECT_BUF, d->fill_off);
    } else {
        pthread_mutex_lock(&d->mu);
        while (d->queued >= 0) pthread_cond_wait(&d->cv, &d->mu);
        if (!(e = d->error)) {
            d->queued = d->fill_buf;
            d->queued_off = d->fill_off;
            pthread_cond_broadcast(&d->cv);
        }
        pthread_mutex_unlock(&d->mu);
        d->fill_buf ^= 1;
    }
    d->fill_off += DIRECT_BUF;
    d->fill = 0;
    return e;
}

/* Ends direct streaming: waits for the writer thread, writes the partial
 * buffer when `keep` (through the page cache: its length is arbitrary) and
 * leaves the descriptor's offset at the end, so the stream carries on from
 * there. 0 or the errno of the first failed write. */
static int direct_end(bn_atomic_file *f, bool keep) {
    direct_stream *d = f->direct;
    if (!d) return 0;
    f->direct = NULL;
    int e = 0;
    if (d->thread_running) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
        e = d->error;
    }
    if (keep && !e) {
        const int fl = fcntl(d->fd, F_GETFL);
        if (fl < 0 || fcntl(d->fd, F_SETFL, fl & ~O_DIRECT) != 0) e = errno;
        if (!e) e = pwrite_all(d->fd, d->buf[d->fill_buf], d->fill, d->fill_off);
        if (!e && lseek(d->fd, (off_t)(d->fill_off + d->fill), SEEK_SET) < 0) e = errno;
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->buf[0]);
    free(d->buf[1]);
    free(d);
    return e;
}

bool bn_atomic_file_set_direct(bn_atomic_file *f) {
    if (!f || f->direct || f->in_place || f->anonymous || f->written) return false;
    const int fd = fileno(f->f);
    if (fd < 0 || ftello(f->f) != 0) return false;
    direct_stream *d = calloc(1, sizeof *d);
    if (!d) return false;
    d->buf[0] = aligned_alloc(DIRECT_ALIGN, DIRECT_BUF);
    d->buf[1] = aligned_alloc(DIRECT_ALIGN, DIRECT_BUF);
    const int fl = fcntl(fd, F_GETFL);
    bool ok = d->buf[0] && d->buf[1] && fl >= 0;
    if (ok && pthread_mutex_init(&d->mu, NULL) != 0) ok = false;
    if (ok && pthread_cond_init(&d->cv, NULL) != 0) {
        pthread_mutex_destroy(&d->mu);
        ok = false;
    }
    /* tmpfs and some others refuse O_DIRECT: the page cache it is */
    if (ok && fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        ok = false;
    }
    if (!ok) {
        free(d->buf[0]);
        free(d->buf[1]);
        free(d);
        return false;
    }
    d->fd = fd;
    d->queued = -1;
    f->direct = d;
    return true;
}

bool bn_atomic_file_is_direct(const bn_atomic_file *f) { return f && f->direct; }

/* bn_atomic_file_write's direct path: the caller's bytes into the buffers. */
static int direct_write(direct_stream *d, const uint8_t *p, size_t n) {
    while (n) {
        size_t k = DIRECT_BUF - d->fill;
        if (k > n) k = n;
        memcpy(d->buf[d->fill_buf] + d->fill, p, k);
        d->fill += k;
        p += k;
        n -= k;
        if (d->fill == DIRECT_BUF) {
            const int e = direct_queue(d);
            if (e) return e;
        }
    }
    return 0;
}

bn_status bn_atomic_file_pwrite(bn_atomic_file *f, uint64_t off, const void *data, size_t n, bn_error *err) {
    int e = direct_end(f, true);
    if (!e && fflush(f->f) != 0) e = errno;
    if (!e) e = pwrite_all(fileno(f->f), data, n, off);
    if (e) return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
    return BN_OK;
}

/* Every WRITEBACK_STEP bytes the kernel is asked to start writing the file
 * back (sync_file_range, which does not wait): the disk then works while
 * the caller computes, and commit's fsync of a trace of gigabytes finds
 * little left to do. A failure only means no head start: fsync decides. */
#define WRITEBACK_STEP ((uint64_t)64 << 20)

static void start_writeback(bn_atomic_file *f) {
    if (f->in_place || f->anonymous || f->direct || f->written - f->kicked < WRITEBACK_STEP || fflush(f->f) != 0)
        return;
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fileno(f->f), 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
    f->kicked = f->written;
}

bn_status bn_atomic_file_write(bn_atomic_file *f, const void *data, size_t n, bn_error *err) {
    const uint8_t *p = data;
    while (n) {
        bn_status st = bn_cancel_check(f->cancel, err);
        if (st) return st;
        const size_t k = n < WRITE_PIECE ? n : WRITE_PIECE;
        if (f->direct) {
            const int e = direct_write(f->direct, p, k);
            if (e) return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
        } else if (fwrite(p, 1, k, f->f) != k) {
            return bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
        }
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
    const char *step = NULL;
    int e = direct_end(f, !st); /* the buffered tail of a direct stream, then the stream */
    if (!st && e) step = "write";
    else if (!st && (fflush(f->f) != 0 || ferror(f->f))) step = "write", e = errno;
    else if (!st && !f->in_place && fsync(fileno(f->f)) != 0) step = "sync", e = errno;
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
    direct_end(f, false);
    if (f->f) fclose(f->f);
    if (!f->in_place && f->tmp) unlink(f->tmp);
    atomic_free(f);
}
