// Front end shared by the datapaths whose beats hold whole rows' worth of weights (the FP16
// reference and the 4-bit SeedLM design): the activation memory as Lanes-wide words, the beat
// position within its row, S0 (the beat register) and S1's activation read. cols_i must be a
// multiple of Lanes; a beat's weights multiply activation word (beat index within the row).
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
  input  logic                   clk_i,
  input  logic                   rst_ni,
  input  logic                   go_i,
  input  logic                   busy_i,
  input  logic [XAw:0]           cols_i,
  // Activation memory write port (used before start).
  input  logic                   x_we_i,
  input  logic [XAw-1:0]         x_addr_i,
  input  logic [XW-1:0]          x_data_i,
  // DDR response beats.
  input  logic                   rvalid_i,
  input  logic [BeatW-1:0]       rdata_i,
  // S0: the beat.
  output logic                   s0_valid_o,
  output logic [BeatW-1:0]       s0_beat_o,
  // S1: the activations of the beat in S0 a cycle earlier, and whether it ends its row.
  output logic                   s1_valid_o,
  output logic                   s1_row_end_o,
  output logic [Lanes-1:0][XW-1:0] s1_x_o
);

  if (MaxCols % Lanes != 0) begin : g_check_cols
    $error("MaxCols must be a multiple of Lanes");
  end

  // ---------------------------------------------------------------- activation memory
  logic [Lanes-1:0][XW-1:0] x_mem_q [XWords];

  always_ff @(posedge clk_i) begin
    if (x_we_i) x_mem_q[x_addr_i[XAw-1:LaneAw]][x_addr_i[LaneAw-1:0]] <= x_data_i;
  end

  // ---------------------------------------------------------------- beat position, S0
  logic [XWAw:0]   beats_per_row, col_word_d, col_word_q;  // beat index within the row
  logic            in_row_end, take;
  logic            s0_valid_q, s0_row_end_q;
  logic [XWAw-1:0] s0_word_q;
  logic [BeatW-1:0] s0_beat_q;

  assign beats_per_row = cols_i[XAw:LaneAw];
  assign in_row_end    = (col_word_q == beats_per_row - 1'b1);
  assign take          = rvalid_i && busy_i;

  always_comb begin
    col_word_d = col_word_q;
    if (go_i) col_word_d = '0;
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
    if (rvalid_i) s0_beat_q <= rdata_i;
  end

  assign s0_valid_o = s0_valid_q;
  assign s0_beat_o  = s0_beat_q;

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

  assign s1_valid_o   = s1_valid_q;
  assign s1_row_end_o = s1_row_end_q;
  assign s1_x_o       = s1_x_q;

  // The low column bits are zero for valid sizes (the runner checks cols % Lanes == 0).
  logic unused_cols;
  assign unused_cols = ^cols_i[LaneAw-1:0];

endmodule
