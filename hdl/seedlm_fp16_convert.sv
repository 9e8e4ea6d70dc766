// Rounds one SeedLM weight to FP16, as the paper's fixed-to-FP16 converter does: the value
// n * 2^(E + e_base - (K-1)), rounded to nearest, ties to even (IEEE 754, and the `half` crate
// the Rust model uses), subnormals kept, overflow to +-Inf, an underflow to a signed zero. The
// real weight is this value times 2^(K-1) / (2^(K-1) - 1), a constant applied once at the
// output, so the only rounding is here (hdl/README.md, "Number formats").
module seedlm_fp16_convert
  import seedlm_pkg::EW, seedlm_pkg::EBaseW;
#(
  parameter int unsigned K  = seedlm_pkg::K,
  parameter int unsigned NW = seedlm_pkg::n_bits(seedlm_pkg::K, 3)
) (
  input  logic [NW-1:0]     n_i,       // two's complement
  input  logic [EW-1:0]     e_code_i,
  input  logic [EBaseW-1:0] e_base_i,  // two's complement
  output logic [15:0]       fp16_o
);

  // FP16's smallest quantum is 2^-24 (subnormals); its largest finite value is below 2^16.
  localparam int MinQuantum = -24;
  localparam logic [15:0] Inf = 16'h7C00;

  logic          sign;
  logic [NW-1:0] mag;

  assign sign = n_i[NW-1];
  assign mag  = sign ? NW'(-$signed(n_i)) : n_i;

  always_comb begin
    int            lead, scale, drop, field;
    logic [NW-1:0] sig, below;
    logic          round_up;
    // The value is mag * 2^scale; bit lead of mag is its leading one.
    scale = int'(e_code_i) + int'($signed(e_base_i)) - int'(K - 1);
    lead  = 0;
    for (int i = 0; i < int'(NW); i++) begin
      if (mag[i]) lead = i;
    end
    // Keep 11 significant bits, but no bit below 2^-24: drop the bits under the quantum.
    drop = (lead - 10 > MinQuantum - scale) ? lead - 10 : MinQuantum - scale;
    // Round to nearest: up above half a quantum, and at half to an even significand. Nothing
    // is dropped when drop <= 0, and only zeros when drop > NW.
    sig      = (drop <= 0) ? mag << -drop : mag >> drop;
    below    = mag & ~({NW{1'b1}} << drop);
    round_up = drop >= 1 && drop <= int'(NW) && mag[drop-1] &&
               ((below & ~(NW'(1) << (drop - 1))) != '0 || sig[0]);
    // With the quantum 2^q, the bits are ((q + 24) << 10) + significand: the hidden bit of a
    // normal value adds one to the exponent field, and a carry out of the significand too.
    field = ((drop + scale - MinQuantum) << 10) + int'(sig) + int'(round_up);
    if (mag == '0) begin
      fp16_o = '0;
    end else if (field >= int'(Inf)) begin
      fp16_o = {sign, Inf[14:0]};
    end else begin
      fp16_o = {sign, field[14:0]};
    end
  end

endmodule
