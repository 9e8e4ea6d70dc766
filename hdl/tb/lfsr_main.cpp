// Verilator harness for seedlm_lfsr_jump (built with --prefix Vtop): reads seeds (decimal, one a
// line) from stdin and prints the 24 states that follow each, in hex, space-separated, one line
// per seed.
#include "Vtop.h"
#include "verilated.h"

#include <cstdint>
#include <cstdio>
#include <memory>

int main() {
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get());
    unsigned seed = 0;
    while (std::scanf("%u", &seed) == 1) {
        top->seed_i = seed & 0xffffu;
        top->eval();
        for (int t = 0; t < 24; ++t) {
            int bit = 16 * t;
            uint32_t s = (top->states_o[bit / 32] >> (bit % 32)) & 0xffffu;
            std::printf(t ? " %04x" : "%04x", s);
        }
        std::printf("\n");
    }
    top->final();
    return 0;
}
