// Reference matrix-vector datapath: y = W x with FP16 weights, 32 per 512-bit DDR beat, 32 MACs.
//
// Number formats (hdl/README.md): x is int16. An FP16 weight is exactly s * m * 2^(ex - 25)
// (m = 1.frac or 0.frac as an 11-bit integer, ex = max(exponent field, 1)), so each lane
// computes the exact integer (s * m * x) << (ex - 1) = w * x * 2^24; the row accumulator is an
// 80-bit integer, exact for cols <= 8192. y_real = y * 2^-24. The exponent field 31 (Inf, NaN)
// is not special-cased; inputs are finite.
//
// Pipeline (S0 and S1's x read in mvm_beat_front): S0 beat register, S1 x read, S2 lane
// products and beat sum, then the row accumulator and the output memory write (mvm_top).
module ref_mvm
  import seedlm_pkg::BeatW, seedlm_pkg::RefLanes;
#(
  parameter int unsigned MaxCols = 8192,
  parameter int unsigned AccW    = seedlm_pkg::RefAccW,
  localparam int unsigned WW     = 16  // an FP16 weight
) (
  input  logic clk_i,
  input  logic rst_ni,
  mvm_beat_if.lanes beat,  // Lanes = RefLanes
  mvm_acc_if.dp acc
);

  // |m * x| < 2^26 shifted by <= 29 fits 57 bits; a beat of 32 fits 62, and rows of
  // MaxCols / 32 beats must fit the accumulator.
  if (AccW < 62 + $clog2(MaxCols / RefLanes) + 1) begin : g_check_acc
    $error("AccW is too narrow for MaxCols");
  end

  // ---------------------------------------------------------------- S1: the weights
  logic [BeatW-1:0] s1_w_q;

  always_ff @(posedge clk_i) begin
    if (beat.s0_valid) s1_w_q <= beat.s0_beat;
  end

  // ---------------------------------------------------------------- S2: products, beat sum
  logic [63:0] beat_sum_d;

  always_comb begin
    beat_sum_d = '0;
    for (int l = 0; l < int'(RefLanes); l++) begin
      beat_sum_d = beat_sum_d + seedlm_pkg::fp16_times_x(s1_w_q[WW*l +: WW], beat.s1_x[l]);
    end
  end

  logic        s2_valid_q, s2_row_end_q;
  logic [63:0] s2_sum_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s2_valid_q   <= 1'b0;
      s2_row_end_q <= 1'b0;
      s2_sum_q     <= '0;
    end else begin
      s2_valid_q   <= beat.s1_valid;
      s2_row_end_q <= beat.s1_row_end;
      if (beat.s1_valid) s2_sum_q <= beat_sum_d;
    end
  end

  // ---------------------------------------------------------------- to the row accumulator
  assign acc.valid   = s2_valid_q;
  assign acc.row_end = s2_row_end_q;
  assign acc.sum     = AccW'($signed(s2_sum_q));
  assign acc.carry   = '0;

endmodule
