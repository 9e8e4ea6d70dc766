// Activation memory of seedlm3_mvm: one write port and a registered read port per lane, each at
// its own column. A simulation model: synthesized as is it is Lanes MaxCols-to-1 multiplexers,
// so the synthesis of the 3-bit design leaves it out (a real design banks x and rotates).
module seedlm3_x_file
  import seedlm_pkg::XW;
#(
  parameter int unsigned Lanes   = 180,
  parameter int unsigned MaxCols = 8192,
  localparam int unsigned XAw    = $clog2(MaxCols)
) (
  input  logic                      clk_i,
  input  logic                      we_i,
  input  logic [XAw-1:0]            waddr_i,
  input  logic [XW-1:0]             wdata_i,
  input  logic                      re_i,     // register the lanes' reads
  input  logic [Lanes-1:0][XAw-1:0] raddr_i,
  output logic [Lanes-1:0][XW-1:0]  rdata_o
);

  logic [XW-1:0]            mem_q [MaxCols];
  logic [Lanes-1:0][XW-1:0] rdata_q;

  always_ff @(posedge clk_i) begin
    if (we_i) mem_q[waddr_i] <= wdata_i;
  end

  for (genvar l = 0; l < Lanes; l++) begin : g_lane
    always_ff @(posedge clk_i) begin
      if (re_i) rdata_q[l] <= mem_q[raddr_i[l]];
    end
  end

  assign rdata_o = rdata_q;

endmodule
