// ggml_nodes_format.cpp — see ggml_nodes_format.h. No llama.cpp or ggml dependency: the test
// suite compiles this file alone.
#include "ggml_nodes_format.h"

#include <cstdio>
#include <cstring>

namespace gnodes {

std::vector<int64_t> npy_shape(const int64_t ne[4]) {
    std::vector<int64_t> s(ne, ne + 4);
    std::vector<int64_t> r(s.rbegin(), s.rend());
    size_t drop = 0;
    while (drop + 1 < r.size() && r[drop] == 1) drop++;
    return std::vector<int64_t>(r.begin() + drop, r.end());
}

size_t elem_size(Elem e) {
    switch (e) {
    case Elem::F32:
    case Elem::I32: return 4;
    case Elem::F16:
    case Elem::BF16: return 2;
    default: return 0;
    }
}

uint64_t span_bytes(const int64_t ne[4], const uint64_t nb[4], size_t esize) {
    uint64_t last = 0;
    for (int i = 0; i < 4; i++) {
        if (ne[i] <= 0) return 0;  // no element: nothing to read
        last += static_cast<uint64_t>(ne[i] - 1) * nb[i];
    }
    return last + esize;
}

std::string node_name(const char *ggml_name, int64_t seq) {
    return ggml_name && *ggml_name ? std::string(ggml_name) : "node_" + std::to_string(seq);
}

std::string member_file(int64_t seq, const std::string &name) {
    char num[32];
    snprintf(num, sizeof num, "%04lld_", static_cast<long long>(seq));
    std::string out = num;
    for (unsigned char c : name) {
        const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                          c == '.' || c == '-';
        out += keep ? static_cast<char>(c) : '_';
    }
    return out + ".npy";
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (mant << 13));  // inf, NaN (payload kept)
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return bits_to_f32(sign);
    // Subnormal half: normalise; every one is a normal float32.
    int e = 113;
    while (!(mant & 0x400)) mant <<= 1, e--;
    return bits_to_f32(sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FF) << 13));
}

float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

static float load_elem(const uint8_t *p, Elem e) {
    uint16_t h;
    uint32_t u;
    int32_t i;
    switch (e) {
    case Elem::F32: memcpy(&u, p, 4); return bits_to_f32(u);
    case Elem::F16: memcpy(&h, p, 2); return f16_to_f32(h);
    case Elem::BF16: memcpy(&h, p, 2); return bf16_to_f32(h);
    case Elem::I32: memcpy(&i, p, 4); return static_cast<float>(i);
    default: return 0.0f;
    }
}

bool to_float32(const Node &n, std::vector<float> *out) {
    if (n.elem == Elem::Unsupported) return false;
    const int64_t *ne = n.ne;
    out->resize(static_cast<size_t>(ne[0] * ne[1] * ne[2] * ne[3]));
    float *o = out->data();
    // Contiguous f32 (most nodes): one copy instead of a per-element walk.
    if (n.elem == Elem::F32 && n.nb[0] == 4 && n.nb[1] == 4 * static_cast<uint64_t>(ne[0]) &&
        n.nb[2] == n.nb[1] * static_cast<uint64_t>(ne[1]) && n.nb[3] == n.nb[2] * static_cast<uint64_t>(ne[2])) {
        memcpy(o, n.data, out->size() * 4);
        return true;
    }
    for (int64_t i3 = 0; i3 < ne[3]; i3++)
        for (int64_t i2 = 0; i2 < ne[2]; i2++)
            for (int64_t i1 = 0; i1 < ne[1]; i1++) {
                const uint8_t *row = n.data + i3 * n.nb[3] + i2 * n.nb[2] + i1 * n.nb[1];
                for (int64_t i0 = 0; i0 < ne[0]; i0++) *o++ = load_elem(row + i0 * n.nb[0], n.elem);
            }
    return true;
}

// --- SHA-256 (FIPS 180-4) ---------------------------------------------------------------
static const uint32_t kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

Sha256::Sha256() {
    static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h_, init, sizeof h_);
}

void Sha256::block(const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; i++) {
        const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kSha256K[i] + w[i];
        const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
}

void Sha256::update(const void *data, size_t n) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    total_ += n;
    while (n) {
        const size_t take = n < 64 - fill_ ? n : 64 - fill_;
        memcpy(buf_ + fill_, p, take);
        fill_ += take, p += take, n -= take;
        if (fill_ == 64) block(buf_), fill_ = 0;
    }
}

std::string Sha256::hex() {
    const uint64_t bits = total_ * 8;
    const uint8_t pad = 0x80, zero = 0;
    update(&pad, 1);
    while (fill_ != 56) update(&zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(len, 8);
    std::string out;
    char hx[9];
    for (uint32_t v : h_) snprintf(hx, sizeof hx, "%08x", v), out += hx;
    return out;
}

bool sha256_file(const std::string &path, std::string *hex, std::string *err) {
    FILE *f = fopen(path.c_str(), "rb");
    if (!f) {
        *err = path + ": cannot open for sha256";
        return false;
    }
    Sha256 s;
    std::vector<uint8_t> buf(1 << 20);
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) s.update(buf.data(), n);
    const bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        *err = path + ": read error while hashing";
        return false;
    }
    *hex = s.hex();
    return true;
}

// --- meta.yaml and index.tsv ------------------------------------------------------------
std::string yaml_quote(const std::string &s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7F) {
            char e[8];
            snprintf(e, sizeof e, "\\x%02x", c);
            o += e;
        } else {
            o += static_cast<char>(c);
        }
    }
    return o + "\"";
}

// Plain when YAML cannot read it as anything but a string (the shared traces write file names and
// digests plain); quoted when it could be a number (a digest of digits only), a bool, null, hex.
static std::string yaml_scalar(const std::string &s) {
    bool safe = !s.empty() && s[0] != '-' && s[0] != '.', numberish = true;
    for (unsigned char c : s) {
        safe = safe && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '-');
        numberish = numberish && ((c >= '0' && c <= '9') || c == 'e' || c == 'E' || c == '.' || c == '+' ||
                                  c == '-' || c == '_');
    }
    std::string lower;
    for (unsigned char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"};
    for (const char *w : words) safe = safe && lower != w;
    if (lower.size() > 1 && lower[0] == '0' && (lower[1] == 'x' || lower[1] == 'o' || lower[1] == 'b')) safe = false;
    return safe && !numberish ? s : yaml_quote(s);
}

static std::string int_list(const std::vector<int32_t> &v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) o += (i ? ", " : "") + std::to_string(v[i]);
    return o + "]";
}

std::string format_meta(const Meta &m, const std::vector<Evaluation> &evals, const std::vector<std::string> &skipped) {
    std::string y;
    y += "trace: bitparity/v1\n";
    y += "producer:\n";
    y += "  name: " + yaml_scalar(m.producer_name) + "\n";
    y += "  source: " + yaml_quote(m.producer_source) + "\n";
    y += "  tool: " + yaml_quote(m.producer_tool) + "\n";
    y += "model:\n";
    y += "  file: " + yaml_scalar(m.model_file) + "\n";
    y += "  sha256: " + yaml_scalar(m.model_sha256) + "\n";
    y += "settings:\n";
    y += "  kv_cache: " + yaml_quote("K " + m.kv_type_k + ", V " + m.kv_type_v) + "\n";
    if (m.flash_attn >= 0) y += std::string("  flash_attn: ") + (m.flash_attn ? "true" : "false") + "\n";
    y += "  threads: " + std::to_string(m.threads) + "\n";
    y += "  n_ctx: " + std::to_string(m.n_ctx) + "\n";
    y += std::string("  logits_for_all_prompt_tokens: ") + (m.logits_all ? "true" : "false") + "\n";
    y += "layout: ggml-nodes   # e{k}/index.tsv lists every graph node in evaluation order;\n"
         "                     # numpy shape = ggml ne reversed, leading 1s dropped; row t = token t\n";
    y += "evaluations:\n";
    for (size_t k = 0; k < evals.size(); k++)
        y += "  - {id: e" + std::to_string(k) + ", tokens: " + int_list(evals[k].tokens) +
             ", p0: " + std::to_string(evals[k].p0) + "}\n";
    if (!m.greedy_tokens.empty()) y += "greedy_tokens: " + int_list(m.greedy_tokens) + "\n";
    if (!skipped.empty()) {
        y += "skipped_nodes:   # quantized node outputs: no float32 member, no index row\n";
        for (const std::string &s : skipped) y += "  - " + s + "\n";
    }
    return y;
}

static std::string tsv_field(const std::string &s) {
    std::string o = s;
    for (char &c : o)
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return o;
}

std::string index_header() {
    return "seq\tname\top\ttype\tne0\tne1\tne2\tne3\tnb0\tnb1\tnb2\tnb3\tsrc0\tsrc1\tfile";
}

std::string index_row(int64_t seq, const Node &n, const std::string &file) {
    std::string r = std::to_string(seq) + "\t" + tsv_field(n.name) + "\t" + tsv_field(n.op) + "\t" + tsv_field(n.type);
    for (int i = 0; i < 4; i++) r += "\t" + std::to_string(n.ne[i]);
    for (int i = 0; i < 4; i++) r += "\t" + std::to_string(n.nb[i]);
    return r + "\t" + tsv_field(n.src0) + "\t" + tsv_field(n.src1) + "\t" + file;
}

// --- TraceWriter ------------------------------------------------------------------------
bool TraceWriter::open(const std::string &path, std::string *err) { return zip_.open(path, err); }

void TraceWriter::begin_eval(const std::vector<int32_t> &tokens, int32_t p0) {
    evals_.push_back(Evaluation{tokens, p0});
    index_ = index_header() + "\n";
    in_eval_ = true;
}

bool TraceWriter::add_node(int64_t seq, const Node &n, std::string *err) {
    if (!in_eval_) {
        *err = "node '" + n.name + "' outside an evaluation";
        return false;
    }
    if (n.elem == Elem::Unsupported) {
        skipped_.push_back("{eval: e" + std::to_string(evals_.size() - 1) + ", seq: " + std::to_string(seq) +
                           ", name: " + yaml_quote(n.name) + ", op: " + yaml_quote(n.op) +
                           ", type: " + yaml_quote(n.type) + "}");
        return true;
    }
    for (int i = 0; i < 4; i++)
        if (n.ne[i] < 0) {
            *err = "node " + std::to_string(seq) + " '" + n.name + "': ne" + std::to_string(i) + " = " +
                   std::to_string(n.ne[i]);
            return false;
        }
    to_float32(n, &scratch_);
    const std::string file = member_file(seq, n.name);
    if (!zip_.add_npy_f32(prefix() + file, npy_shape(n.ne), scratch_.data(), scratch_.size(), err)) return false;
    index_ += index_row(seq, n, file) + "\n";
    nodes_written_++;
    return true;
}

bool TraceWriter::add_logits(const float *data, int64_t n_out, int64_t n_vocab, std::string *err) {
    return zip_.add_npy_f32(prefix() + "logits.npy", {n_out, n_vocab}, data, static_cast<size_t>(n_out * n_vocab),
                            err);
}

bool TraceWriter::end_eval(std::string *err) {
    in_eval_ = false;
    return zip_.add(prefix() + "index.tsv", index_, err);
}

bool TraceWriter::finish(const Meta &m, std::string *err) {
    if (!zip_.add("meta.yaml", format_meta(m, evals_, skipped_), err)) return false;
    return zip_.close(err);
}

}  // namespace gnodes
