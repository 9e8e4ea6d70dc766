// What a datapath reads from mvm_top: the column count, the activation write port, the DDR
// response beats and the run control's go pulse and busy level.
interface mvm_in_if
  import seedlm_pkg::BeatW, seedlm_pkg::XW;
#(
  parameter int unsigned MaxCols = 8192,
  localparam int unsigned XAw    = $clog2(MaxCols)
);
  logic [XAw:0]     cols;
  logic             x_we;
  logic [XAw-1:0]   x_addr;
  logic [XW-1:0]    x_data;
  logic             rvalid;
  logic [BeatW-1:0] rdata;
  logic             go;
  logic             busy;

  modport top (output cols, x_we, x_addr, x_data, rvalid, rdata, go, busy);
  modport dp (input cols, x_we, x_addr, x_data, rvalid, rdata, go, busy);
endinterface
