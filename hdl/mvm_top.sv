// Simulation top of one matrix-vector datapath, chosen by Datapath: the port list the harness
// drives (the same for every datapath), the run control and the row accumulator around it. The
// SeedLM preset (K, C, P) is chosen here from seedlm_pkg's and passed down; src/hw/design.rs
// describes the same designs for the Rust side.
module mvm_top
  import seedlm_pkg::*;
#(
  parameter int unsigned Datapath = DpSeedlm,
  parameter int unsigned MaxCols  = 8192,
  parameter int unsigned MaxRows  = 8192,
  // The SeedLM preset's C and P (K is seedlm_pkg::K): seedlm_pkg::Preset4 on seedlm_mvm,
  // Preset3 (with 15 records a group) on seedlm3_mvm.
  parameter int unsigned C        = (Datapath == DpSeedlm3) ? Preset3.c : Preset4.c,
  parameter int unsigned P        = (Datapath == DpSeedlm3) ? Preset3.p : Preset4.p,
  parameter int unsigned Records  = 15,
  // seedlm_mvm's arithmetic: ArithFixed, or ArithFp16 (weights rounded to FP16).
  parameter int unsigned Arith    = ArithFixed,
  localparam preset_t Preset      = preset(K, C, P),
  localparam int unsigned AccW    = (Datapath == DpRef || Arith == ArithFp16) ? RefAccW
                                                                              : SeedlmAccW,
  localparam int unsigned Lanes   = (Datapath == DpRef) ? RefLanes : beat_lanes(Preset),
  localparam int unsigned XAw     = $clog2(MaxCols),
  localparam int unsigned RowAw   = $clog2(MaxRows)
) (
  input  logic               clk_i,
  input  logic               rst_ni,
  // Run control; rows_i and cols_i are held while busy.
  input  logic               start_i,
  input  logic [RowAw:0]     rows_i,
  input  logic [XAw:0]       cols_i,
  // The tensor's exponent base, held while busy: only FP16 weights need it.
  input  logic [EBaseW-1:0]  e_base_i,
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

  if (Datapath > DpSeedlm3) begin : g_check_datapath
    $error("Datapath must be DpRef, DpSeedlm or DpSeedlm3");
  end
  if (Arith != ArithFixed && Datapath != DpSeedlm) begin : g_check_arith
    $error("the FP16 arithmetic is a variant of seedlm_mvm (Datapath = DpSeedlm)");
  end
  if (Datapath != DpSeedlm) begin : g_no_e_base
    logic unused_e_base;
    assign unused_e_base = ^e_base_i;
  end

  logic last_write;

  mvm_in_if #(.MaxCols(MaxCols)) in ();
  mvm_acc_if #(.AccW(AccW)) acc ();

  assign in.cols   = cols_i;
  assign in.x_we   = x_we_i;
  assign in.x_addr = x_addr_i;
  assign in.x_data = x_data_i;
  assign in.rvalid = rvalid_i;
  assign in.rdata  = rdata_i;
  assign busy_o    = in.busy;

  mvm_ctrl u_ctrl (
    .clk_i,
    .rst_ni,
    .start_i,
    .last_write_i(last_write),
    .go_o        (in.go),
    .rd_req_o,
    .busy_o      (in.busy),
    .cycles_o
  );

  if (Datapath == DpSeedlm3) begin : g_gearbox
    seedlm3_mvm #(
      .Preset (Preset),
      .Records(Records),
      .MaxCols(MaxCols),
      .MaxRows(MaxRows)
    ) u_datapath (
      .clk_i,
      .rst_ni,
      .rows_i,
      .in (in.dp),
      .acc(acc.dp)
    );
  end else begin : g_beats
    mvm_beat_if #(.Lanes(Lanes)) beat ();

    mvm_beat_front #(
      .Lanes  (Lanes),
      .MaxCols(MaxCols)
    ) u_front (
      .clk_i,
      .rst_ni,
      .in  (in.dp),
      .beat(beat.front)
    );

    if (Datapath == DpRef) begin : g_ref
      ref_mvm #(
        .MaxCols(MaxCols),
        .AccW   (AccW)
      ) u_datapath (
        .clk_i,
        .rst_ni,
        .beat(beat.lanes),
        .acc (acc.dp)
      );
    end else begin : g_seedlm
      seedlm_mvm #(
        .Preset (Preset),
        .MaxCols(MaxCols),
        .Arith  (Arith)
      ) u_datapath (
        .clk_i,
        .rst_ni,
        .e_base_i,
        .beat(beat.lanes),
        .acc (acc.dp)
      );
    end
  end

  mvm_row_acc #(
    .AccW   (AccW),
    .MaxRows(MaxRows)
  ) u_acc (
    .clk_i,
    .rst_ni,
    .clear_i     (in.go),
    .rows_i,
    .valid_i     (acc.valid),
    .row_end_i   (acc.row_end),
    .sum_i       (acc.sum),
    .carry_i     (acc.carry),
    .last_write_o(last_write),
    .y_raddr_i,
    .y_rdata_o
  );

endmodule
