// Decodes Records packed block records into their C exact integer weights each,
// n_i = sum_j v_ij * q_j with v = state - 2^(K-1) (the centred basis), and their exponent codes
// E. The real weight is n_i * 2^(e_base + E) / (2^(K-1) - 1); the constant factor is applied
// once at the output of the matrix-vector product.
//
// Record layout (LSB first, seedlm_pkg): seed [K-1:0], E [K+3:K], q_j [K+4+4j +: 4]; record r
// at bits [RecBits*r +: RecBits] of records_i.
module seedlm_record_decode
  import seedlm_pkg::EW, seedlm_pkg::QW, seedlm_pkg::preset_t, seedlm_pkg::rec_bits;
  import seedlm_pkg::n_bits;
#(
  parameter preset_t Preset       = seedlm_pkg::Preset4,
  parameter int unsigned Records  = 1,
  localparam int unsigned K       = Preset.k,
  localparam int unsigned C       = Preset.c,
  localparam int unsigned P       = Preset.p,
  localparam int unsigned RecBits = rec_bits(Preset.k, Preset.p),
  localparam int unsigned NW      = n_bits(Preset.k, Preset.p)
) (
  input  logic [Records*RecBits-1:0]        records_i,
  output logic [Records-1:0][C-1:0][NW-1:0] n_o,       // two's complement, one per weight
  output logic [Records-1:0][EW-1:0]        e_code_o
);

  if (K != seedlm_pkg::K || C < P) begin : g_check_preset
    $error("the LFSR taps are those of K = 16, and C must be at least P");
  end

  for (genvar r = 0; r < Records; r++) begin : g_rec
    logic [RecBits-1:0]    record;
    logic [C*P-1:0][K-1:0] states;

    assign record = records_i[RecBits*r +: RecBits];

    seedlm_lfsr_jump #(
      .K        (K),
      .TapMask  (seedlm_pkg::TapMask),
      .NumStates(C * P)
    ) u_lfsr_jump (
      .seed_i  (record[K-1:0]),
      .states_o(states)
    );

    assign e_code_o[r] = record[K+EW-1:K];

    for (genvar i = 0; i < C; i++) begin : g_weight
      logic signed [NW-1:0] acc;
      always_comb begin
        acc = '0;
        for (int j = 0; j < int'(P); j++) begin
          // state - 2^(K-1) is the state with its top bit flipped, read as signed.
          acc = acc + NW'($signed({~states[i*P+j][K-1], states[i*P+j][K-2:0]}) *
                          $signed(record[K+EW+QW*j +: QW]));
        end
      end
      assign n_o[r][i] = acc;
    end
  end

endmodule
