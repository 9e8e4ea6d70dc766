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
module ref_mvm #(
  parameter int unsigned MaxCols = 8192,
  parameter int unsigned MaxRows = 8192,
  localparam int unsigned Lanes = 32,
  localparam int unsigned AccW = 80,
  localparam int unsigned XWords = MaxCols / Lanes,
  localparam int unsigned XAw = $clog2(MaxCols),
  localparam int unsigned XWAw = $clog2(XWords),
  localparam int unsigned RowAw = $clog2(MaxRows)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  // Run control; rows_i and beats_per_row_i (= cols / 32) are held while busy.
  input  logic             start_i,
  input  logic [RowAw:0]   rows_i,
  input  logic [XWAw:0]    beats_per_row_i,
  // Activation memory write port (used before start).
  input  logic             x_we_i,
  input  logic [XAw-1:0]   x_addr_i,
  input  logic [15:0]      x_data_i,
  // DDR: one read request for all beats, then in-order response beats.
  output logic             rd_req_o,
  input  logic             rvalid_i,
  input  logic [511:0]     rdata_i,
  // Output memory read port.
  input  logic [RowAw-1:0] y_raddr_i,
  output logic [AccW-1:0]  y_rdata_o,
  // Status: cycles from the read request to the last output write, inclusive.
  output logic             busy_o,
  output logic [31:0]      cycles_o
);

  // ---------------------------------------------------------------- activation memory
  logic [Lanes-1:0][15:0] x_mem_q [XWords];

  always_ff @(posedge clk_i) begin
    if (x_we_i) x_mem_q[x_addr_i[XAw-1:$clog2(Lanes)]][x_addr_i[$clog2(Lanes)-1:0]] <= x_data_i;
  end

  // ---------------------------------------------------------------- control and S0
  logic             busy_q, rd_req_q;
  logic [31:0]      cycles_q;
  logic [XWAw:0]    col_word_q;
  logic             last_write;

  logic             s0_valid_q, s0_row_end_q;
  logic [XWAw-1:0]  s0_word_q;
  logic [511:0]     s0_beat_q;

  wire in_row_end = (col_word_q == beats_per_row_i - 1'b1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      busy_q       <= 1'b0;
      rd_req_q     <= 1'b0;
      cycles_q     <= '0;
      col_word_q   <= '0;
      s0_valid_q   <= 1'b0;
      s0_row_end_q <= 1'b0;
      s0_word_q    <= '0;
    end else begin
      rd_req_q <= start_i && !busy_q;
      if (start_i && !busy_q) begin
        busy_q     <= 1'b1;
        cycles_q   <= 32'd1;
        col_word_q <= '0;
      end else if (busy_q) begin
        if (last_write) busy_q <= 1'b0;
        else cycles_q <= cycles_q + 1'b1;
      end
      s0_valid_q <= rvalid_i && busy_q;
      if (rvalid_i && busy_q) begin
        s0_row_end_q <= in_row_end;
        s0_word_q    <= col_word_q[XWAw-1:0];
        col_word_q   <= in_row_end ? '0 : col_word_q + 1'b1;
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (rvalid_i) s0_beat_q <= rdata_i;
  end

  assign rd_req_o = rd_req_q;
  assign busy_o   = busy_q;
  assign cycles_o = cycles_q;

  // ---------------------------------------------------------------- S1: x read
  logic                   s1_valid_q, s1_row_end_q;
  logic [511:0]           s1_w_q;
  logic [Lanes-1:0][15:0] s1_x_q;

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
    if (s0_valid_q) begin
      s1_w_q <= s0_beat_q;
      s1_x_q <= x_mem_q[s0_word_q];
    end
  end

  // ---------------------------------------------------------------- S2: products, beat sum
  // |m * x| < 2^26, shifted by <= 30: each product fits 57 bits, the beat sum 62.
  logic [63:0] beat_sum_d;

  always_comb begin
    logic [15:0]        w;
    logic [10:0]        mant;
    logic [4:0]         shift;
    logic signed [63:0] prod;
    beat_sum_d = '0;
    for (int l = 0; l < int'(Lanes); l++) begin
      w     = s1_w_q[16*l +: 16];
      mant  = {w[14:10] != 5'd0, w[9:0]};
      shift = (w[14:10] == 5'd0) ? 5'd0 : w[14:10] - 5'd1;
      prod  = 64'($signed({1'b0, mant}) * $signed(s1_x_q[l])) <<< shift;
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
      s2_valid_q   <= s1_valid_q;
      s2_row_end_q <= s1_row_end_q;
      if (s1_valid_q) s2_sum_q <= beat_sum_d;
    end
  end

  // ---------------------------------------------------------------- row accumulator, output
  logic [AccW-1:0] acc_q;
  logic [RowAw:0]  out_row_q;
  logic [AccW-1:0] y_mem_q [MaxRows];

  wire [AccW-1:0] acc_next = acc_q + AccW'($signed(s2_sum_q));
  wire            y_we     = s2_valid_q && s2_row_end_q;
  assign last_write = y_we && (out_row_q == rows_i - 1'b1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      acc_q     <= '0;
      out_row_q <= '0;
    end else if (start_i && !busy_q) begin
      acc_q     <= '0;
      out_row_q <= '0;
    end else if (s2_valid_q) begin
      acc_q <= y_we ? '0 : acc_next;
      if (y_we) out_row_q <= out_row_q + 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (y_we) y_mem_q[out_row_q[RowAw-1:0]] <= acc_next;
  end

  assign y_rdata_o = y_mem_q[y_raddr_i];

endmodule
