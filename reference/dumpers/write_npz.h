// write_npz.h — a self-contained streaming .npz writer: a zip archive whose members are
// STORED (no zlib needed), ZIP64 when offsets, sizes or the member count outgrow the
// 32/16-bit fields, plus the npy 1.0 header for little-endian float32 arrays.
//
// Why stored: the dumper must build against any llama.cpp checkout with nothing but a C++17
// compiler; float32 activations deflate by only ~10 %, and numpy, Python's zipfile and
// bitparity's common/src/npz.c read stored members like deflated ones.
//
// Members are written as they come (one node at a time: nothing proportional to the whole
// trace is held in memory except the central directory), with a fixed 1980-01-01 timestamp so
// two identical runs give byte-identical files.
#ifndef BITPARITY_WRITE_NPZ_H
#define BITPARITY_WRITE_NPZ_H

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "write_npz.h writes host floats as '<f4': little-endian hosts only"
#endif

namespace npzw {

// CRC-32 (IEEE 802.3, reflected 0xEDB88320), the checksum zip stores per member.
class Crc32 {
  public:
    Crc32() {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table_[i] = c;
        }
    }
    uint32_t update(uint32_t crc, const void *data, size_t n) const {
        const uint8_t *p = static_cast<const uint8_t *>(data);
        crc = ~crc;
        for (size_t i = 0; i < n; i++) crc = table_[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

  private:
    uint32_t table_[256];
};

// The npy 1.0 header numpy itself writes for a C-order little-endian float32 array: the dict,
// space padding and '\n' so that magic + header is a multiple of 64 bytes.
inline std::string npy_header_f32(const std::vector<int64_t> &shape) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); i++) {
        if (i) dict += ", ";
        dict += std::to_string(shape[i]);
    }
    if (shape.size() == 1) dict += ",";
    dict += "), }";
    size_t total = 10 + dict.size() + 1;  // magic(6) version(2) length(2) dict '\n'
    dict.append((64 - total % 64) % 64, ' ');
    dict += '\n';
    std::string h("\x93NUMPY\x01\x00", 8);
    h += static_cast<char>(dict.size() & 0xFF);
    h += static_cast<char>(dict.size() >> 8);
    return h + dict;
}

// One piece of a member's bytes; a member is the concatenation of its pieces (the npy header
// and the array data live in different buffers, and copying a large node just to join them
// would double the peak memory).
struct Piece {
    const void *data;
    size_t size;
};

class Writer {
  public:
    Writer() = default;
    Writer(const Writer &) = delete;
    Writer &operator=(const Writer &) = delete;
    ~Writer() {
        if (f_) fclose(f_);
    }

    // Creates (truncates) path. False with *err set when it cannot be opened.
    bool open(const std::string &path, std::string *err) {
        path_ = path;
        f_ = fopen(path.c_str(), "wb");
        if (!f_) return fail(err, "cannot create");
        return true;
    }

    // Appends member `name` made of `pieces`. Names must be unique (not checked: the trace
    // writer builds them from a sequence number).
    bool add(const std::string &name, const std::vector<Piece> &pieces, std::string *err) {
        if (!f_) return fail(err, "not open");
        if (name.empty() || name.size() > 0xFFFF) return fail(err, "bad member name '" + name + "'");
        Entry e;
        e.name = name;
        e.offset = pos_;
        e.crc = 0;
        e.size = 0;
        for (const Piece &p : pieces) {
            e.crc = crc_.update(e.crc, p.data, p.size);
            e.size += p.size;
        }
        const bool big = e.size >= 0xFFFFFFFFu;
        std::string h;
        put32(h, 0x04034b50);
        put16(h, big ? 45 : 20);  // version needed: 4.5 for ZIP64
        put16(h, 0);              // flags
        put16(h, 0);              // method: stored
        put16(h, 0);              // time 00:00:00
        put16(h, kDosDate1980);
        put32(h, e.crc);
        put32(h, big ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
        put32(h, big ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
        put16(h, static_cast<uint16_t>(name.size()));
        put16(h, big ? 20 : 0);
        h += name;
        if (big) {  // ZIP64 extra: both sizes, as APPNOTE 4.5.3 requires in a local header
            put16(h, 0x0001);
            put16(h, 16);
            put64(h, e.size);
            put64(h, e.size);
        }
        if (!write(h.data(), h.size(), err)) return false;
        for (const Piece &p : pieces)
            if (!write(p.data, p.size, err)) return false;
        entries_.push_back(std::move(e));
        return true;
    }

    bool add(const std::string &name, const std::string &bytes, std::string *err) {
        return add(name, {Piece{bytes.data(), bytes.size()}}, err);
    }

    // Member `name` as an npy 1.0 float32 array of `shape` (C order, n = product of shape).
    bool add_npy_f32(const std::string &name, const std::vector<int64_t> &shape, const float *data, size_t n,
                     std::string *err) {
        const std::string h = npy_header_f32(shape);
        return add(name, {Piece{h.data(), h.size()}, Piece{data, n * sizeof(float)}}, err);
    }

    // Writes the central directory and closes the file. Nothing may be added afterwards.
    bool close(std::string *err) {
        if (!f_) return fail(err, "not open");
        const uint64_t cd_start = pos_;
        for (const Entry &e : entries_) {
            std::string c, x;
            const bool big_size = e.size >= 0xFFFFFFFFu, big_off = e.offset >= 0xFFFFFFFFu;
            if (big_size) put64(x, e.size), put64(x, e.size);  // uncompressed, compressed
            if (big_off) put64(x, e.offset);
            put32(c, 0x02014b50);
            put16(c, 0x0300 | 45);  // made by: Unix, 4.5
            put16(c, (big_size || big_off) ? 45 : 20);
            put16(c, 0);
            put16(c, 0);
            put16(c, 0);
            put16(c, kDosDate1980);
            put32(c, e.crc);
            put32(c, big_size ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
            put32(c, big_size ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
            put16(c, static_cast<uint16_t>(e.name.size()));
            put16(c, static_cast<uint16_t>(x.empty() ? 0 : x.size() + 4));
            put16(c, 0);                 // comment length
            put16(c, 0);                 // disk number
            put16(c, 0);                 // internal attributes
            put32(c, 0100644u << 16);    // external: regular file rw-r--r--
            put32(c, big_off ? 0xFFFFFFFFu : static_cast<uint32_t>(e.offset));
            c += e.name;
            if (!x.empty()) {
                put16(c, 0x0001);
                put16(c, static_cast<uint16_t>(x.size()));
                c += x;
            }
            if (!write(c.data(), c.size(), err)) return false;
        }
        const uint64_t cd_size = pos_ - cd_start, n = entries_.size();
        const bool zip64 = n >= 0xFFFF || cd_start >= 0xFFFFFFFFu || cd_size >= 0xFFFFFFFFu;
        std::string t;
        if (zip64) {
            const uint64_t z64_at = pos_;
            put32(t, 0x06064b50);  // ZIP64 end of central directory record
            put64(t, 44);          // size of the rest of this record
            put16(t, 0x0300 | 45);
            put16(t, 45);
            put32(t, 0);
            put32(t, 0);
            put64(t, n);
            put64(t, n);
            put64(t, cd_size);
            put64(t, cd_start);
            put32(t, 0x07064b50);  // locator
            put32(t, 0);
            put64(t, z64_at);
            put32(t, 1);
        }
        put32(t, 0x06054b50);
        put16(t, 0);
        put16(t, 0);
        put16(t, zip64 ? 0xFFFF : static_cast<uint16_t>(n));
        put16(t, zip64 ? 0xFFFF : static_cast<uint16_t>(n));
        put32(t, zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_size));
        put32(t, zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_start));
        put16(t, 0);
        if (!write(t.data(), t.size(), err)) return false;
        const int rc = fclose(f_);
        f_ = nullptr;
        if (rc != 0) return fail(err, "close failed (disk full?)");
        return true;
    }

    uint64_t bytes_written() const { return pos_; }

  private:
    struct Entry {
        std::string name;
        uint64_t offset, size;
        uint32_t crc;
    };
    static constexpr uint16_t kDosDate1980 = 0x0021;  // 1980-01-01

    static void put16(std::string &s, uint32_t v) {
        s += static_cast<char>(v & 0xFF);
        s += static_cast<char>((v >> 8) & 0xFF);
    }
    static void put32(std::string &s, uint32_t v) {
        put16(s, v & 0xFFFF);
        put16(s, v >> 16);
    }
    static void put64(std::string &s, uint64_t v) {
        put32(s, static_cast<uint32_t>(v));
        put32(s, static_cast<uint32_t>(v >> 32));
    }
    bool write(const void *p, size_t n, std::string *err) {
        if (n && fwrite(p, 1, n, f_) != n) return fail(err, "write failed at offset " + std::to_string(pos_));
        pos_ += n;
        return true;
    }
    bool fail(std::string *err, const std::string &why) const {
        if (err) *err = path_ + ": " + why;
        return false;
    }

    FILE *f_ = nullptr;
    std::string path_;
    uint64_t pos_ = 0;
    Crc32 crc_;
    std::vector<Entry> entries_;
};

}  // namespace npzw

#endif
