// Verilator harness for seedlm3_mvm (3-bit preset, 36-bit records through a gearbox): the DDR
// model, the activation load, the run, and the outputs written to a text file.
// Usage: hw3_sim --rows R --cols N --seedlm FILE --x FILE --out FILE
//                [--ddr-latency L] [--fill-latency F] [--refresh-period T] [--refresh-cycles S]
// FILE holds the packed record stream, zero-padded to whole 64-byte beats.
#include "Vseedlm3_mvm.h"
#include "harness.h"
#include "verilated.h"

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    uint64_t rows = 0, cols = 0;
    uint64_t ddr_latency = 60, fill_latency = 160, refresh_period = 1560, refresh_cycles = 62;
    std::string seedlm_path, x_path, out_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) die("missing value after " + a);
        const char* v = argv[++i];
        if (a == "--rows") rows = parse_u64(v, "--rows");
        else if (a == "--cols") cols = parse_u64(v, "--cols");
        else if (a == "--seedlm") seedlm_path = v;
        else if (a == "--x") x_path = v;
        else if (a == "--out") out_path = v;
        else if (a == "--ddr-latency") ddr_latency = parse_u64(v, "--ddr-latency");
        else if (a == "--fill-latency") fill_latency = parse_u64(v, "--fill-latency");
        else if (a == "--refresh-period") refresh_period = parse_u64(v, "--refresh-period");
        else if (a == "--refresh-cycles") refresh_cycles = parse_u64(v, "--refresh-cycles");
        else die("unknown option " + a);
    }
    // Columns at least one group (180 weights) wide: a group spans at most two rows.
    if (rows == 0 || rows > 8192 || cols < 180 || cols > 8192)
        die("rows must be in 1..8192 and cols in 180..8192");
    if (seedlm_path.empty() || x_path.empty() || out_path.empty())
        die("--seedlm, --x and --out are required");

    const uint64_t records = (rows * cols + 11) / 12;
    const uint64_t beats = (records * 36 + 511) / 512;
    std::vector<uint8_t> seedlm = read_file(seedlm_path, beats * kBeatBytes);
    std::vector<uint8_t> x = read_file(x_path, cols * 2);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vseedlm3_mvm>(ctx.get());
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

    Ddr ddr{&seedlm, beats, ddr_latency + fill_latency, refresh_period, refresh_cycles};

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
    std::fprintf(f, "seedlm3_cycles %" PRIu32 "\n", top->cycles_o);
    std::fprintf(f, "seedlm3_refresh_stalls %" PRIu64 "\n", ddr.stalls);
    for (uint64_t r = 0; r < rows; ++r) {
        top->y_raddr_i = r;
        top->eval();
        std::fprintf(f, "ys %016" PRIx64 "\n", uint64_t(top->y_rdata_o));
    }
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), out_path.c_str()) != 0)
        die("cannot write " + out_path);
    top->final();
    return 0;
}
