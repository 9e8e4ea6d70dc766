// Verilator harness for hw_top: a DDR model per datapath (64 bytes a beat, first-read latency,
// refresh stalls), the activation load, the run, and the outputs written to a text file.
// Usage: hw_sim --rows R --cols N --seedlm FILE --ref FILE --x FILE --out FILE
//               [--ddr-latency L] [--fill-latency F] [--refresh-period T] [--refresh-cycles S]
#include "Vhw_top.h"
#include "harness.h"
#include "verilated.h"

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    uint64_t rows = 0, cols = 0;
    uint64_t ddr_latency = 60, fill_latency = 160, refresh_period = 1560, refresh_cycles = 62;
    std::string seedlm_path, ref_path, x_path, out_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) die("missing value after " + a);
        const char* v = argv[++i];
        if (a == "--rows") rows = parse_u64(v, "--rows");
        else if (a == "--cols") cols = parse_u64(v, "--cols");
        else if (a == "--seedlm") seedlm_path = v;
        else if (a == "--ref") ref_path = v;
        else if (a == "--x") x_path = v;
        else if (a == "--out") out_path = v;
        else if (a == "--ddr-latency") ddr_latency = parse_u64(v, "--ddr-latency");
        else if (a == "--fill-latency") fill_latency = parse_u64(v, "--fill-latency");
        else if (a == "--refresh-period") refresh_period = parse_u64(v, "--refresh-period");
        else if (a == "--refresh-cycles") refresh_cycles = parse_u64(v, "--refresh-cycles");
        else die("unknown option " + a);
    }
    if (rows == 0 || rows > 8192 || cols == 0 || cols > 8192 || cols % 128 != 0)
        die("rows must be in 1..8192 and cols a multiple of 128 in 128..8192");
    if (seedlm_path.empty() || ref_path.empty() || x_path.empty() || out_path.empty())
        die("--seedlm, --ref, --x and --out are required");

    const uint64_t weights = rows * cols;
    std::vector<uint8_t> seedlm = read_file(seedlm_path, weights / 2);
    std::vector<uint8_t> ref = read_file(ref_path, weights * 2);
    std::vector<uint8_t> x = read_file(x_path, cols * 2);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vhw_top>(ctx.get());
    auto tick = [&]() {
        top->clk_i = 0;
        top->eval();
        top->clk_i = 1;
        top->eval();
    };

    top->rst_ni = 0;
    top->s_start_i = 0;
    top->r_start_i = 0;
    top->x_we_i = 0;
    top->s_rvalid_i = 0;
    top->r_rvalid_i = 0;
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

    Ddr ds{&seedlm, weights / 128, ddr_latency + fill_latency, refresh_period, refresh_cycles};
    Ddr dr{&ref, weights / 32, ddr_latency, refresh_period, refresh_cycles};

    top->s_start_i = 1;
    top->r_start_i = 1;
    tick();
    top->s_start_i = 0;
    top->r_start_i = 0;

    const uint64_t max_cycles = 64 * (weights / 32) + 100000;
    uint64_t t = 0;
    for (;; ++t) {
        if (t > max_cycles) die("simulation did not finish");
        top->clk_i = 0;
        top->eval();
        if (top->s_rd_req_o && !ds.requested) ds.requested = true, ds.t0 = t;
        if (top->r_rd_req_o && !dr.requested) dr.requested = true, dr.t0 = t;
        if (ds.requested && dr.requested && !top->s_busy_o && !top->r_busy_o) break;
        top->s_rvalid_i = ds.present(t, top->s_rdata_i);
        top->r_rvalid_i = dr.present(t, top->r_rdata_i);
        top->clk_i = 1;
        top->eval();
    }

    std::string tmp = out_path + ".part";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) die("cannot write " + tmp);
    std::fprintf(f, "seedlm_cycles %" PRIu32 "\n", top->s_cycles_o);
    std::fprintf(f, "reference_cycles %" PRIu32 "\n", top->r_cycles_o);
    std::fprintf(f, "seedlm_refresh_stalls %" PRIu64 "\n", ds.stalls);
    std::fprintf(f, "reference_refresh_stalls %" PRIu64 "\n", dr.stalls);
    for (uint64_t r = 0; r < rows; ++r) {
        top->y_raddr_i = r;
        top->eval();
        std::fprintf(f, "ys %016" PRIx64 "\n", uint64_t(top->s_y_o));
        std::fprintf(f, "yr %04" PRIx32 "%08" PRIx32 "%08" PRIx32 "\n", top->r_y_o[2] & 0xffffu,
                     top->r_y_o[1], top->r_y_o[0]);
    }
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), out_path.c_str()) != 0)
        die("cannot write " + out_path);
    top->final();
    return 0;
}
