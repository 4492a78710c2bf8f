#include "test_helpers.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace bptest {

static std::string SharedDir() {
    const char *env = getenv("BITPARITY_SHARED_DIR");
    return env && *env ? env : BITPARITY_SHARED_DIR;
}

std::string SharedPath(const std::string &rel) {
    std::string p = SharedDir() + "/" + rel;
    struct stat st;
    return stat(p.c_str(), &st) == 0 ? p : std::string();
}

std::string SourcePath(const std::string &rel) { return std::string(BITPARITY_SOURCE_DIR) + "/" + rel; }

std::string BinaryPath() { return BITPARITY_BINARY; }

TempDir::TempDir() {
    const char *base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/bitparity-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        ADD_FAILURE() << "mkdtemp failed";
        return;
    }
    path_ = buf.data();
}

TempDir::~TempDir() {
    if (!path_.empty()) {
        std::string cmd = "rm -rf '" + path_ + "'";
        if (system(cmd.c_str()) != 0) fprintf(stderr, "could not remove %s\n", path_.c_str());
    }
}

std::vector<uint8_t> ReadFile(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string &path, const void *data, size_t size) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
}

RunResult RunShell(const std::string &cmd) {
    TempDir tmp;
    std::string full = "(" + cmd + ") >'" + tmp.file("out") + "' 2>'" + tmp.file("err") + "' </dev/null";
    int st = system(full.c_str());
    RunResult r;
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    auto out = ReadFile(tmp.file("out")), err = ReadFile(tmp.file("err"));
    r.out.assign(out.begin(), out.end());
    r.err.assign(err.begin(), err.end());
    return r;
}

RunResult RunCli(const std::string &args) { return RunShell("'" + BinaryPath() + "' " + args); }

}  // namespace bptest
