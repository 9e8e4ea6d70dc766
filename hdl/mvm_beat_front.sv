// Front end of the datapaths whose beats hold whole rows' worth of weights (the FP16 reference
// and seedlm_mvm): the activation memory as Lanes-wide words, the beat position within its row,
// S0 (the beat register) and S1's activation read. cols must be a multiple of Lanes; a beat's
// weights multiply activation word (beat index within the row).
module mvm_beat_front
  import seedlm_pkg::BeatW, seedlm_pkg::XW;
#(
  parameter int unsigned Lanes   = 128,
  parameter int unsigned MaxCols = 8192,
  localparam int unsigned XWords = MaxCols / Lanes,
  localparam int unsigned XAw    = $clog2(MaxCols),
  localparam int unsigned LaneAw = $clog2(Lanes),
  localparam int unsigned XWAw   = $clog2(XWords)
) (
  input  logic clk_i,
  input  logic rst_ni,
  mvm_in_if.dp in,
  mvm_beat_if.front beat
);

  if (MaxCols % Lanes != 0) begin : g_check_cols
    $error("MaxCols must be a multiple of Lanes");
  end

  // A column address splits into word and lane bits: with another lane count (C = 7 gives 112)
  // the lane bits reach past the word, and one beat in four was silently lost.
  if ((Lanes & (Lanes - 1)) != 0) begin : g_check_lanes
    $error("Lanes must be a power of two");
  end

  // ---------------------------------------------------------------- activation memory
  logic [Lanes-1:0][XW-1:0] x_mem_q [XWords];

  always_ff @(posedge clk_i) begin
    if (in.x_we) x_mem_q[in.x_addr[XAw-1:LaneAw]][in.x_addr[LaneAw-1:0]] <= in.x_data;
  end

  // ---------------------------------------------------------------- beat position, S0
  logic [XWAw:0]    beats_per_row, col_word_d, col_word_q;  // beat index within the row
  logic             in_row_end, take;
  logic             s0_valid_q, s0_row_end_q;
  logic [XWAw-1:0]  s0_word_q;
  logic [BeatW-1:0] s0_beat_q;

  assign beats_per_row = in.cols[XAw:LaneAw];
  assign in_row_end    = (col_word_q == beats_per_row - 1'b1);
  assign take          = in.rvalid && in.busy;

  always_comb begin
    col_word_d = col_word_q;
    if (in.go) col_word_d = '0;
    else if (take) col_word_d = in_row_end ? '0 : col_word_q + 1'b1;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      col_word_q   <= '0;
      s0_valid_q   <= 1'b0;
      s0_row_end_q <= 1'b0;
      s0_word_q    <= '0;
    end else begin
      col_word_q <= col_word_d;
      s0_valid_q <= take;
      if (take) begin
        s0_row_end_q <= in_row_end;
        s0_word_q    <= col_word_q[XWAw-1:0];
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (in.rvalid) s0_beat_q <= in.rdata;
  end

  assign beat.s0_valid = s0_valid_q;
  assign beat.s0_beat  = s0_beat_q;

  // ---------------------------------------------------------------- S1: activation read
  logic                     s1_valid_q, s1_row_end_q;
  logic [Lanes-1:0][XW-1:0] s1_x_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s1_valid_q   <= 1'b0;
      s1_row_end_q <= 1'b0;
    end else begin
      s1_valid_q   <= s0_valid_q;
      s1_row_end_q <= s0_row_end_q;
    end
  end

  always_ff @(posedge clk_i) begin
    if (s0_valid_q) s1_x_q <= x_mem_q[s0_word_q];
  end

  assign beat.s1_valid   = s1_valid_q;
  assign beat.s1_row_end = s1_row_end_q;
  assign beat.s1_x       = s1_x_q;

  // The low column bits are zero for valid sizes (the runner checks cols % Lanes == 0).
  logic unused_cols;
  assign unused_cols = ^in.cols[LaneAw-1:0];

endmodule
