// SeedLM matrix-vector datapath: y = W_hat x for a rows x cols matrix stored as block records
// that fill whole 512-bit DDR beats (the 4-bit preset: 32-bit records, 16 = 128 weights a beat,
// 128 MACs).
//
// Number formats (hdl/README.md): x is int16; per weight the exact integer n_i (21 bits) is
// multiplied by x and the record's C products are summed and shifted left by E; the row
// accumulator is a 64-bit integer, exact for cols <= 8192. y_real = y * 2^e_base / 32767.
//
// Pipeline: S0 beat register, S1 record decode (LFSR jump + coefficients) and x read,
// S2 per-record dot products scaled by 2^E, S3 beat sum, then the row accumulator and the
// output memory write.
module seedlm_mvm
  import seedlm_pkg::BeatW, seedlm_pkg::XW, seedlm_pkg::CyclesW, seedlm_pkg::EW, seedlm_pkg::QW;
  import seedlm_pkg::SeedlmAccW, seedlm_pkg::rec_bits, seedlm_pkg::n_bits;
#(
  parameter int unsigned K        = seedlm_pkg::K,
  parameter int unsigned C        = 8,
  parameter int unsigned P        = 3,
  parameter int unsigned MaxCols  = 8192,
  parameter int unsigned MaxRows  = 8192,
  localparam int unsigned RecBits = rec_bits(K, P),
  localparam int unsigned Records = BeatW / RecBits,
  localparam int unsigned Lanes   = Records * C,
  localparam int unsigned NW      = n_bits(K, P),
  localparam int unsigned XAw     = $clog2(MaxCols),
  localparam int unsigned RowAw   = $clog2(MaxRows)
) (
  input  logic                  clk_i,
  input  logic                  rst_ni,
  // Run control; rows_i and cols_i (a multiple of Lanes) are held while busy.
  input  logic                  start_i,
  input  logic [RowAw:0]        rows_i,
  input  logic [XAw:0]          cols_i,
  // Activation memory write port (used before start).
  input  logic                  x_we_i,
  input  logic [XAw-1:0]        x_addr_i,
  input  logic [XW-1:0]         x_data_i,
  // DDR: one read request for all beats, then in-order response beats.
  output logic                  rd_req_o,
  input  logic                  rvalid_i,
  input  logic [BeatW-1:0]      rdata_i,
  // Output memory read port.
  input  logic [RowAw-1:0]      y_raddr_i,
  output logic [SeedlmAccW-1:0] y_rdata_o,
  // Status: cycles from the read request to the last output write, inclusive.
  output logic                  busy_o,
  output logic [CyclesW-1:0]    cycles_o
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

  // ---------------------------------------------------------------- S1: decode
  logic [Records-1:0][C-1:0][NW-1:0] n_d, s1_n_q;
  logic [Records-1:0][EW-1:0]        e_d, s1_e_q;

  for (genvar r = 0; r < Records; r++) begin : g_rec
    seedlm_record_decode #(
      .K (K),
      .C (C),
      .P (P),
      .NW(NW)
    ) u_decode (
      .record_i(s0_beat[RecBits*r +: RecBits]),
      .n_o     (n_d[r]),
      .e_code_o(e_d[r])
    );
  end

  always_ff @(posedge clk_i) begin
    if (s0_valid) begin
      s1_n_q <= n_d;
      s1_e_q <= e_d;
    end
  end

  // ---------------------------------------------------------------- S2: record dot products
  logic [Records-1:0][SeedlmAccW-1:0] rec_sum_d;

  for (genvar r = 0; r < Records; r++) begin : g_dot
    always_comb begin
      logic signed [SeedlmAccW-1:0] dot;
      dot = '0;
      for (int i = 0; i < int'(C); i++) begin
        dot = dot + SeedlmAccW'($signed(s1_n_q[r][i]) * $signed(s1_x[r*C+i]));
      end
      rec_sum_d[r] = SeedlmAccW'(dot <<< s1_e_q[r]);
    end
  end

  logic                     s2_valid_q, s2_row_end_q;
  logic [Records-1:0][SeedlmAccW-1:0] s2_sum_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s2_valid_q   <= 1'b0;
      s2_row_end_q <= 1'b0;
    end else begin
      s2_valid_q   <= s1_valid;
      s2_row_end_q <= s1_row_end;
    end
  end

  always_ff @(posedge clk_i) begin
    if (s1_valid) s2_sum_q <= rec_sum_d;
  end

  // ---------------------------------------------------------------- S3: beat sum
  logic [SeedlmAccW-1:0] beat_sum_d;

  always_comb begin
    beat_sum_d = '0;
    for (int r = 0; r < int'(Records); r++) beat_sum_d = beat_sum_d + s2_sum_q[r];
  end

  logic        s3_valid_q, s3_row_end_q;
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

  // ---------------------------------------------------------------- row accumulator, output
  mvm_row_acc #(
    .AccW   (SeedlmAccW),
    .MaxRows(MaxRows)
  ) u_acc (
    .clk_i,
    .rst_ni,
    .clear_i     (go),
    .rows_i,
    .valid_i     (s3_valid_q),
    .row_end_i   (s3_row_end_q),
    .sum_i       (s3_sum_q),
    .carry_i     ('0),
    .last_write_o(last_write),
    .y_raddr_i,
    .y_rdata_o
  );

endmodule
