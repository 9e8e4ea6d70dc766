// Reference matrix-vector datapath: y = W x with FP16 weights, 32 per 512-bit DDR beat, 32 MACs.
//
// Number formats (hdl/README.md): x is int16. An FP16 weight is exactly s * m * 2^(ex - 25)
// (m = 1.frac or 0.frac as an 11-bit integer, ex = max(exponent field, 1)), so each lane
// computes the exact integer (s * m * x) << (ex - 1) = w * x * 2^24; the row accumulator is an
// 80-bit integer, exact for cols <= 8192. y_real = y * 2^-24. The exponent field 31 (Inf, NaN)
// is not special-cased; inputs are finite.
//
// Pipeline: S0 beat register, S1 x read, S2 lane products and beat sum, then the row
// accumulator and the output memory write.
module ref_mvm
  import seedlm_pkg::BeatW, seedlm_pkg::XW, seedlm_pkg::CyclesW;
#(
  parameter int unsigned MaxCols = 8192,
  parameter int unsigned MaxRows = 8192,
  parameter int unsigned AccW    = 80,
  localparam int unsigned WW     = 16,  // an FP16 weight
  localparam int unsigned Lanes  = BeatW / WW,
  localparam int unsigned XAw    = $clog2(MaxCols),
  localparam int unsigned RowAw  = $clog2(MaxRows)
) (
  input  logic               clk_i,
  input  logic               rst_ni,
  // Run control; rows_i and cols_i (a multiple of 32) are held while busy.
  input  logic               start_i,
  input  logic [RowAw:0]     rows_i,
  input  logic [XAw:0]       cols_i,
  // Activation memory write port (used before start).
  input  logic               x_we_i,
  input  logic [XAw-1:0]     x_addr_i,
  input  logic [XW-1:0]      x_data_i,
  // DDR: one read request for all beats, then in-order response beats.
  output logic               rd_req_o,
  input  logic               rvalid_i,
  input  logic [BeatW-1:0]   rdata_i,
  // Output memory read port.
  input  logic [RowAw-1:0]   y_raddr_i,
  output logic [AccW-1:0]    y_rdata_o,
  // Status: cycles from the read request to the last output write, inclusive.
  output logic               busy_o,
  output logic [CyclesW-1:0] cycles_o
);

  // |m * x| < 2^26 shifted by <= 29 fits 57 bits; a beat of 32 fits 62, and rows of
  // 8192 / 32 beats fit 70 in the accumulator.
  if (AccW < 62 + $clog2(MaxCols / Lanes) + 1) begin : g_check_acc
    $error("AccW is too narrow for MaxCols");
  end

  logic go, busy, last_write;

  mvm_ctrl u_ctrl (
    .clk_i,
    .rst_ni,
    .start_i,
    .last_write_i(last_write),
    .go_o        (go),
    .rd_req_o,
    .busy_o      (busy),
    .cycles_o
  );
  assign busy_o = busy;

  // ---------------------------------------------------------------- S0, S1: beat and x read
  logic                     s0_valid, s1_valid, s1_row_end;
  logic [BeatW-1:0]         s0_beat;
  logic [Lanes-1:0][XW-1:0] s1_x;

  mvm_beat_front #(
    .Lanes  (Lanes),
    .MaxCols(MaxCols)
  ) u_front (
    .clk_i,
    .rst_ni,
    .go_i        (go),
    .busy_i      (busy),
    .cols_i,
    .x_we_i,
    .x_addr_i,
    .x_data_i,
    .rvalid_i,
    .rdata_i,
    .s0_valid_o  (s0_valid),
    .s0_beat_o   (s0_beat),
    .s1_valid_o  (s1_valid),
    .s1_row_end_o(s1_row_end),
    .s1_x_o      (s1_x)
  );

  logic [BeatW-1:0] s1_w_q;

  always_ff @(posedge clk_i) begin
    if (s0_valid) s1_w_q <= s0_beat;
  end

  // ---------------------------------------------------------------- S2: products, beat sum
  logic [63:0] beat_sum_d;

  always_comb begin
    logic [WW-1:0]      w;
    logic [10:0]        mant;
    logic [4:0]         shift;
    logic signed [63:0] prod;
    beat_sum_d = '0;
    for (int l = 0; l < int'(Lanes); l++) begin
      w     = s1_w_q[WW*l +: WW];
      mant  = {w[14:10] != 5'd0, w[9:0]};
      shift = (w[14:10] == 5'd0) ? 5'd0 : w[14:10] - 5'd1;
      prod  = 64'($signed({1'b0, mant}) * $signed(s1_x[l])) <<< shift;
      beat_sum_d = beat_sum_d + (w[15] ? -prod : prod);
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
      s2_valid_q   <= s1_valid;
      s2_row_end_q <= s1_row_end;
      if (s1_valid) s2_sum_q <= beat_sum_d;
    end
  end

  // ---------------------------------------------------------------- row accumulator, output
  mvm_row_acc #(
    .AccW   (AccW),
    .MaxRows(MaxRows)
  ) u_acc (
    .clk_i,
    .rst_ni,
    .clear_i     (go),
    .rows_i,
    .valid_i     (s2_valid_q),
    .row_end_i   (s2_row_end_q),
    .sum_i       (AccW'($signed(s2_sum_q))),
    .carry_i     ('0),
    .last_write_o(last_write),
    .y_raddr_i,
    .y_rdata_o
  );

endmodule
