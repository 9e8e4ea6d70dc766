// Row accumulator and output memory shared by the datapaths. Each valid beat (or group) adds
// sum_i to the row; at a row end the row's total is written to the output memory and the
// accumulator restarts from carry_i, the part of the beat that belongs to the next row (zero
// when beats never cross rows).
module mvm_row_acc #(
  parameter int unsigned AccW    = 64,
  parameter int unsigned MaxRows = 8192,
  localparam int unsigned RowAw  = $clog2(MaxRows)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  input  logic             clear_i,       // a run starts
  input  logic [RowAw:0]   rows_i,
  input  logic             valid_i,
  input  logic             row_end_i,
  input  logic [AccW-1:0]  sum_i,
  input  logic [AccW-1:0]  carry_i,
  output logic             last_write_o,  // the last row's output is written this cycle
  input  logic [RowAw-1:0] y_raddr_i,
  output logic [AccW-1:0]  y_rdata_o
);

  logic [AccW-1:0] acc_d, acc_q, row_total;
  logic [RowAw:0]  out_row_d, out_row_q;
  logic            y_we;
  logic [AccW-1:0] y_mem_q [MaxRows];

  assign row_total    = acc_q + sum_i;
  assign y_we         = valid_i && row_end_i;
  assign last_write_o = y_we && (out_row_q == rows_i - 1'b1);

  always_comb begin
    acc_d     = acc_q;
    out_row_d = out_row_q;
    if (clear_i) begin
      acc_d     = '0;
      out_row_d = '0;
    end else if (valid_i) begin
      acc_d = y_we ? carry_i : row_total;
      if (y_we) out_row_d = out_row_q + 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      acc_q     <= '0;
      out_row_q <= '0;
    end else begin
      acc_q     <= acc_d;
      out_row_q <= out_row_d;
    end
  end

  always_ff @(posedge clk_i) begin
    if (y_we) y_mem_q[out_row_q[RowAw-1:0]] <= row_total;
  end

  assign y_rdata_o = y_mem_q[y_raddr_i];

endmodule
