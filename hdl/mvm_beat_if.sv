// The whole-beat front (mvm_beat_front) to the lanes of ref_mvm and seedlm_mvm: the beat in S0,
// and in S1 the activations of the beat that was in S0 and whether it ends its row.
interface mvm_beat_if
  import seedlm_pkg::BeatW, seedlm_pkg::XW;
#(
  parameter int unsigned Lanes = 128
);
  logic                     s0_valid;
  logic [BeatW-1:0]         s0_beat;
  logic                     s1_valid;
  logic                     s1_row_end;
  logic [Lanes-1:0][XW-1:0] s1_x;

  modport front (output s0_valid, s0_beat, s1_valid, s1_row_end, s1_x);
  modport lanes (input s0_valid, s0_beat, s1_valid, s1_row_end, s1_x);
endinterface
