// ggml_nodes_format.h — the `layout: ggml-nodes` trace container (docs/specs/ggml-nodes.md)
// without any llama.cpp or ggml header: node → float32 conversion that walks ggml strides,
// member naming, index.tsv rows, meta.yaml, SHA-256. ggml_nodes_dumper.cpp feeds it the tensors
// its cb_eval callback sees; tests/test_dumper_format.py feeds it synthetic nodes.
//
// Container (one .npz, members stored):
//   e{k}/NNNN_<name>.npy  one per graph node of evaluation k, float32, numpy shape = ggml ne
//                         reversed with leading 1s dropped; NNNN = seq (evaluation order)
//   e{k}/index.tsv        seq name op type ne0..ne3 nb0..nb3 src0 src1 file, one row per node
//   e{k}/logits.npy       (n_out, n_vocab) float32, what the library returned
//   meta.yaml             written last (a trace without it is visibly incomplete)
#ifndef BITPARITY_GGML_NODES_FORMAT_H
#define BITPARITY_GGML_NODES_FORMAT_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "write_npz.h"

namespace gnodes {

// Element encodings the dumper converts; anything else (quantized blocks) is skipped and listed
// in meta.yaml `skipped_nodes`, because a block format has no per-element stride to walk.
enum class Elem { F32, F16, BF16, I32, Unsupported };

// One graph node as the eval callback sees it, after its bytes were made host-readable.
struct Node {
    std::string name;       // ggml name; "" for an unnamed node (becomes node_<seq>)
    std::string op;         // ggml_op_desc: MUL_MAT, RMS_NORM, RELU (unary ops by their own name), ...
    std::string type;       // ggml_type_name: f32, f16, bf16, i32, q8_0, ...
    Elem elem;              // how to read one element
    int64_t ne[4];          // elements per dimension, ggml order (ne0 fastest)
    uint64_t nb[4];         // byte stride per dimension (views: permuted or gapped)
    std::string src0, src1; // names of the inputs, "-" when absent
    const uint8_t *data;    // the element at index [0,0,0,0]; span_bytes() readable bytes
};

// numpy shape of a node: ne reversed, leading 1s dropped, at least one dimension.
std::vector<int64_t> npy_shape(const int64_t ne[4]);

// Bytes from the first to one past the last element (ggml_nbytes for non-quantized types).
uint64_t span_bytes(const int64_t ne[4], const uint64_t nb[4], size_t elem_size);

size_t elem_size(Elem e);  // 4, 2, 2, 4; 0 for Unsupported

// The name a node is recorded under: its ggml name, or node_<seq> for an unnamed one (ggml
// leaves some intermediate tensors unnamed, e.g. the GET_ROWS that prune the last layer).
std::string node_name(const char *ggml_name, int64_t seq);

// Member file name of node `seq`: "%04d_" + name with every byte outside [A-Za-z0-9_.-] → '_'.
std::string member_file(int64_t seq, const std::string &name);

// IEEE binary16 / bfloat16 → float32, exact (subnormals, ±0, ±inf, NaN payloads kept).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

// The node's elements as float32 in C order of npy_shape (ne0 fastest), walking nb[] so
// permuted, transposed and gapped views come out in logical order. False for Unsupported.
bool to_float32(const Node &n, std::vector<float> *out);

// SHA-256, streaming; hex() returns 64 lowercase hex digits.
class Sha256 {
  public:
    Sha256();
    void update(const void *data, size_t n);
    std::string hex();

  private:
    void block(const uint8_t *p);
    uint32_t h_[8];
    uint8_t buf_[64];
    size_t fill_ = 0;
    uint64_t total_ = 0;
};

// sha256 of a whole file, read in 1 MiB chunks. False with *err set when unreadable.
bool sha256_file(const std::string &path, std::string *hex, std::string *err);

// What meta.yaml says besides the evaluations, which the writer records itself.
struct Meta {
    std::string producer_name;    // bitnet.cpp | llama.cpp (bitparity picks its tap map by this)
    std::string producer_source;  // repository + commit of the library that ran
    std::string producer_tool;
    std::string model_file;       // base name of the .gguf
    std::string model_sha256;
    std::string kv_type_k, kv_type_v;  // ggml type names of the KV cache
    int threads = 0;
    int n_ctx = 0;
    bool logits_all = true;       // logits_for_all_prompt_tokens
    int flash_attn = -1;          // -1: not recorded, 0/1: false/true
    std::vector<int32_t> greedy_tokens;
};

struct Evaluation {
    std::vector<int32_t> tokens;
    int32_t p0;
};

// YAML double-quoted scalar (escapes '"', '\\' and control bytes).
std::string yaml_quote(const std::string &s);

// meta.yaml text, keys in the order of the shared traces; `skipped` lines (already formatted
// as flow mappings) go under skipped_nodes when not empty.
std::string format_meta(const Meta &m, const std::vector<Evaluation> &evals, const std::vector<std::string> &skipped);

// The index.tsv header and one row (no trailing newline). Tabs and newlines inside names are
// replaced by spaces so the row keeps its column count.
std::string index_header();
std::string index_row(int64_t seq, const Node &n, const std::string &file);

// Streams one trace: open, then per evaluation begin_eval / add_node... / add_logits / end_eval,
// then finish(meta). Every call returns false with *err set on failure; after a failure the
// output file is unusable (it has no meta.yaml).
class TraceWriter {
  public:
    bool open(const std::string &path, std::string *err);
    void begin_eval(const std::vector<int32_t> &tokens, int32_t p0);
    // Records node number `seq` (the caller's counter, so skipped nodes keep their number).
    // An Unsupported node gets no member and no index row, only a skipped_nodes entry.
    bool add_node(int64_t seq, const Node &n, std::string *err);
    bool add_logits(const float *data, int64_t n_out, int64_t n_vocab, std::string *err);
    bool end_eval(std::string *err);
    bool finish(const Meta &m, std::string *err);

    int64_t nodes_written() const { return nodes_written_; }
    const std::vector<std::string> &skipped() const { return skipped_; }
    uint64_t bytes_written() const { return zip_.bytes_written(); }

  private:
    std::string prefix() const { return "e" + std::to_string(evals_.size() - 1) + "/"; }
    npzw::Writer zip_;
    std::vector<Evaluation> evals_;
    std::string index_;               // index.tsv of the open evaluation
    std::vector<float> scratch_;      // one node's float32 values, reused
    std::vector<std::string> skipped_;
    int64_t nodes_written_ = 0;
    bool in_eval_ = false;
};

}  // namespace gnodes

#endif
