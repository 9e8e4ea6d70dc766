//! Hardware model tests: lint, the LFSR unit against the Rust LFSR, co-simulation bit for bit
//! against `hw::model`, and the cycle counts against the paper's Table 5. They need Verilator,
//! g++ and make, and fail (not skip) without them.

use seedlm::core::config::Config;
use seedlm::core::control::Control;
use seedlm::core::lfsr::Lfsr;
use seedlm::hw::report;
use seedlm::hw::sim::{self, DdrParams, FOUR_BIT, HwError, SimInput, THREE_BIT, Target};
use seedlm::hw::{estimate, fp16, model};
use seedlm::search::compress::compress;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;

fn toolchain() {
    if let Err(e) = sim::check_toolchain() {
        panic!("the hardware tests need the simulation toolchain: {e}");
    }
}

fn build(target: Target) -> PathBuf {
    toolchain();
    let cancel = AtomicBool::new(false);
    sim::build(target, &mut |_| {}, &cancel).unwrap_or_else(|e| panic!("{e}"))
}

/// Lints `top` from the files in `hdl/`, with extra Verilator arguments.
fn lint(top: &str, files: &[&str], extra: &[&str]) -> (bool, String) {
    let out = Command::new("verilator")
        .args(["--lint-only", "-Wall", "--top-module", top])
        .args(extra)
        .args(
            files
                .iter()
                .map(|f| format!("{}/hdl/{f}", env!("CARGO_MANIFEST_DIR"))),
        )
        .output()
        .expect("verilator runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success() && text.trim().is_empty(), text)
}

const TARGETS: [Target; 5] = [
    Target::RefMvm,
    Target::SeedlmMvm,
    Target::SeedlmFp16Mvm,
    Target::Seedlm3Mvm,
    Target::LfsrUnit,
];

/// Lints a target as it is built, with extra parameter flags.
fn lint_target(target: Target, extra: &[&str]) -> (bool, String) {
    let files: Vec<&str> = target.sources().iter().map(|(name, _)| *name).collect();
    let params: Vec<&str> = target.params().iter().chain(extra).copied().collect();
    lint(target.top(), &files, &params)
}

#[test]
fn rtl_is_lint_clean() {
    toolchain();
    for target in TARGETS {
        let (ok, text) = lint_target(target, &[]);
        assert!(ok, "{}:\n{text}", target.name());
    }
}

#[test]
fn rtl_refuses_parameters_it_cannot_hold() {
    toolchain();
    // 36-bit records do not fill whole beats; a group of 14 records is narrower than a beat;
    // C = 7 gives 112 lanes a beat, which the column address cannot split into word and lane.
    for (target, params, why) in [
        (
            Target::SeedlmMvm,
            &["-GP=4"][..],
            "records must fill whole beats",
        ),
        (Target::Seedlm3Mvm, &["-GRecords=14"], "wider than a beat"),
        (Target::RefMvm, &["-GDatapath=3"], "Datapath must be"),
        (Target::RefMvm, &["-GArith=1"], "variant of seedlm_mvm"),
        (Target::SeedlmFp16Mvm, &["-GArith=2"], "Arith must be"),
        (
            Target::SeedlmMvm,
            &["-GC=7", "-GMaxCols=7168"],
            "Lanes must be a power of two",
        ),
    ] {
        let (ok, text) = lint_target(target, params);
        assert!(
            !ok && text.contains(why),
            "{} {params:?}:\n{text}",
            target.name()
        );
    }
}

#[test]
fn lfsr_unit_matches_rust_lfsr_for_every_seed() {
    let exe = build(Target::LfsrUnit);
    let seeds: Vec<u16> = (1..=u16::MAX).collect();
    let got = sim::lfsr_unit_states(&exe, &seeds, &AtomicBool::new(false)).unwrap();
    for (&seed, states) in seeds.iter().zip(&got) {
        let want = Lfsr::new(16, u32::from(seed)).states(model::STATES);
        let got: Vec<u32> = states.iter().map(|&s| u32::from(s)).collect();
        assert_eq!(got, want, "seed {seed:#06x}");
    }
}

fn simulate(input: &SimInput) -> sim::SimOutput {
    toolchain();
    sim::simulate(
        input,
        &DdrParams::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The reference datapath's run, which the 4-bit inputs always have.
fn reference(out: &sim::SimOutput) -> &sim::Run<i128> {
    out.reference.as_ref().expect("the reference ran")
}

#[test]
fn cosim_of_a_compressed_matrix_is_bit_exact() {
    let (rows, cols) = (8, 256);
    // A deterministic, non-Gaussian-looking matrix with a wide dynamic range across rows.
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32 * 0.618).sin() * 3.0) * (1 + i / cols) as f32)
        .collect();
    let (t, _) = compress(&data, Config::FOUR_BIT, Control::unwatched()).unwrap();
    let x = sim::random_x(cols, 3);
    let input = SimInput::from_tensor(&t, rows, cols, x.clone(), false).unwrap();
    let out = simulate(&input);
    let want = model::seedlm_matvec(&FOUR_BIT, &input.records, rows, cols, &x);
    assert_eq!(out.seedlm.y, want);
    assert_eq!(
        reference(&out).y,
        model::reference_matvec(input.reference.as_ref().unwrap(), rows, cols, &x)
    );
    assert!(report::cross_check(&t, &input, &out).ok());
    // The scaled hardware output is y = Ŵx of the engine's reconstruction.
    let w = t.reconstruct();
    for r in 0..rows {
        let exact: f64 = (0..cols)
            .map(|c| f64::from(w[r * cols + c]) * f64::from(x[c]))
            .sum();
        let mag: f64 = (0..cols)
            .map(|c| (f64::from(w[r * cols + c]) * f64::from(x[c])).abs())
            .sum();
        let hw = model::seedlm_output_value(out.seedlm.y[r], t.e_base);
        assert!((hw - exact).abs() <= 1e-6 * mag, "row {r}: {hw} vs {exact}");
        let rf = model::reference_output_value(reference(&out).y[r]);
        assert!(
            (rf - exact).abs() <= 2e-3 * mag,
            "row {r}: FP16 {rf} vs {exact}"
        );
    }
}

#[test]
fn cosim_of_random_codes_is_bit_exact_and_catches_corruption() {
    let (rows, cols) = (5, 384);
    let t = sim::random_tensor(Config::FOUR_BIT, rows, cols, 11);
    let mut input = SimInput::from_tensor(&t, rows, cols, sim::random_x(cols, 12), false).unwrap();
    let out = simulate(&input);
    assert!(report::cross_check(&t, &input, &out).ok());
    // Flipping one coefficient bit in one record must show up in that row only.
    input.records[3 * cols / 8 + 7] ^= 1 << 25;
    let bad = simulate(&input);
    let model = model::seedlm_matvec(&FOUR_BIT, &input.records, rows, cols, &input.x);
    assert_eq!(bad.seedlm.y, model);
    let changed: Vec<usize> = (0..rows)
        .filter(|&r| bad.seedlm.y[r] != out.seedlm.y[r])
        .collect();
    assert_eq!(changed, [3]);
    assert!(!report::cross_check(&t, &input, &bad).weights);
}

#[test]
fn cycle_counts_match_table5_within_3_percent() {
    toolchain();
    let reports = report::run_random_sizes(
        &FOUR_BIT,
        &[512, 1024, 2048],
        false,
        &DdrParams::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for r in &reports {
        let p = r.paper.expect("Table 5 has this size");
        let dev = |ours: u64, paper: u64| (ours as f64 / paper as f64 - 1.0).abs();
        let reference = r.reference_cycles().expect("the reference ran");
        assert!(
            dev(reference, p.reference_cycles) < 0.03,
            "{}: reference {} vs {}",
            r.rows,
            reference,
            p.reference_cycles
        );
        assert!(
            dev(r.seedlm_cycles(), p.seedlm_cycles) < 0.03,
            "{}: SeedLM {} vs {}",
            r.rows,
            r.seedlm_cycles(),
            p.seedlm_cycles
        );
        assert!(r.check.ok(), "{}: cross-check failed", r.rows);
    }
    let speedup = reports[2].speedup().expect("the reference ran");
    assert!(speedup >= 3.95, "speed-up {speedup}");
}

#[test]
fn cycle_estimates_equal_the_rtl_simulations() {
    // Table 5's sizes and odd shapes: rows of a few beats, 3-bit blocks and groups straddling
    // rows, a padded last block and beat, a last group that shares the last beat (5×200,
    // 1000×1001, 1023×181) or not, refresh windows at every phase.
    let cases = [
        (FOUR_BIT, 512, 512),
        (FOUR_BIT, 1024, 1024),
        (FOUR_BIT, 2048, 2048),
        (FOUR_BIT, 3, 384),
        (FOUR_BIT, 777, 1280),
        (THREE_BIT, 512, 512),
        (THREE_BIT, 1024, 1024),
        (THREE_BIT, 2048, 2048),
        (THREE_BIT, 5, 200),
        (THREE_BIT, 333, 1001),
        (THREE_BIT, 1000, 1001),
        (THREE_BIT, 1023, 181),
        (THREE_BIT, 1500, 2304),
    ];
    let ddr = DdrParams::default();
    for (i, (design, rows, cols)) in cases.into_iter().enumerate() {
        let t = sim::random_tensor(design.config, rows, cols, i as u64);
        let input = SimInput::from_tensor(&t, rows, cols, sim::random_x(cols, 1), false).unwrap();
        let out = simulate(&input);
        let want = estimate::seedlm_cycles(design.config, design.layout, rows, cols, &ddr);
        assert_eq!(
            (out.seedlm.cycles, out.seedlm.refresh_stalls),
            (want.cycles, want.refresh_stalls),
            "{} {rows}×{cols}",
            design.name
        );
        assert_eq!(
            out.reference.map(|r| r.cycles),
            estimate::reference_cycles(rows, cols, &ddr),
            "reference {rows}×{cols}"
        );
    }
}

#[test]
fn shapes_the_hardware_cannot_hold_are_refused() {
    let t = sim::random_tensor(Config::FOUR_BIT, 4, 96, 1);
    let e = SimInput::from_tensor(&t, 4, 96, vec![0; 96], false).unwrap_err();
    assert!(matches!(e, HwError::Shape(_)), "{e}");
    assert!(e.to_string().contains("multiple of 128"));
}

#[test]
fn three_bit_cosim_of_a_compressed_matrix_is_bit_exact() {
    // 200 columns: blocks of 12 straddle rows, and the last block is padded.
    let (rows, cols) = (5, 200);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 * 0.377).cos() * (1.0 + (i % 7) as f32))
        .collect();
    let (t, _) = compress(&data, Config::THREE_BIT, Control::unwatched()).unwrap();
    let x = sim::random_x(cols, 9);
    let input = SimInput::from_tensor(&t, rows, cols, x.clone(), false).unwrap();
    let out = simulate(&input);
    assert!(
        out.reference.is_none(),
        "the reference runs beside the 4-bit design only"
    );
    assert_eq!(
        out.seedlm.y,
        model::seedlm_matvec(&THREE_BIT, &input.records, rows, cols, &x)
    );
    let w = t.reconstruct();
    assert_eq!(
        model::reconstruct(&THREE_BIT, &input.records, t.len, t.e_base),
        w
    );
    for r in 0..rows {
        let terms = (0..cols).map(|c| f64::from(w[r * cols + c]) * f64::from(x[c]));
        let exact: f64 = terms.clone().sum();
        let mag: f64 = terms.map(f64::abs).sum();
        let hw = model::seedlm_output_value(out.seedlm.y[r], t.e_base);
        assert!((hw - exact).abs() <= 1e-6 * mag, "row {r}: {hw} vs {exact}");
    }
}

#[test]
fn three_bit_random_codes_are_bit_exact_and_keep_up_with_ddr() {
    let ddr = DdrParams::default();
    let reports = report::run_random_sizes(
        &THREE_BIT,
        &[300, 2048],
        false,
        &ddr,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for r in &reports {
        assert!(r.check.ok(), "{}: cross-check failed", r.rows);
        // The gearbox never stalls the stream: cycles are DDR beats, refreshes and latency.
        let s = &r.sim.seedlm;
        let want =
            estimate::seedlm_cycles(Config::THREE_BIT, THREE_BIT.layout, r.rows, r.cols, &ddr);
        assert_eq!(
            (s.cycles, s.refresh_stalls),
            (want.cycles, want.refresh_stalls)
        );
    }
}

#[test]
fn tensors_run_on_the_datapath_of_their_preset() {
    let ddr = DdrParams::default();
    let cancel = AtomicBool::new(false);
    let simulated = |t, shape: &[usize]| match report::run_compressed_tensor(
        t,
        shape,
        1,
        false,
        &ddr,
        &mut |_| {},
        &cancel,
    ) {
        Ok(report::TensorReport::Simulated(r)) => r,
        other => panic!("{other:?}"),
    };
    let t3 = sim::random_tensor(Config::THREE_BIT, 4, 200, 21);
    let r3 = simulated(&t3, &[2, 2, 200]);
    assert_eq!((r3.design, r3.rows, r3.cols), (THREE_BIT, 4, 200));
    assert_eq!(r3.reference_cycles(), None);
    assert!(r3.check.ok());
    let t4 = sim::random_tensor(Config::FOUR_BIT, 3, 256, 22);
    let r4 = simulated(&t4, &[3, 256]);
    assert_eq!((r4.design, r4.rows, r4.cols), (FOUR_BIT, 3, 256));
    assert!(r4.reference_cycles().is_some());
    assert!(r4.check.ok());
    // A 4-bit tensor whose rows are not whole beats is refused with the reason.
    let t = sim::random_tensor(Config::FOUR_BIT, 2, 192, 23);
    let e = report::run_compressed_tensor(&t, &[2, 192], 1, false, &ddr, &mut |_| {}, &cancel)
        .unwrap_err();
    assert!(e.to_string().contains("multiple of 128"), "{e}");
}

/// Every weight of `records` as the FP16 converter rounds it with exponent base `e_base`.
fn fp16_weights(records: &[u64], e_base: i32) -> Vec<u16> {
    records
        .iter()
        .flat_map(|&r| {
            let d = model::decode_record(&FOUR_BIT, r);
            d.n.into_iter()
                .map(move |n| fp16::fp16_weight(n, d.e_code, e_base))
        })
        .collect()
}

#[test]
fn fp16_variant_rounds_like_half_through_subnormals_and_overflow() {
    let (rows, cols) = (4, 256);
    let mut t = sim::random_tensor(Config::FOUR_BIT, rows, cols, 41);
    let x = sim::random_x(cols, 42);
    // Weights are n · 2^(E + e_base − 15) with |n| < 2^20 and E in 0..=15: from all of them
    // underflowing (−60) through subnormals (−30, −20) and normals to overflow (6, 40).
    let (mut subnormal, mut inf, mut zero, mut normal) = (0, 0, 0, 0);
    for e_base in [-60, -30, -20, -8, 0, 6, 40] {
        t.e_base = e_base;
        let input = SimInput::from_tensor(&t, rows, cols, x.clone(), true).unwrap();
        let out = simulate(&input);
        let got = out.fp16.as_ref().expect("the FP16 variant ran");
        assert_eq!(
            got.y,
            fp16::fp16_matvec(&input.records, rows, cols, &x, e_base),
            "e_base {e_base}"
        );
        // The same pipeline as the fixed-point datapath: the same cycles.
        assert_eq!(got.cycles, out.seedlm.cycles);
        for w in fp16_weights(&input.records, e_base) {
            match (w >> 10) & 0x1F {
                0 if w & 0x3FF != 0 => subnormal += 1,
                0 => zero += 1,
                31 => inf += 1,
                _ => normal += 1,
            }
        }
    }
    assert!(
        subnormal > 100 && inf > 100 && zero > 100 && normal > 100,
        "{subnormal} subnormal, {inf} Inf, {zero} zero, {normal} normal weights"
    );
}

#[test]
fn fp16_variant_errs_where_the_fixed_point_design_is_exact_on_demo_tensors() {
    let m = seedlm::io::model::Model::open(&crate::helpers::demo_model()).unwrap();
    // The first 16 rows of two projections of the demo model, compressed by the engine.
    for (name, cols) in [
        ("encoder.layer.0.attention.self.query.weight", 384),
        ("encoder.layer.0.output.dense.weight", 1536),
    ] {
        let w = m.to_f32(m.get(name).unwrap()).unwrap();
        let rows = 16;
        let (t, _) = compress(&w[..rows * cols], Config::FOUR_BIT, Control::unwatched()).unwrap();
        let input = SimInput::from_tensor(&t, rows, cols, sim::random_x(cols, 5), true).unwrap();
        let out = simulate(&input);
        assert!(report::cross_check(&t, &input, &out).ok(), "{name}");
        let e = report::errors(&input, &out);
        let fp16 = e.fp16.unwrap();
        // Fixed point: exact integers, only the final scaling rounds.
        assert!(e.seedlm.max_rel < 1e-14, "{name}: {:?}", e.seedlm);
        // FP16 weights keep 11 significant bits (2^-12 relative rounding at most, more for
        // subnormals); the vector's error is of that order, and outputs near zero err more.
        assert!(
            fp16.norm_rel > 1e-5 && fp16.norm_rel < 1e-3,
            "{name}: {fp16:?}"
        );
        assert!(fp16.mean_rel >= fp16.norm_rel / 10.0, "{name}: {fp16:?}");
        assert!(fp16.max_rel > 100.0 * e.seedlm.max_rel, "{name}: {fp16:?}");
    }
}
