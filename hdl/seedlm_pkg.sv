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
  // Row accumulators (two's complement, wrapping): SeedLM datapaths, FP16 reference.
  localparam int unsigned SeedlmAccW = 64;
  localparam int unsigned RefAccW = 80;
  // The reference reads FP16 weights, BeatW / 16 a beat.
  localparam int unsigned RefLanes = BeatW / 16;
  // The datapaths mvm_top can hold (its Datapath parameter).
  localparam int unsigned DpRef = 0;      // ref_mvm
  localparam int unsigned DpSeedlm = 1;   // seedlm_mvm: records fill whole beats (4-bit preset)
  localparam int unsigned DpSeedlm3 = 2;  // seedlm3_mvm: records through a gearbox (3-bit preset)
  // The arithmetic of seedlm_mvm (its and mvm_top's Arith parameter).
  localparam int unsigned ArithFixed = 0;  // exact integer weights n_i, integer MACs
  localparam int unsigned ArithFp16 = 1;   // each weight rounded to FP16 before the MACs
  // The tensor's exponent base e_base (two's complement), which only FP16 weights need.
  localparam int unsigned EBaseW = 8;

  // A SeedLM preset: LFSR length K, C weights and P coefficients a block record.
  typedef struct packed {
    int unsigned k;
    int unsigned c;
    int unsigned p;
  } preset_t;
  /* verilator lint_on UNUSEDPARAM */

  function automatic preset_t preset(int unsigned k, int unsigned c, int unsigned p);
    preset_t pr;
    pr.k = k;
    pr.c = c;
    pr.p = p;
    return pr;
  endfunction

  /* verilator lint_off UNUSEDPARAM */
  localparam preset_t Preset4 = preset(K, 8, 3);   // 4-bit: 32-bit records
  localparam preset_t Preset3 = preset(K, 12, 4);  // 3-bit: 36-bit records
  /* verilator lint_on UNUSEDPARAM */

  // Bits of a record: seed, E and the coefficients.
  function automatic int unsigned rec_bits(int unsigned k, int unsigned p);
    return k + EW + QW * p;
  endfunction

  // Weights a beat of whole records holds.
  function automatic int unsigned beat_lanes(preset_t pr);
    return BeatW / rec_bits(pr.k, pr.p) * pr.c;
  endfunction

  // Signed width of n_i = sum_j v_ij * q_j: |v * q| <= 2^(K-1) * 2^(QW-1), P terms.
  function automatic int unsigned n_bits(int unsigned k, int unsigned p);
    return k + QW - 1 + $clog2(p + 1);
  endfunction

  // An FP16 weight w times x as the exact integer w * x * 2^24: a finite FP16 value is
  // s * m * 2^(ex - 25), m the 11-bit significand, ex = max(exponent field, 1). The exponent
  // field 31 (Inf, NaN) is not special-cased: it reads as 2^16 * (1 + frac / 1024).
  function automatic logic signed [63:0] fp16_times_x(logic [15:0] w, logic signed [XW-1:0] x);
    logic [10:0]        mant;
    logic [4:0]         shift;
    logic signed [63:0] prod;
    mant  = {w[14:10] != 5'd0, w[9:0]};
    shift = (w[14:10] == 5'd0) ? 5'd0 : w[14:10] - 5'd1;
    prod  = 64'($signed({1'b0, mant}) * x) <<< shift;
    return w[15] ? -prod : prod;
  endfunction

endpackage
