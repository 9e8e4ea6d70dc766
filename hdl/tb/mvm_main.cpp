// Verilator harness of every matrix-vector datapath (ref_mvm, seedlm_mvm, seedlm3_mvm, built
// with --prefix Vtop: they share one port list): reset, the activation load, the run against the
// DDR model, and the outputs written to a text file.
// Usage: mvm_sim --rows R --cols N --weights FILE --x FILE --out FILE
//                [--latency L] [--refresh-period T] [--refresh-cycles S] [--e-base E]
// The weight FILE is the DDR stream in whole 64-byte beats; x is int16, little-endian; E is the
// tensor's exponent base (-128..127), which only the FP16-converting datapath reads.
// Output lines: `cycles N`, `refresh_stalls N`, then `y HEX` per row (the accumulator's bits).
#include "Vtop.h"
#include "harness.h"
#include "verilated.h"

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

static void print_hex(FILE* f, QData v) { std::fprintf(f, "%016" PRIx64, uint64_t(v)); }

template <std::size_t N>
static void print_hex(FILE* f, const VlWide<N>& v) {
    for (std::size_t w = N; w-- > 0;) std::fprintf(f, "%08" PRIx32, v[w]);
}

int main(int argc, char** argv) {
    uint64_t rows = 0, cols = 0;
    uint64_t latency = 60, refresh_period = 1560, refresh_cycles = 62;
    int64_t e_base = 0;
    std::string weights_path, x_path, out_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) die("missing value after " + a);
        const char* v = argv[++i];
        if (a == "--rows") rows = parse_u64(v, "--rows");
        else if (a == "--cols") cols = parse_u64(v, "--cols");
        else if (a == "--weights") weights_path = v;
        else if (a == "--x") x_path = v;
        else if (a == "--out") out_path = v;
        else if (a == "--latency") latency = parse_u64(v, "--latency");
        else if (a == "--refresh-period") refresh_period = parse_u64(v, "--refresh-period");
        else if (a == "--refresh-cycles") refresh_cycles = parse_u64(v, "--refresh-cycles");
        else if (a == "--e-base") e_base = parse_i64(v, "--e-base");
        else die("unknown option " + a);
    }
    // The memories' bounds; each datapath's own shape rules are checked by the runner.
    if (rows == 0 || rows > 8192 || cols == 0 || cols > 8192)
        die("rows and cols must be in 1..8192");
    if (weights_path.empty() || x_path.empty() || out_path.empty())
        die("--weights, --x and --out are required");

    std::vector<uint8_t> weights = read_file(weights_path);
    if (weights.empty() || weights.size() % kBeatBytes != 0)
        die(weights_path + ": not a whole number of 64-byte beats");
    std::vector<uint8_t> x = read_file(x_path);
    if (x.size() != cols * 2) die(x_path + ": expected " + std::to_string(cols * 2) + " bytes");
    const uint64_t beats = weights.size() / kBeatBytes;

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get());
    auto tick = [&]() {
        top->clk_i = 0;
        top->eval();
        top->clk_i = 1;
        top->eval();
    };

    top->rst_ni = 0;
    top->start_i = 0;
    top->x_we_i = 0;
    top->rvalid_i = 0;
    top->rows_i = rows;
    top->cols_i = cols;
    if (e_base < -128 || e_base > 127) die("--e-base must be in -128..127");
    top->e_base_i = uint8_t(int8_t(e_base));
    tick();
    tick();
    top->rst_ni = 1;
    tick();

    for (uint64_t i = 0; i < cols; ++i) {
        top->x_we_i = 1;
        top->x_addr_i = i;
        top->x_data_i = uint16_t(x[2 * i] | x[2 * i + 1] << 8);
        tick();
    }
    top->x_we_i = 0;

    Ddr ddr{&weights, beats, latency, refresh_period, refresh_cycles};

    top->start_i = 1;
    tick();
    top->start_i = 0;

    const uint64_t max_cycles = 64 * beats + 100000;
    for (uint64_t t = 0;; ++t) {
        if (t > max_cycles) die("simulation did not finish");
        top->clk_i = 0;
        top->eval();
        if (top->rd_req_o && !ddr.requested) ddr.requested = true, ddr.t0 = t;
        if (ddr.requested && !top->busy_o) break;
        top->rvalid_i = ddr.present(t, top->rdata_i);
        top->clk_i = 1;
        top->eval();
    }

    std::string tmp = out_path + ".part";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) die("cannot write " + tmp);
    std::fprintf(f, "cycles %" PRIu32 "\n", top->cycles_o);
    std::fprintf(f, "refresh_stalls %" PRIu64 "\n", ddr.stalls);
    for (uint64_t r = 0; r < rows; ++r) {
        top->y_raddr_i = r;
        top->eval();
        std::fprintf(f, "y ");
        print_hex(f, top->y_rdata_o);
        std::fprintf(f, "\n");
    }
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), out_path.c_str()) != 0)
        die("cannot write " + out_path);
    top->final();
    return 0;
}
