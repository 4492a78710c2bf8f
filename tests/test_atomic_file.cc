// test_atomic_file.cc — outputs appear whole or not at all: the atomic file
// module (temporary file + rename), cancellation, and the writers built on it
// (npz, trace, gguf, .npy) leaving an older file byte-identical on failure.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_helpers.h"

extern "C" {
#include "bitnet/atomic_file.h"
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "bitnet/sha256.h"
#include "bitnet/npz.h"
#include "parity/trace.h"
}

using bptest::ReadFile;
using bptest::TempDir;
using bptest::WriteFile;

namespace {

// The names in dir, sorted ("." and ".." left out).
std::vector<std::string> Listing(const std::string &dir) {
    std::vector<std::string> names;
    DIR *d = opendir(dir.c_str());
    if (!d) return names;
    while (dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<uint8_t> Bytes(const std::string &s) { return std::vector<uint8_t>(s.begin(), s.end()); }

std::string Str(const std::vector<uint8_t> &v) { return std::string(v.begin(), v.end()); }

mode_t ModeOf(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

bn_atomic_file *Open(const std::string &path, bn_error *err) {
    bn_atomic_file *f = nullptr;
    EXPECT_OK(bn_atomic_file_open(path.c_str(), &f, err), *err);
    return f;
}

// An anonymous file is memory only: commit_fd hands back what was written,
// and the two ways of ending a file refuse the other kind.
TEST(AtomicFile, AnonymousFileGivesItsBytesBackAndNeverANamedFile) {
    TempDir dir;
    bn_error err = {};
    bn_atomic_file *f = nullptr;
    ASSERT_OK(bn_atomic_file_open_anonymous("scratch", &f, &err), err);
    EXPECT_STREQ(bn_atomic_file_path(f), "scratch");
    ASSERT_OK(bn_atomic_file_write(f, "hello, memory", 13, &err), err);
    int fd = -1;
    ASSERT_OK(bn_atomic_file_commit_fd(f, &fd, &err), err);
    ASSERT_GE(fd, 0);
    char buf[32] = {0};
    EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 13);
    EXPECT_STREQ(buf, "hello, memory");
    close(fd);

    ASSERT_OK(bn_atomic_file_open_anonymous("scratch", &f, &err), err);
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("scratch: an anonymous file has no name"), std::string::npos) << err.msg;

    const std::string path = dir.file("named.bin");
    f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(bn_atomic_file_commit_fd(f, &fd, &err), BN_ERR_INVALID);
    EXPECT_EQ(fd, -1);
    EXPECT_TRUE(Listing(dir.path()).empty()) << "the refused named file left " << Listing(dir.path())[0];

    // a cancelled anonymous file gives nothing back
    volatile sig_atomic_t stop = 1;
    ASSERT_OK(bn_atomic_file_open_anonymous("scratch", &f, &err), err);
    bn_atomic_file_set_cancel(f, &stop);
    EXPECT_EQ(bn_atomic_file_commit_fd(f, &fd, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(fd, -1);
}

TEST(AtomicFile, CommitPublishesTheBytesAndLeavesNoTemporaryFile) {
    TempDir dir;
    bn_error err = {};
    bn_atomic_file *f = Open(dir.file("out.bin"), &err);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(std::string(bn_atomic_file_path(f)), dir.file("out.bin"));
    // until the commit only the temporary file exists, named .NAME.tmp.XXXXXX in the same folder
    const std::string tmp = bn_atomic_file_temp_path(f);
    EXPECT_EQ(tmp.rfind(dir.file(".out.bin.tmp."), 0), 0u) << tmp;
    EXPECT_EQ(tmp.size(), dir.file(".out.bin.tmp.").size() + 6);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{tmp.substr(dir.path().size() + 1)});
    fputs("header;", bn_atomic_file_stream(f));
    ASSERT_OK(bn_atomic_file_write(f, "payload", 7, &err), err);
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_EQ(Str(ReadFile(dir.file("out.bin"))), "header;payload");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, AnExistingFileIsUntouchedUntilTheCommitAndAfterAnAbort) {
    TempDir dir;
    const std::string path = dir.file("t.npz");
    WriteFile(path, Bytes("old contents"));
    bn_error err = {};
    bn_atomic_file *f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_write(f, "new", 3, &err), err);
    fflush(bn_atomic_file_stream(f));
    EXPECT_EQ(Str(ReadFile(path)), "old contents");
    EXPECT_EQ(Listing(dir.path()).size(), 2u);
    bn_atomic_file_abort(f);
    EXPECT_EQ(Str(ReadFile(path)), "old contents");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});

    f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_write(f, "new", 3, &err), err);
    EXPECT_EQ(Str(ReadFile(path)), "old contents");
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_EQ(Str(ReadFile(path)), "new");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});
    bn_atomic_file_abort(nullptr);  // NULL is fine
}

TEST(AtomicFile, CancellationStopsWritesAndRefusesTheCommit) {
    TempDir dir;
    const std::string path = dir.file("r.yaml");
    WriteFile(path, Bytes("previous receipt"));
    volatile sig_atomic_t cancel = 0;
    bn_error err = {};
    bn_atomic_file *f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    bn_atomic_file_set_cancel(f, &cancel);
    // 3 MiB: polled before each MiB; not yet set, so all of it is written
    std::vector<uint8_t> big(3u << 20, 0x5a);
    ASSERT_OK(bn_atomic_file_write(f, big.data(), big.size(), &err), err);
    cancel = SIGTERM;
    EXPECT_EQ(bn_atomic_file_write(f, big.data(), big.size(), &err), BN_ERR_CANCELLED);
    EXPECT_STREQ(err.msg, "interrupted");
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(Str(ReadFile(path)), "previous receipt");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"r.yaml"});

    // set after the last write: the commit still refuses to publish
    cancel = 0;
    f = Open(dir.file("fresh.yaml"), &err);
    ASSERT_NE(f, nullptr);
    bn_atomic_file_set_cancel(f, &cancel);
    ASSERT_OK(bn_atomic_file_write(f, "x", 1, &err), err);
    cancel = SIGINT;
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"r.yaml"});
}

TEST(AtomicFile, BadDestinationsAreErrorsThatLeaveNothing) {
    TempDir dir;
    bn_error err = {};
    bn_atomic_file *f = nullptr;
    const std::string missing = dir.file("no/such/dir/t.npz");
    EXPECT_EQ(bn_atomic_file_open(missing.c_str(), &f, &err), BN_ERR_IO);
    EXPECT_EQ(f, nullptr);
    EXPECT_EQ(std::string(err.msg), missing + ": cannot create: No such file or directory");
    EXPECT_EQ(bn_atomic_file_open(dir.path().c_str(), &f, &err), BN_ERR_INVALID);
    EXPECT_NE(std::string(err.msg).find("is a directory"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_atomic_file_open((dir.path() + "/sub/").c_str(), &f, &err), BN_ERR_INVALID);
    EXPECT_EQ(bn_atomic_file_open("", &f, &err), BN_ERR_INVALID);
    EXPECT_TRUE(Listing(dir.path()).empty());
    if (geteuid() != 0) {  // root writes into read-only folders anyway
        ASSERT_EQ(mkdir(dir.file("ro").c_str(), 0555), 0);
        EXPECT_EQ(bn_atomic_file_open(dir.file("ro/t.npz").c_str(), &f, &err), BN_ERR_IO);
        EXPECT_NE(std::string(err.msg).find("Permission denied"), std::string::npos) << err.msg;
        EXPECT_TRUE(Listing(dir.file("ro")).empty());
    }
}

TEST(AtomicFile, DevicesAreWrittenInPlace) {
    bn_error err = {};
    bn_atomic_file *f = Open("/dev/null", &err);
    ASSERT_NE(f, nullptr);
    EXPECT_STREQ(bn_atomic_file_temp_path(f), "/dev/null");
    ASSERT_OK(bn_atomic_file_write(f, "abc", 3, &err), err);
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    struct stat st;
    ASSERT_EQ(stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    // a write error surfaces at the commit, naming the path and the step
    f = Open("/dev/full", &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_write(f, "abc", 3, &err), err);  // buffered
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_IO);
    EXPECT_STREQ(err.msg, "/dev/full: write failed: No space left on device");
}

// Write-behind: the bytes reach the file in order across every buffer boundary, whatever the sizes of the
// writes, after what the stream held before; a flush makes them all visible to a pwrite patch.
TEST(AtomicFile, WriteBehindKeepsEveryByteInOrder) {
    TempDir dir;
    bn_error err = {};
    bn_atomic_file *f = Open(dir.file("wb.bin"), &err);
    ASSERT_NE(f, nullptr);
    fputs("head;", bn_atomic_file_stream(f));  // buffered in the stream: written before the thread's bytes
    ASSERT_OK(bn_atomic_file_write_behind(f, 4u << 20, &err), err);  // 4 buffers of 1 MiB
    ASSERT_OK(bn_atomic_file_write_behind(f, 4u << 20, &err), err);  // a second call changes nothing
    std::vector<uint8_t> want(Bytes("head;"));
    uint32_t x = 12345;
    // 1 byte, 1 MiB - 1, 1 MiB + 1, 3.5 MiB, ...: pieces that end inside, at and across the buffers
    for (size_t n : {size_t{1}, (size_t{1} << 20) - 1, (size_t{1} << 20) + 1, size_t{7} << 19, size_t{0}, size_t{4096},
                     size_t{9} << 20, size_t{3}}) {
        std::vector<uint8_t> piece(n);
        for (auto &b : piece) b = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
        ASSERT_OK(bn_atomic_file_write(f, piece.data(), n, &err), err);
        want.insert(want.end(), piece.begin(), piece.end());
    }
    ASSERT_OK(bn_atomic_file_flush(f, &err), err);
    struct stat st;
    ASSERT_EQ(stat(bn_atomic_file_temp_path(f), &st), 0);
    EXPECT_EQ((size_t)st.st_size, want.size());  // flushed: all of it is in the file
    ASSERT_EQ(pwrite(fileno(bn_atomic_file_stream(f)), "HEAD", 4, 0), 4);
    memcpy(want.data(), "HEAD", 4);
    ASSERT_OK(bn_atomic_file_write(f, "tail", 4, &err), err);
    want.insert(want.end(), {'t', 'a', 'i', 'l'});
    EXPECT_FALSE(std::ifstream(dir.file("wb.bin")).good());  // nothing published before the commit
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_TRUE(ReadFile(dir.file("wb.bin")) == want);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"wb.bin"});
}

// Abort and cancellation with a writer thread: the old file stays byte for byte, no temporary is left; a failed
// background write surfaces at a later write, flush or commit, naming the destination and the reason.
TEST(AtomicFile, WriteBehindAbortsCancelsAndReportsErrors) {
    TempDir dir;
    const std::string path = dir.file("t.npz");
    WriteFile(path, Bytes("old trace"));
    bn_error err = {};
    std::vector<uint8_t> big(5u << 20, 0xa5);
    bn_atomic_file *f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_write_behind(f, 4u << 20, &err), err);
    ASSERT_OK(bn_atomic_file_write(f, big.data(), big.size(), &err), err);  // some of it queued or written
    bn_atomic_file_abort(f);
    EXPECT_EQ(Str(ReadFile(path)), "old trace");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});

    volatile sig_atomic_t cancel = 0;
    f = Open(path, &err);
    ASSERT_NE(f, nullptr);
    bn_atomic_file_set_cancel(f, &cancel);
    ASSERT_OK(bn_atomic_file_write_behind(f, 4u << 20, &err), err);
    ASSERT_OK(bn_atomic_file_write(f, big.data(), big.size(), &err), err);
    cancel = SIGINT;
    EXPECT_EQ(bn_atomic_file_write(f, big.data(), big.size(), &err), BN_ERR_CANCELLED);
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(Str(ReadFile(path)), "old trace");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});

    // /dev/full: the thread's first write fails; 5 MiB fill the 4 buffers of 1 MiB, so the caller hears of it
    // while writing at the latest, else at the flush; the commit then fails too
    f = Open("/dev/full", &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_write_behind(f, 4u << 20, &err), err);
    bn_status st = bn_atomic_file_write(f, big.data(), big.size(), &err);
    if (st == BN_OK) st = bn_atomic_file_flush(f, &err);
    EXPECT_EQ(st, BN_ERR_IO);
    EXPECT_STREQ(err.msg, "/dev/full: write failed: No space left on device");
    EXPECT_EQ(bn_atomic_file_commit(f, &err), BN_ERR_IO);
    EXPECT_STREQ(err.msg, "/dev/full: write failed: No space left on device");
}

TEST(AtomicFile, ModesAreWhatFopenWouldGive) {
    TempDir dir;
    bn_error err = {};
    const mode_t old_mask = umask(022);
    bn_atomic_file *f = Open(dir.file("new"), &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_EQ(ModeOf(dir.file("new")), 0644u);
    // a replaced file keeps its mode
    ASSERT_EQ(chmod(dir.file("new").c_str(), 0640), 0);
    f = Open(dir.file("new"), &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_EQ(ModeOf(dir.file("new")), 0640u);
    umask(old_mask);
}

TEST(AtomicFile, LongNamesStillGetATemporaryFile) {
    TempDir dir;
    const std::string name(250, 'n');  // ".NAME.tmp.XXXXXX" would exceed NAME_MAX: NAME is shortened
    bn_error err = {};
    bn_atomic_file *f = Open(dir.file(name), &err);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(bn_atomic_file_commit(f, &err), err);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{name});
}

TEST(AtomicFile, CancelledStatusHasItsNameAndExitCode) {
    EXPECT_STREQ(bn_status_name(BN_ERR_CANCELLED), "BN_ERR_CANCELLED");
    EXPECT_EQ(bn_status_exit_code(BN_ERR_CANCELLED), 130);
    volatile sig_atomic_t flag = 0;
    bn_error err = {};
    EXPECT_FALSE(bn_cancelled(nullptr));
    EXPECT_FALSE(bn_cancelled(&flag));
    EXPECT_EQ(bn_cancel_check(&flag, &err), BN_OK);
    flag = 1;
    EXPECT_TRUE(bn_cancelled(&flag));
    EXPECT_EQ(bn_cancel_check(&flag, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(err.code, BN_ERR_CANCELLED);
}

TEST(AtomicFile, HashingAFileIsCancellableAndHashesAcrossPieces) {
    TempDir dir;
    std::vector<uint8_t> data((17u << 20) + 5);  // more than one 16 MiB piece
    for (size_t i = 0; i < data.size(); i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
    WriteFile(dir.file("model.gguf"), data);
    uint8_t whole[BN_SHA256_DIGEST_SIZE], pieces[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(data.data(), data.size(), whole);
    volatile sig_atomic_t cancel = 0;
    bn_error err = {};
    ASSERT_OK(bn_sha256_file(dir.file("model.gguf").c_str(), &cancel, pieces, &err), err);
    EXPECT_EQ(memcmp(whole, pieces, sizeof whole), 0);
    cancel = 1;
    EXPECT_EQ(bn_sha256_file(dir.file("model.gguf").c_str(), &cancel, pieces, &err), BN_ERR_CANCELLED);
}

// --- the writers built on it ------------------------------------------------------

TEST(AtomicWriters, NpzWriterPublishesOnlyAtClose) {
    TempDir dir;
    const std::string path = dir.file("t.npz");
    WriteFile(path, Bytes("good old trace"));
    bn_error err = {};
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[1] = {4};
    npz_writer *w = nullptr;
    // abort after a member: the old file stays
    ASSERT_OK(npz_writer_open(path.c_str(), NPZ_STORED, &w, &err), err);
    ASSERT_OK(npz_writer_add_array(w, "a.npy", NPZ_F32, shape, 1, v, &err), err);
    EXPECT_EQ(Str(ReadFile(path)), "good old trace");
    npz_writer_abort(w);
    EXPECT_EQ(Str(ReadFile(path)), "good old trace");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});
    // cancelled mid-way: the add fails, close fails, nothing is published
    volatile sig_atomic_t cancel = 0;
    ASSERT_OK(npz_writer_open(path.c_str(), NPZ_DEFLATE_FAST, &w, &err), err);
    npz_writer_set_cancel(w, &cancel);
    ASSERT_OK(npz_writer_add_array(w, "a.npy", NPZ_F32, shape, 1, v, &err), err);
    cancel = 1;
    EXPECT_EQ(npz_writer_add_array(w, "b.npy", NPZ_F32, shape, 1, v, &err), BN_ERR_CANCELLED);
    EXPECT_NE(npz_writer_close(w, &err), BN_OK);
    EXPECT_EQ(Str(ReadFile(path)), "good old trace");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});
    // a complete archive replaces it
    ASSERT_OK(npz_writer_open(path.c_str(), NPZ_STORED, &w, &err), err);
    ASSERT_OK(npz_writer_add_array(w, "a.npy", NPZ_F32, shape, 1, v, &err), err);
    ASSERT_OK(npz_writer_close(w, &err), err);
    npz_reader *r = nullptr;
    ASSERT_OK(npz_open(path.c_str(), &r, &err), err);
    NpzPtr reader(r);
    EXPECT_EQ(npz_count(r), 1);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});
}

// An npz written with write-behind holds the same bytes as one written without, stored or deflated (whose local
// headers are patched by pwrite after a flush of the thread's buffers), members larger than the buffers included.
TEST(AtomicWriters, NpzWriterWithWriteBehindWritesTheSameBytes) {
    TempDir dir;
    bn_error err = {};
    std::vector<float> big(3u << 20);  // 12 MiB: three times the 4 MiB of buffers
    for (size_t i = 0; i < big.size(); i++) big[i] = (float)(i % 977) * 0.25f;
    const int64_t big_shape[1] = {(int64_t)big.size()}, small_shape[1] = {3};
    const float small[3] = {1, 2, 3};
    for (npz_compression comp : {NPZ_STORED, NPZ_DEFLATE_FAST}) {
        std::vector<uint8_t> files[2];
        for (int behind = 0; behind < 2; behind++) {
            const std::string path = dir.file(behind ? "behind.npz" : "plain.npz");
            npz_writer *w = nullptr;
            ASSERT_OK(npz_writer_open(path.c_str(), comp, &w, &err), err);
            if (behind) {
                ASSERT_OK(npz_writer_write_behind(w, 4u << 20, &err), err);
            }
            ASSERT_OK(npz_writer_add_array(w, "a.npy", NPZ_F32, small_shape, 1, small, &err), err);
            ASSERT_OK(npz_writer_add_array(w, "big.npy", NPZ_F32, big_shape, 1, big.data(), &err), err);
            ASSERT_OK(npz_writer_add_bytes(w, "meta.yaml", "x: 1\n", 5, &err), err);
            ASSERT_OK(npz_writer_close(w, &err), err);
            files[behind] = ReadFile(path);
        }
        EXPECT_GT(files[0].size(), 1000u);
        EXPECT_TRUE(files[0] == files[1]) << "compression " << (int)comp;
        npz_reader *r = nullptr;
        ASSERT_OK(npz_open(dir.file("behind.npz").c_str(), &r, &err), err);
        NpzPtr reader(r);
        npz_array a{};
        ASSERT_OK(npz_load_array(r, npz_find(r, "big.npy"), &a, &err), err);
        EXPECT_EQ(memcmp(a.data, big.data(), big.size() * sizeof(float)), 0);
        npz_array_free(&a);
    }
}

TEST(AtomicWriters, TraceWriterFailingAtFinishKeepsTheOldTrace) {
    TempDir dir;
    const std::string path = dir.file("t.npz");
    WriteFile(path, Bytes("good old trace"));
    bn_error err = {};
    parity_trace_writer *w = nullptr;
    ASSERT_OK(parity_trace_writer_open(path.c_str(), NPZ_STORED, &w, &err), err);
    const float v[2] = {1, 2};
    const int64_t shape[2] = {1, 2};
    ASSERT_OK(parity_trace_writer_add_tap(w, 3, "logits", NPZ_F32, shape, 2, v, &err), err);
    // evaluation 3 was written but meta names only one: finish fails
    const int32_t tok = 1;
    parity_eval ev = {};
    ev.tokens = &tok;
    ev.n_tokens = 1;
    parity_trace_meta meta = {};
    meta.producer_name = "test";
    meta.threads = -1;
    meta.evals = &ev;
    meta.n_evals = 1;
    EXPECT_EQ(parity_trace_writer_finish(w, &meta, &err), BN_ERR_INVALID);
    EXPECT_EQ(Str(ReadFile(path)), "good old trace");
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"t.npz"});
}

TEST(AtomicWriters, GgufWriterCancelledOrIncompleteLeavesTheOldModel) {
    TempDir dir;
    const std::string path = dir.file("m.gguf");
    WriteFile(path, Bytes("good old model"));
    bn_error err = {};
    std::vector<float> data(1u << 19, 0.5f);  // 2 MiB: the cancel flag is polled per MiB
    const int64_t ne[1] = {(int64_t)data.size()};
    for (int cancelled = 0; cancelled < 2; cancelled++) {
        volatile sig_atomic_t cancel = cancelled;
        bn_gguf_writer *w = nullptr;
        ASSERT_OK(bn_gguf_writer_open(path.c_str(), 3, &w, &err), err);
        bn_gguf_writer_set_cancel(w, &cancel);
        ASSERT_OK(bn_gguf_writer_add_tensor(w, "a", BN_TYPE_F32, 1, ne, &err), err);
        ASSERT_OK(bn_gguf_writer_add_tensor(w, "b", BN_TYPE_F32, 1, ne, &err), err);
        const bn_status st = bn_gguf_writer_write_tensor(w, data.data(), data.size() * 4, &err);
        if (cancelled) {
            EXPECT_EQ(st, BN_ERR_CANCELLED);
        } else {
            EXPECT_OK(st, err);  // tensor b is never written: close fails
        }
        EXPECT_NE(bn_gguf_writer_close(w, &err), BN_OK);
        EXPECT_EQ(Str(ReadFile(path)), "good old model");
        EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"m.gguf"});
    }
}

TEST(AtomicWriters, NpyFileIsWrittenWholeOrNotAtAll) {
    TempDir dir;
    const std::string path = dir.file("q.npy");
    WriteFile(path, Bytes("old"));
    const float v[3] = {1, 2, 3};
    const int64_t shape[1] = {3};
    volatile sig_atomic_t cancel = 1;
    bn_error err = {};
    EXPECT_EQ(npz_write_npy_file(path.c_str(), NPZ_F32, shape, 1, v, &cancel, &err), BN_ERR_CANCELLED);
    EXPECT_EQ(Str(ReadFile(path)), "old");
    ASSERT_OK(npz_write_npy_file(path.c_str(), NPZ_F32, shape, 1, v, nullptr, &err), err);
    const auto bytes = ReadFile(path);
    ASSERT_EQ(bytes.size(), 128u + 12u);  // numpy's 128-byte header, then the data
    EXPECT_EQ(memcmp(bytes.data() + 128, v, 12), 0);
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"q.npy"});
}

}  // namespace
