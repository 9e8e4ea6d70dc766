// SeedLM matrix-vector datapath for the 3-bit preset (K = 16, C = 12, P = 4): 36-bit block
// records packed back to back in the DDR stream, so records straddle 512-bit beats. A gearbox
// turns beats into groups of 15 records (540 bits, 180 weights) a cycle, faster than DDR
// delivers them. Blocks follow the row-major flattened matrix, so a group can end one row and
// start the next; its products are summed into two partial sums.
//
// Number formats as seedlm_mvm (hdl/README.md): x int16, n_i exact (22 bits), per weight
// (n_i * x_i) << E, 64-bit accumulators (exact for cols <= 4096). y_real = y * 2^e_base / 32767.
//
// Pipeline: gearbox (beat buffer -> group register), S1 record decode and x read, S2 products
// and the two partial sums, then the row accumulator and the output memory write (mvm_top).
module seedlm3_mvm
  import seedlm_pkg::BeatW, seedlm_pkg::XW, seedlm_pkg::EW;
  import seedlm_pkg::SeedlmAccW, seedlm_pkg::preset_t, seedlm_pkg::rec_bits, seedlm_pkg::n_bits;
#(
  parameter preset_t Preset         = seedlm_pkg::Preset3,
  parameter int unsigned Records    = 15,  // records a group, decoded in one cycle
  parameter int unsigned MaxCols    = 8192,
  parameter int unsigned MaxRows    = 8192,
  localparam int unsigned C         = Preset.c,
  localparam int unsigned RecBits   = rec_bits(Preset.k, Preset.p),
  localparam int unsigned GroupBits = Records * RecBits,
  localparam int unsigned Lanes     = Records * C,
  localparam int unsigned BufW      = 1088,  // > 539 + 512, the most the buffer holds
  localparam int unsigned CntW      = $clog2(BufW + 1),
  localparam int unsigned NW        = n_bits(Preset.k, Preset.p),
  localparam int unsigned XAw       = $clog2(MaxCols),
  localparam int unsigned RowAw     = $clog2(MaxRows),
  localparam int unsigned WAw       = XAw + RowAw + 1
) (
  input  logic           clk_i,
  input  logic           rst_ni,
  input  logic [RowAw:0] rows_i,  // held while busy, as the columns
  mvm_in_if.dp           in,
  mvm_acc_if.dp          acc      // AccW = SeedlmAccW
);

  // The gearbox must drain faster than DDR fills it, and hold a partial group plus a beat.
  if (GroupBits <= BeatW || BufW < GroupBits - 1 + BeatW) begin : g_check_gearbox
    $error("a group must be wider than a beat and fit the buffer with one");
  end
  // Counts of records and weights in a group are 5 and 8 bits wide below.
  if (Records >= 32 || Lanes >= 256 || RecBits >= 64) begin : g_check_group
    $error("Records, Lanes or RecBits too large for the group counters");
  end

  // ---------------------------------------------------------------- gearbox
  logic [WAw-1:0] total_w;
  assign total_w = WAw'(rows_i) * WAw'(in.cols);

  logic [BufW-1:0] buf_q;
  logic [CntW-1:0] cnt_q;      // valid bits in buf_q
  logic [WAw-1:0]  w_left_q;   // weights not yet emitted
  logic [XAw:0]    col_q;      // column of the next group's first weight

  // Bits the next group needs: a full group, or the records that remain.
  logic [WAw-1:0] rec_left;
  logic [CntW-1:0] need;
  assign rec_left = (w_left_q + WAw'(C - 1)) / WAw'(C);
  assign need     = (rec_left >= WAw'(Records)) ? CntW'(GroupBits)
                                                : CntW'(rec_left[4:0] * 6'(RecBits));
  logic emit;
  assign emit = in.busy && (w_left_q != '0) && (cnt_q >= need);

  logic [BufW-1:0] buf_shifted;
  logic [CntW-1:0] cnt_shifted;
  assign buf_shifted = emit ? buf_q >> GroupBits : buf_q;
  assign cnt_shifted = emit ? ((cnt_q > CntW'(GroupBits)) ? cnt_q - CntW'(GroupBits) : '0) : cnt_q;

  // Weights in the emitted group, and whether it reaches the end of its row.
  logic [7:0] n_valid;
  assign n_valid = (w_left_q >= WAw'(Lanes)) ? 8'(Lanes) : w_left_q[7:0];
  logic [XAw+1:0] col_end;
  logic           row_end;
  assign col_end = (XAw+2)'(col_q) + (XAw+2)'(n_valid);
  assign row_end = col_end >= (XAw+2)'(in.cols);

  logic                 g_valid_q, g_row_end_q;
  logic [GroupBits-1:0] g_bits_q;
  logic [7:0]           g_n_valid_q;
  logic [XAw:0]         g_col_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      buf_q       <= '0;
      cnt_q       <= '0;
      w_left_q    <= '0;
      col_q       <= '0;
      g_valid_q   <= 1'b0;
      g_row_end_q <= 1'b0;
      g_n_valid_q <= '0;
      g_col_q     <= '0;
    end else if (in.go) begin
      buf_q     <= '0;
      cnt_q     <= '0;
      w_left_q  <= total_w;
      col_q     <= '0;
      g_valid_q <= 1'b0;
    end else begin
      if (in.rvalid && in.busy) begin
        buf_q <= buf_shifted | (BufW'(in.rdata) << cnt_shifted);
        cnt_q <= cnt_shifted + CntW'(BeatW);
      end else begin
        buf_q <= buf_shifted;
        cnt_q <= cnt_shifted;
      end
      g_valid_q <= emit;
      if (emit) begin
        g_row_end_q <= row_end;
        g_n_valid_q <= n_valid;
        g_col_q     <= col_q;
        w_left_q    <= w_left_q - WAw'(n_valid);
        col_q       <= (XAw+1)'(row_end ? col_end - (XAw+2)'(in.cols) : col_end);
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (emit) g_bits_q <= buf_q[GroupBits-1:0];
  end

  // ---------------------------------------------------------------- S1: decode, x read
  logic [Records-1:0][C-1:0][NW-1:0] n_d;
  logic [Records-1:0][EW-1:0]        e_d;

  seedlm_record_decode #(
    .Preset (Preset),
    .Records(Records)
  ) u_decode (
    .records_i(g_bits_q),
    .n_o      (n_d),
    .e_code_o (e_d)
  );

  logic                              s1_valid_q, s1_row_end_q;
  logic [Records-1:0][C-1:0][NW-1:0] s1_n_q;
  logic [Records-1:0][EW-1:0]        s1_e_q;
  logic [Lanes-1:0][XW-1:0]          s1_x;
  logic [Lanes-1:0]                  s1_use_q;   // lane holds a weight (not padding)
  logic [Lanes-1:0]                  s1_next_q;  // lane belongs to the next row

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s1_valid_q   <= 1'b0;
      s1_row_end_q <= 1'b0;
    end else begin
      s1_valid_q   <= g_valid_q;
      s1_row_end_q <= g_row_end_q;
    end
  end

  // ---------------------------------------------------------------- activation memory
  logic [Lanes-1:0][XAw-1:0] xcol;

  seedlm3_x_file #(
    .Lanes  (Lanes),
    .MaxCols(MaxCols)
  ) u_x_file (
    .clk_i,
    .we_i   (in.x_we),
    .waddr_i(in.x_addr),
    .wdata_i(in.x_data),
    .re_i   (g_valid_q),
    .raddr_i(xcol),
    .rdata_o(s1_x)
  );

  for (genvar l = 0; l < Lanes; l++) begin : g_lane
    logic [XAw+1:0] col;
    logic           next;
    assign col     = (XAw+2)'(g_col_q) + (XAw+2)'(l);
    assign next    = col >= (XAw+2)'(in.cols);
    assign xcol[l] = XAw'(next ? col - (XAw+2)'(in.cols) : col);
    always_ff @(posedge clk_i) begin
      if (g_valid_q) begin
        s1_use_q[l]  <= 8'(l) < g_n_valid_q;
        s1_next_q[l] <= next;
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (g_valid_q) begin
      s1_n_q <= n_d;
      s1_e_q <= e_d;
    end
  end

  // ---------------------------------------------------------------- S2: products, partial sums
  logic [SeedlmAccW-1:0] sum_this_d, sum_next_d;

  always_comb begin
    logic signed [SeedlmAccW-1:0] prod;
    sum_this_d = '0;
    sum_next_d = '0;
    for (int l = 0; l < int'(Lanes); l++) begin
      prod = SeedlmAccW'($signed(s1_n_q[l/C][l%C]) * $signed(s1_x[l])) <<< s1_e_q[l/C];
      // Masks rather than branches: one sum of products that synthesis can build as a tree.
      sum_this_d = sum_this_d + (prod & {SeedlmAccW{s1_use_q[l] && !s1_next_q[l]}});
      sum_next_d = sum_next_d + (prod & {SeedlmAccW{s1_use_q[l] && s1_next_q[l]}});
    end
  end

  logic        s2_valid_q, s2_row_end_q;
  logic [SeedlmAccW-1:0] s2_this_q, s2_next_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s2_valid_q   <= 1'b0;
      s2_row_end_q <= 1'b0;
      s2_this_q    <= '0;
      s2_next_q    <= '0;
    end else begin
      s2_valid_q   <= s1_valid_q;
      s2_row_end_q <= s1_row_end_q;
      if (s1_valid_q) begin
        s2_this_q <= sum_this_d;
        s2_next_q <= sum_next_d;
      end
    end
  end

  // ---------------------------------------------------------------- to the row accumulator
  assign acc.valid   = s2_valid_q;
  assign acc.row_end = s2_row_end_q;
  assign acc.sum     = s2_this_q;
  assign acc.carry   = s2_next_q;

endmodule
