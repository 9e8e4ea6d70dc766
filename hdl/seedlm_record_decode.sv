// Decodes one packed 32-bit block record (4-bit preset: K = 16, C = 8, P = 3) into the C exact
// integer weights n_i = sum_j v_ij * q_j, with v = state - 2^(K-1) (the centred basis), and the
// exponent code E. The real weight is n_i * 2^(e_base + E) / (2^(K-1) - 1); the constant factor is
// applied once at the output of the matrix-vector product.
//
// Record layout (LSB first): seed [15:0], E [19:16], q0 [23:20], q1 [27:24], q2 [31:28].
module seedlm_record_decode #(
  parameter int unsigned K  = 16,
  parameter int unsigned C  = 8,
  parameter int unsigned P  = 3,
  parameter int unsigned NW = 21   // |n_i| <= P * 2^(K-1) * 8 = 786432 < 2^20
) (
  input  logic [K+4+4*P-1:0]  record_i,
  output logic [C-1:0][NW-1:0] n_o,     // two's complement, one per weight
  output logic [3:0]           e_code_o
);

  logic [C*P-1:0][K-1:0] states;

  seedlm_lfsr_jump #(
    .K        (K),
    .NumStates(C * P)
  ) u_lfsr_jump (
    .seed_i  (record_i[K-1:0]),
    .states_o(states)
  );

  assign e_code_o = record_i[K+3:K];

  for (genvar i = 0; i < C; i++) begin : g_weight
    logic signed [NW-1:0] acc;
    always_comb begin
      acc = '0;
      for (int j = 0; j < int'(P); j++) begin
        // state - 2^(K-1) is the state with its top bit flipped, read as signed.
        acc = acc + NW'($signed({~states[i*P+j][K-1], states[i*P+j][K-2:0]}) *
                        $signed(record_i[K+4+4*j +: 4]));
      end
    end
    assign n_o[i] = acc;
  end

endmodule
