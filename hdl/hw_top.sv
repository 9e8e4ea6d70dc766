// Simulation top: the SeedLM and the reference datapath side by side, sharing the activation
// memory writes; each has its own DDR port, output memory and cycle counter.
module hw_top #(
  parameter int unsigned MaxCols = 8192,
  parameter int unsigned MaxRows = 8192,
  localparam int unsigned XAw = $clog2(MaxCols),
  localparam int unsigned RowAw = $clog2(MaxRows)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  input  logic [RowAw:0]   rows_i,
  input  logic [XAw:0]     cols_i,      // multiple of 128
  input  logic             x_we_i,
  input  logic [XAw-1:0]   x_addr_i,
  input  logic [15:0]      x_data_i,
  input  logic [RowAw-1:0] y_raddr_i,
  // SeedLM datapath
  input  logic             s_start_i,
  output logic             s_rd_req_o,
  input  logic             s_rvalid_i,
  input  logic [511:0]     s_rdata_i,
  output logic [63:0]      s_y_o,
  output logic             s_busy_o,
  output logic [31:0]      s_cycles_o,
  // Reference datapath
  input  logic             r_start_i,
  output logic             r_rd_req_o,
  input  logic             r_rvalid_i,
  input  logic [511:0]     r_rdata_i,
  output logic [79:0]      r_y_o,
  output logic             r_busy_o,
  output logic [31:0]      r_cycles_o
);

  seedlm_mvm #(
    .MaxCols(MaxCols),
    .MaxRows(MaxRows)
  ) u_seedlm (
    .clk_i,
    .rst_ni,
    .start_i        (s_start_i),
    .rows_i,
    .beats_per_row_i(cols_i[XAw:7]),
    .x_we_i,
    .x_addr_i,
    .x_data_i,
    .rd_req_o       (s_rd_req_o),
    .rvalid_i       (s_rvalid_i),
    .rdata_i        (s_rdata_i),
    .y_raddr_i,
    .y_rdata_o      (s_y_o),
    .busy_o         (s_busy_o),
    .cycles_o       (s_cycles_o)
  );

  ref_mvm #(
    .MaxCols(MaxCols),
    .MaxRows(MaxRows)
  ) u_ref (
    .clk_i,
    .rst_ni,
    .start_i        (r_start_i),
    .rows_i,
    .beats_per_row_i(cols_i[XAw:5]),
    .x_we_i,
    .x_addr_i,
    .x_data_i,
    .rd_req_o       (r_rd_req_o),
    .rvalid_i       (r_rvalid_i),
    .rdata_i        (r_rdata_i),
    .y_raddr_i,
    .y_rdata_o      (r_y_o),
    .busy_o         (r_busy_o),
    .cycles_o       (r_cycles_o)
  );

  // The low column bits are zero for valid sizes (the runner checks cols % 128 == 0).
  logic unused_cols;
  assign unused_cols = ^cols_i[4:0];

endmodule
