// Decodes one packed block record into its C exact integer weights n_i = sum_j v_ij * q_j, with
// v = state - 2^(K-1) (the centred basis), and the exponent code E. The real weight is
// n_i * 2^(e_base + E) / (2^(K-1) - 1); the constant factor is applied once at the output of the
// matrix-vector product.
//
// Record layout (LSB first, seedlm_pkg): seed [K-1:0], E [K+3:K], q_j [K+4+4j +: 4].
module seedlm_record_decode
  import seedlm_pkg::EW, seedlm_pkg::QW, seedlm_pkg::rec_bits, seedlm_pkg::n_bits;
#(
  parameter int unsigned K        = seedlm_pkg::K,
  parameter logic [K-1:0] TapMask = seedlm_pkg::TapMask,
  parameter int unsigned C        = 8,
  parameter int unsigned P        = 3,
  parameter int unsigned NW       = n_bits(K, P),
  localparam int unsigned RecBits = rec_bits(K, P)
) (
  input  logic [RecBits-1:0]   record_i,
  output logic [C-1:0][NW-1:0] n_o,     // two's complement, one per weight
  output logic [EW-1:0]        e_code_o
);

  if (NW < n_bits(K, P)) begin : g_check_nw
    $error("NW is too narrow for the largest |n_i|");
  end

  logic [C*P-1:0][K-1:0] states;

  seedlm_lfsr_jump #(
    .K        (K),
    .TapMask  (TapMask),
    .NumStates(C * P)
  ) u_lfsr_jump (
    .seed_i  (record_i[K-1:0]),
    .states_o(states)
  );

  assign e_code_o = record_i[K+EW-1:K];

  for (genvar i = 0; i < C; i++) begin : g_weight
    logic signed [NW-1:0] acc;
    always_comb begin
      acc = '0;
      for (int j = 0; j < int'(P); j++) begin
        // state - 2^(K-1) is the state with its top bit flipped, read as signed.
        acc = acc + NW'($signed({~states[i*P+j][K-1], states[i*P+j][K-2:0]}) *
                        $signed(record_i[K+EW+QW*j +: QW]));
      end
    end
    assign n_o[i] = acc;
  end

endmodule
