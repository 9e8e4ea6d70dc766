// Helpers of the matrix-vector harness (mvm_main.cpp): argument and file helpers, and the DDR
// read-channel model (64 bytes a beat, a first-read latency, refresh windows during which no
// data is returned).
#pragma once

#include "verilated.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

constexpr uint64_t kBeatBytes = 64;

// In-order read channel: one request for the whole matrix, then one beat a cycle once the
// first-read latency has passed, except during refresh windows (refresh_cycles out of every
// refresh_period cycles, counted from the request).
struct Ddr {
    const std::vector<uint8_t>* data = nullptr;
    uint64_t beats = 0;
    uint64_t latency = 0;
    uint64_t period = 0;
    uint64_t refresh = 0;
    bool requested = false;
    uint64_t t0 = 0;
    uint64_t next = 0;
    uint64_t stalls = 0;

    bool present(uint64_t t, VlWide<16>& out) {
        if (!requested || next >= beats || t < t0 + latency) return false;
        if (period != 0 && (t - t0) % period < refresh) {
            ++stalls;
            return false;
        }
        const uint8_t* p = data->data() + next * kBeatBytes;
        for (int w = 0; w < 16; ++w) {
            out[w] = uint32_t(p[4 * w]) | uint32_t(p[4 * w + 1]) << 8 |
                     uint32_t(p[4 * w + 2]) << 16 | uint32_t(p[4 * w + 3]) << 24;
        }
        ++next;
        return true;
    }
};

[[noreturn]] inline void die(const std::string& msg) {
    std::fprintf(stderr, "hw_sim: %s\n", msg.c_str());
    std::exit(2);
}

inline std::vector<uint8_t> read_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) die("cannot open " + path);
    std::vector<uint8_t> buf;
    uint8_t chunk[1 << 16];
    size_t got = 0;
    while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0)
        buf.insert(buf.end(), chunk, chunk + got);
    bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) die("cannot read " + path);
    return buf;
}

inline uint64_t parse_u64(const char* s, const char* name) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (!*s || *end) die(std::string("bad value for ") + name + ": " + s);
    return v;
}

inline int64_t parse_i64(const char* s, const char* name) {
    char* end = nullptr;
    long long v = std::strtoll(s, &end, 10);
    if (!*s || *end) die(std::string("bad value for ") + name + ": " + s);
    return v;
}
