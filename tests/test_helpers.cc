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

std::string ModelCasePath(const ModelCase &c) {
    return c.shared ? SharedPath(std::string("models/") + c.file) : SourcePath(std::string("fixtures/models/") + c.file);
}

std::vector<int32_t> FixturePrompt(const std::string &name) {
    std::ifstream f(SourcePath("fixtures/prompts.txt"));
    std::string line;
    while (std::getline(f, line)) {
        line = line.substr(0, line.find('#'));
        std::istringstream ls(line);
        std::string n, ids;
        if (!(ls >> n >> ids) || n != name) continue;
        std::vector<int32_t> toks;
        std::istringstream is(ids);
        for (std::string t; std::getline(is, t, ',');) toks.push_back(std::stoi(t));
        return toks;
    }
    return {};
}

ModelCase SharedTinyI2s() {
    return {"shared_i2s", true, "tiny-bitnet-i2s.gguf", {509, 12, 300, 45, 78, 260, 301, 99, 400, 13, 271, 88}};
}

ModelCase FixtureB158I2s() { return {"fixture_b158_i2s", false, "b158-i2s.gguf", FixturePrompt("p1")}; }

void PrintTo(const ModelCase &c, std::ostream *os) { *os << c.label; }

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
