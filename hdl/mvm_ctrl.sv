// Run control shared by the datapaths: a start pulse issues the one DDR read request, busy_o
// holds until the last output write, and cycles_o counts from the request (1) to that write,
// inclusive.
module mvm_ctrl
  import seedlm_pkg::CyclesW;
(
  input  logic               clk_i,
  input  logic               rst_ni,
  input  logic               start_i,
  input  logic               last_write_i,
  output logic               go_o,      // start accepted: the datapath clears its state
  output logic               rd_req_o,
  output logic               busy_o,
  output logic [CyclesW-1:0] cycles_o
);

  logic               busy_d, busy_q, rd_req_q;
  logic [CyclesW-1:0] cycles_d, cycles_q;

  assign go_o = start_i && !busy_q;

  always_comb begin
    busy_d   = busy_q;
    cycles_d = cycles_q;
    if (go_o) begin
      busy_d   = 1'b1;
      cycles_d = CyclesW'(1);
    end else if (busy_q) begin
      if (last_write_i) busy_d = 1'b0;
      else cycles_d = cycles_q + 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      busy_q   <= 1'b0;
      rd_req_q <= 1'b0;
      cycles_q <= '0;
    end else begin
      busy_q   <= busy_d;
      rd_req_q <= go_o;
      cycles_q <= cycles_d;
    end
  end

  assign rd_req_o = rd_req_q;
  assign busy_o   = busy_q;
  assign cycles_o = cycles_q;

endmodule
