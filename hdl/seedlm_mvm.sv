// SeedLM matrix-vector datapath: y = W_hat x for a rows x cols matrix stored as 4-bit-preset
// block records, 16 records (128 weights) per 512-bit DDR beat, 128 MACs.
//
// Number formats (hdl/README.md): x is int16; per weight the exact integer n_i (21 bits) is
// multiplied by x and the record's 8 products are summed and shifted left by E; the row
// accumulator is a 64-bit integer, exact for cols <= 8192. y_real = y * 2^e_base / 32767.
//
// Pipeline: S0 beat register, S1 record decode (LFSR jump + coefficients) and x read,
// S2 per-record dot products scaled by 2^E, S3 beat sum, then the row accumulator and the
// output memory write.
module seedlm_mvm #(
  parameter int unsigned MaxCols = 8192,
  parameter int unsigned MaxRows = 8192,
  localparam int unsigned Records = 16,
  localparam int unsigned C = 8,
  localparam int unsigned Lanes = Records * C,
  localparam int unsigned NW = 21,
  localparam int unsigned XWords = MaxCols / Lanes,
  localparam int unsigned XAw = $clog2(MaxCols),
  localparam int unsigned XWAw = $clog2(XWords),
  localparam int unsigned RowAw = $clog2(MaxRows)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  // Run control; rows_i and beats_per_row_i (= cols / 128) are held while busy.
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
  output logic [63:0]      y_rdata_o,
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
  logic [XWAw:0]    col_word_q;   // beat index within the current row (input side)
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

  // ---------------------------------------------------------------- S1: decode, x read
  logic [Records-1:0][C-1:0][NW-1:0] n_d;
  logic [Records-1:0][3:0]           e_d;

  for (genvar r = 0; r < Records; r++) begin : g_rec
    seedlm_record_decode #(.NW(NW)) u_decode (
      .record_i(s0_beat_q[32*r +: 32]),
      .n_o     (n_d[r]),
      .e_code_o(e_d[r])
    );
  end

  logic                              s1_valid_q, s1_row_end_q;
  logic [Records-1:0][C-1:0][NW-1:0] s1_n_q;
  logic [Records-1:0][3:0]           s1_e_q;
  logic [Lanes-1:0][15:0]            s1_x_q;

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
      s1_n_q <= n_d;
      s1_e_q <= e_d;
      s1_x_q <= x_mem_q[s0_word_q];
    end
  end

  // ---------------------------------------------------------------- S2: record dot products
  // sum_i n_i * x_i fits 40 bits; shifted by E <= 15 it fits 55 bits.
  logic [Records-1:0][63:0] rec_sum_d;

  for (genvar r = 0; r < Records; r++) begin : g_dot
    always_comb begin
      logic signed [63:0] dot;
      dot = '0;
      for (int i = 0; i < int'(C); i++) begin
        dot = dot + 64'($signed(s1_n_q[r][i]) * $signed(s1_x_q[r*C+i]));
      end
      rec_sum_d[r] = 64'(dot <<< s1_e_q[r]);
    end
  end

  logic                     s2_valid_q, s2_row_end_q;
  logic [Records-1:0][63:0] s2_sum_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s2_valid_q   <= 1'b0;
      s2_row_end_q <= 1'b0;
    end else begin
      s2_valid_q   <= s1_valid_q;
      s2_row_end_q <= s1_row_end_q;
    end
  end

  always_ff @(posedge clk_i) begin
    if (s1_valid_q) s2_sum_q <= rec_sum_d;
  end

  // ---------------------------------------------------------------- S3: beat sum
  logic [63:0] beat_sum_d;

  always_comb begin
    beat_sum_d = '0;
    for (int r = 0; r < int'(Records); r++) beat_sum_d = beat_sum_d + s2_sum_q[r];
  end

  logic        s3_valid_q, s3_row_end_q;
  logic [63:0] s3_sum_q;

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

  // ---------------------------------------------------------------- row accumulator, output
  logic [63:0]      acc_q;
  logic [RowAw:0]   out_row_q;
  logic [63:0]      y_mem_q [MaxRows];

  wire [63:0] acc_next = acc_q + s3_sum_q;
  wire        y_we     = s3_valid_q && s3_row_end_q;
  assign last_write = y_we && (out_row_q == rows_i - 1'b1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      acc_q     <= '0;
      out_row_q <= '0;
    end else if (start_i && !busy_q) begin
      acc_q     <= '0;
      out_row_q <= '0;
    end else if (s3_valid_q) begin
      acc_q <= y_we ? '0 : acc_next;
      if (y_we) out_row_q <= out_row_q + 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (y_we) y_mem_q[out_row_q[RowAw-1:0]] <= acc_next;
  end

  assign y_rdata_o = y_mem_q[y_raddr_i];

endmodule
