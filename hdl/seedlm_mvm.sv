// SeedLM matrix-vector datapath: y = W_hat x for a rows x cols matrix stored as block records
// that fill whole 512-bit DDR beats (the 4-bit preset: 32-bit records, 16 = 128 weights a beat,
// 128 MACs).
//
// Number formats (hdl/README.md), chosen by Arith. x is int16.
// - ArithFixed (default): per weight the exact integer n_i (21 bits) is multiplied by x and the
//   record's C products are summed and shifted left by E; the row accumulator is a 64-bit
//   integer, exact for cols <= 8192. y_real = y * 2^e_base / 32767.
// - ArithFp16: each weight n_i * 2^(E + e_base - 15) is rounded to FP16 (seedlm_fp16_convert),
//   then multiplied by x and summed exactly as the FP16 reference does (w * x * 2^24, 80-bit
//   row accumulator), so the FP16 rounding is the only approximation.
//   y_real = y * 2^-24 * 32768 / 32767.
//
// Pipeline (S0 and S1's x read in mvm_beat_front): S0 beat register, S1 record decode (LFSR
// jump + coefficients) and x read, S2 per-record dot products scaled by 2^E (or, in FP16, the
// conversion and the products), S3 beat sum, then the row accumulator and the output memory
// write (mvm_top).
module seedlm_mvm
  import seedlm_pkg::BeatW, seedlm_pkg::XW, seedlm_pkg::EW, seedlm_pkg::QW;
  import seedlm_pkg::SeedlmAccW, seedlm_pkg::preset_t, seedlm_pkg::rec_bits, seedlm_pkg::n_bits;
  import seedlm_pkg::ArithFixed, seedlm_pkg::ArithFp16, seedlm_pkg::EBaseW;
#(
  parameter preset_t Preset       = seedlm_pkg::Preset4,
  parameter int unsigned MaxCols  = 8192,
  parameter int unsigned Arith    = ArithFixed,
  localparam int unsigned K       = Preset.k,
  localparam int unsigned C       = Preset.c,
  localparam int unsigned P       = Preset.p,
  localparam int unsigned RecBits = rec_bits(Preset.k, Preset.p),
  localparam int unsigned Records = BeatW / RecBits,
  localparam int unsigned NW      = n_bits(Preset.k, Preset.p),
  localparam int unsigned AccW    = (Arith == ArithFp16) ? seedlm_pkg::RefAccW : SeedlmAccW
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic [EBaseW-1:0] e_base_i,  // the tensor's exponent base (FP16 weights only)
  mvm_beat_if.lanes beat,  // Lanes = seedlm_pkg::beat_lanes(Preset)
  mvm_acc_if.dp acc        // of AccW
);

  if (BeatW % RecBits != 0) begin : g_check_beat
    $error("records must fill whole beats (the 3-bit layout needs seedlm3_mvm)");
  end
  // A row sums MaxCols products |v * q * x| <= 2^(K-1+QW-1+XW-1), P a weight, shifted by E:
  // its magnitude stays below 2^(clog2(P+1) + K + QW + XW - 3 + 2^EW - 1 + clog2(MaxCols)).
  if ($clog2(P + 1) + K + QW + XW - 3 + 2 ** EW - 1 + $clog2(MaxCols) >= SeedlmAccW)
  begin : g_check_acc
    $error("the 64-bit accumulator is not exact for MaxCols");
  end
  if (Arith > ArithFp16) begin : g_check_arith
    $error("Arith must be ArithFixed or ArithFp16");
  end

  // ---------------------------------------------------------------- S1: decode
  logic [Records-1:0][C-1:0][NW-1:0] n_d, s1_n_q;
  logic [Records-1:0][EW-1:0]        e_d, s1_e_q;

  seedlm_record_decode #(
    .Preset (Preset),
    .Records(Records)
  ) u_decode (
    .records_i(beat.s0_beat[Records*RecBits-1:0]),
    .n_o      (n_d),
    .e_code_o (e_d)
  );

  always_ff @(posedge clk_i) begin
    if (beat.s0_valid) begin
      s1_n_q <= n_d;
      s1_e_q <= e_d;
    end
  end

  // ---------------------------------------------------------------- S2: record dot products
  logic [Records-1:0][SeedlmAccW-1:0] rec_sum_d;

  for (genvar r = 0; r < Records; r++) begin : g_dot
    if (Arith == ArithFp16) begin : g_fp16
      logic [C-1:0][15:0] w;
      for (genvar i = 0; i < C; i++) begin : g_convert
        seedlm_fp16_convert #(
          .K (K),
          .NW(NW)
        ) u_convert (
          .n_i     (s1_n_q[r][i]),
          .e_code_i(s1_e_q[r]),
          .e_base_i,
          .fp16_o  (w[i])
        );
      end
      // |w * x * 2^24| < 2^56 a lane (exponent 31 included), so a beat of 128 fits 64 bits.
      always_comb begin
        rec_sum_d[r] = '0;
        for (int i = 0; i < int'(C); i++) begin
          rec_sum_d[r] = rec_sum_d[r] + seedlm_pkg::fp16_times_x(w[i], beat.s1_x[r*C+i]);
        end
      end
    end else begin : g_fixed
      always_comb begin
        logic signed [SeedlmAccW-1:0] dot;
        dot = '0;
        for (int i = 0; i < int'(C); i++) begin
          dot = dot + SeedlmAccW'($signed(s1_n_q[r][i]) * $signed(beat.s1_x[r*C+i]));
        end
        rec_sum_d[r] = SeedlmAccW'(dot <<< s1_e_q[r]);
      end
    end
  end

  if (Arith != ArithFp16) begin : g_no_e_base
    logic unused_e_base;
    assign unused_e_base = ^e_base_i;
  end

  logic                               s2_valid_q, s2_row_end_q;
  logic [Records-1:0][SeedlmAccW-1:0] s2_sum_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s2_valid_q   <= 1'b0;
      s2_row_end_q <= 1'b0;
    end else begin
      s2_valid_q   <= beat.s1_valid;
      s2_row_end_q <= beat.s1_row_end;
    end
  end

  always_ff @(posedge clk_i) begin
    if (beat.s1_valid) s2_sum_q <= rec_sum_d;
  end

  // ---------------------------------------------------------------- S3: beat sum
  logic [SeedlmAccW-1:0] beat_sum_d;

  always_comb begin
    beat_sum_d = '0;
    for (int r = 0; r < int'(Records); r++) beat_sum_d = beat_sum_d + s2_sum_q[r];
  end

  logic                  s3_valid_q, s3_row_end_q;
  logic [SeedlmAccW-1:0] s3_sum_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s3_valid_q   <= 1'b0;
      s3_row_end_q <= 1'b0;
      s3_sum_q     <= '0;
    end else begin
      s3_valid_q   <= s2_valid_q;
      s3_row_end_q <= s2_row_end_q;
      if (s2_valid_q) s3_sum_q <= beat_sum_d;
    end
  end

  // ---------------------------------------------------------------- to the row accumulator
  assign acc.valid   = s3_valid_q;
  assign acc.row_end = s3_row_end_q;
  assign acc.sum     = AccW'($signed(s3_sum_q));
  assign acc.carry   = '0;

endmodule
