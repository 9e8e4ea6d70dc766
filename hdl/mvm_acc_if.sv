// What a datapath hands the row accumulator each valid beat or group: the sum for the current
// row, whether the row ends, and the part that belongs to the next row.
interface mvm_acc_if #(
  parameter int unsigned AccW = 64
);
  logic            valid;
  logic            row_end;
  logic [AccW-1:0] sum;
  logic [AccW-1:0] carry;

  modport dp (output valid, row_end, sum, carry);
  modport acc (input valid, row_end, sum, carry);
endinterface
