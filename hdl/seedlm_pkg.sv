// Widths, record fields and LFSR taps shared by the datapaths (formats in hdl/README.md).
package seedlm_pkg;

  /* verilator lint_off UNUSEDPARAM */
  // One DDR beat, one activation (int16) and the cycle counter.
  localparam int unsigned BeatW = 512;
  localparam int unsigned XW = 16;
  localparam int unsigned CyclesW = 32;
  // The hardware LFSR: K = 16 with taps 0, 1, 3, 12 (Table 6).
  localparam int unsigned K = 16;
  localparam logic [K-1:0] TapMask = 16'h100B;
  // Record fields, LSB first: seed [K-1:0], E [K+EW-1:K], q_j [K+EW+QW*j +: QW].
  localparam int unsigned EW = 4;
  localparam int unsigned QW = 4;
  // Row accumulators of the SeedLM datapaths (two's complement, wrapping).
  localparam int unsigned SeedlmAccW = 64;
  /* verilator lint_on UNUSEDPARAM */

  // Bits of a record with P coefficients and a K-bit seed.
  function automatic int unsigned rec_bits(int unsigned k, int unsigned p);
    return k + EW + QW * p;
  endfunction

  // Signed width of n_i = sum_j v_ij * q_j: |v * q| <= 2^(K-1) * 2^(QW-1), P terms.
  function automatic int unsigned n_bits(int unsigned k, int unsigned p);
    return k + QW - 1 + $clog2(p + 1);
  endfunction

endpackage
