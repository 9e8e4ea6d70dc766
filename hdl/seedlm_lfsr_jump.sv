// LFSR jump-ahead unit: the NumStates register states that follow a seed, in one cycle.
//
// One Fibonacci step (fb = XOR of the tap bits, shift right, fb into bit K-1) is linear over
// GF(2), so state t after the seed is a fixed XOR network of the seed's bits. The masks of those
// networks are computed at elaboration time; no state table is stored.
module seedlm_lfsr_jump #(
  parameter int unsigned K         = seedlm_pkg::K,
  parameter logic [K-1:0] TapMask  = seedlm_pkg::TapMask,
  parameter int unsigned NumStates = 24
) (
  input  logic [K-1:0]                seed_i,
  output logic [NumStates-1:0][K-1:0] states_o
);

  if (K < 2 || TapMask == '0) begin : g_check_taps
    $error("an LFSR needs K >= 2 and at least one tap");
  end

  typedef logic [K-1:0][K-1:0] step_masks_t;
  typedef logic [NumStates-1:0][K-1:0][K-1:0] jump_masks_t;

  // masks[t][b]: which seed bits XOR into bit b of state t+1.
  function automatic jump_masks_t jump_masks();
    step_masks_t cur;
    step_masks_t nxt;
    jump_masks_t masks;
    for (int b = 0; b < K; b++) begin
      cur[b] = '0;
      cur[b][b] = 1'b1;
    end
    for (int t = 0; t < NumStates; t++) begin
      for (int b = 0; b < K - 1; b++) begin
        nxt[b] = cur[b+1];
      end
      nxt[K-1] = '0;
      for (int b = 0; b < K; b++) begin
        if (TapMask[b]) nxt[K-1] = nxt[K-1] ^ cur[b];
      end
      cur = nxt;
      masks[t] = cur;
    end
    return masks;
  endfunction

  localparam jump_masks_t JumpMasks = jump_masks();

  for (genvar t = 0; t < NumStates; t++) begin : g_state
    for (genvar b = 0; b < K; b++) begin : g_bit
      assign states_o[t][b] = ^(seed_i & JumpMasks[t][b]);
    end
  end

endmodule
