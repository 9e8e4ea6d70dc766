//! Cycle counts without running the RTL: the DDR model of the harness (`hdl/tb/harness.h`)
//! counted exactly, and from it an estimate for configurations that have no RTL target (a
//! `--target-bpw` file's (C, P, K) menu).
//!
//! Both SeedLM datapaths and the FP16 reference accept a beat every cycle and never stall on
//! data, so a run takes `latency + beats + refresh stalls + depth` cycles (`hdl/README.md`),
//! plus the cycle a gearbox may add at the end ([`gearbox_tail`]); [`stream_cycles`] and
//! [`seedlm_cycles`] count that for a datapath's [`Layout`], and the tests check it equal to
//! the simulations. The estimate assumes the 3-bit design's datapath (`seedlm3_mvm.sv`, whose
//! RTL takes C, P and the group size as parameters) for any configuration: records of
//! K + 4 + 4P bits back to back in the stream, a gearbox handing [`records_per_cycle`] of them
//! a cycle (the fewest wider than a beat, the gearbox's own rule, so the DDR never waits: 15 × 36
//! = 540 bits for the 3-bit preset), C MACs per record, the same four pipeline stages and the
//! same fill latency.

use crate::core::config::Config;
use crate::hw::design::{BEAT_BYTES, Layout, ShapeError, check_len, reference_takes};
use crate::hw::sim::DdrParams;
use crate::search::compress::CompressedTensor;

/// Pipeline stages after a beat arrives in both SeedLM datapaths (beat register or gearbox,
/// decode, products, accumulate).
pub const SEEDLM_DEPTH: u64 = 4;
/// Pipeline stages of the FP16 reference datapath (beat register, x read, products).
pub const REFERENCE_DEPTH: u64 = 3;
/// FP16 weights a beat carries to the reference.
const REFERENCE_WEIGHTS_PER_BEAT: usize = BEAT_BYTES / 2;

/// Cycles of one run on the DDR model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCycles {
    /// From the read request to the last output write, inclusive (the RTL's `cycles_o`).
    pub cycles: u64,
    /// Cycles the stream waited for a refresh after its first beat was due.
    pub refresh_stalls: u64,
}

/// Cycles of a datapath that takes a beat every cycle and has `depth` stages, reading `beats`
/// beats whose first is due `latency` cycles after the request: the harness's DDR model, where
/// the first `refresh_cycles` of every `refresh_period` (counted from the request) carry no data.
pub fn stream_cycles(beats: u64, latency: u64, depth: u64, ddr: &DdrParams) -> StreamCycles {
    let (period, refresh) = (ddr.refresh_period, ddr.refresh_cycles);
    if period == 0 || refresh == 0 {
        return StreamCycles {
            cycles: latency + beats + depth,
            refresh_stalls: 0,
        };
    }
    assert!(
        refresh < period,
        "a refresh of {refresh} cycles every {period} leaves no time for data"
    );
    // Window by window: t is the cycle (from the request) the next beat is due.
    let (mut t, mut left, mut stalls) = (latency, beats, 0);
    while left > 0 {
        let phase = t % period;
        if phase < refresh {
            stalls += refresh - phase;
            t += refresh - phase;
        } else {
            let run = (period - phase).min(left);
            t += run;
            left -= run;
        }
    }
    StreamCycles {
        cycles: t + depth,
        refresh_stalls: stalls,
    }
}

/// Records the estimate's gearbox hands the datapath a cycle for records of `cfg`: the fewest
/// wider than a beat (`seedlm3_mvm.sv` refuses a group no wider than a beat).
pub fn records_per_cycle(cfg: Config) -> usize {
    BEAT_BYTES * 8 / cfg.block_bits() as usize + 1
}

/// DDR beats of a `rows × cols` matrix's records of `cfg`, packed back to back as in the packed
/// file (blocks of C along the row-major flattened matrix, the last one padded).
pub fn seedlm_beats(cfg: Config, rows: usize, cols: usize) -> u64 {
    let bits = (rows * cols).div_ceil(cfg.c) * cfg.block_bits() as usize;
    bits.div_ceil(BEAT_BYTES * 8) as u64
}

/// Cycles past the last beat's stage a gearbox of `group` records adds: it emits a group a
/// cycle once it holds the group's bits, so each full group waits for a later beat than the one
/// before (a group is wider than a beat) and only the last, partial one can share the last beat
/// with the group before it; then it leaves a cycle later: 1, else 0.
pub fn gearbox_tail(cfg: Config, group: usize, rows: usize, cols: usize) -> u64 {
    let records = (rows * cols).div_ceil(cfg.c);
    let groups = records.div_ceil(group);
    let before_last = groups.saturating_sub(1) * group * cfg.block_bits() as usize;
    let shares = before_last.div_ceil(BEAT_BYTES * 8) as u64 == seedlm_beats(cfg, rows, cols);
    u64::from(groups >= 2 && shares)
}

/// Cycles of a SeedLM datapath of `layout` on a `rows × cols` matrix of `cfg` records: what
/// the RTL counts for the 4-bit and 3-bit designs, and for the 3-bit one's gearbox built with
/// other C, P and group sizes.
pub fn seedlm_cycles(
    cfg: Config,
    layout: Layout,
    rows: usize,
    cols: usize,
    ddr: &DdrParams,
) -> StreamCycles {
    let tail = match layout {
        Layout::WholeBeats => 0,
        Layout::Gearbox { group } => gearbox_tail(cfg, group, rows, cols),
    };
    stream_cycles(
        seedlm_beats(cfg, rows, cols),
        ddr.ddr_latency + ddr.fill_latency,
        SEEDLM_DEPTH + tail,
        ddr,
    )
}

/// Cycles of the FP16 reference on a `rows × cols` matrix, what its RTL counts, if it takes
/// the shape ([`reference_takes`]).
pub fn reference_cycles(rows: usize, cols: usize, ddr: &DdrParams) -> Option<u64> {
    reference_takes(rows, cols).then(|| {
        let beats = (rows * cols).div_ceil(REFERENCE_WEIGHTS_PER_BEAT) as u64;
        stream_cycles(beats, ddr.ddr_latency, REFERENCE_DEPTH, ddr).cycles
    })
}

/// The estimate for one matrix on a datapath of a configuration without RTL.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The configuration of the records.
    pub config: Config,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    /// Records decoded a cycle ([`records_per_cycle`]); C MACs each.
    pub records_per_cycle: usize,
    /// DDR beats of the records.
    pub beats: u64,
    /// SeedLM cycles and refresh stalls.
    pub seedlm: StreamCycles,
    /// Cycles of the FP16 reference, if it takes the shape.
    pub reference_cycles: Option<u64>,
}

impl Estimate {
    /// Multipliers the datapath needs: a weight of each record decoded a cycle.
    pub fn macs(&self) -> usize {
        self.records_per_cycle * self.config.c
    }

    /// SeedLM cycles.
    pub fn seedlm_cycles(&self) -> u64 {
        self.seedlm.cycles
    }

    /// Reference cycles over SeedLM cycles, if the reference takes the shape.
    pub fn speedup(&self) -> Option<f64> {
        self.reference_cycles
            .map(|r| r as f64 / self.seedlm.cycles as f64)
    }

    /// What the figures are, for a report: "estimate, no RTL for C=…, P=…, K=…" and the
    /// datapath assumed.
    pub fn note(&self) -> String {
        let c = self.config;
        format!(
            "estimate, no RTL for C={}, P={}, K={}: the 3-bit design's gearbox datapath taking \
             {} records of {} bits ({} MACs) a cycle, cycles from the DDR model",
            c.c,
            c.p,
            c.k,
            self.records_per_cycle,
            c.block_bits(),
            self.macs()
        )
    }
}

/// Estimates a `rows × cols` matrix of `cfg` records. The shape must fit the assumed datapath
/// as it fits the 3-bit one: at most [`crate::hw::design::MAX_DIM`] rows and columns, and a
/// cycle's records spanning at most two rows.
pub fn estimate(
    cfg: Config,
    rows: usize,
    cols: usize,
    ddr: &DdrParams,
) -> Result<Estimate, ShapeError> {
    let group = records_per_cycle(cfg);
    let layout = Layout::Gearbox { group };
    let name = format!("estimated C={}, P={}, K={}", cfg.c, cfg.p, cfg.k);
    layout.check_shape(&name, cfg, rows, cols)?;
    Ok(Estimate {
        config: cfg,
        rows,
        cols,
        records_per_cycle: group,
        beats: seedlm_beats(cfg, rows, cols),
        seedlm: seedlm_cycles(cfg, layout, rows, cols, ddr),
        reference_cycles: reference_cycles(rows, cols, ddr),
    })
}

/// Estimates a compressed tensor simulated as a `rows × cols` matrix.
pub fn estimate_tensor(
    t: &CompressedTensor,
    rows: usize,
    cols: usize,
    ddr: &DdrParams,
) -> Result<Estimate, ShapeError> {
    check_len(t, rows, cols)?;
    estimate(t.config, rows, cols, ddr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::design::{FOUR_BIT, Layout, THREE_BIT};

    #[test]
    fn stream_cycles_count_the_refresh_windows_after_the_first_beat() {
        let ddr = DdrParams::default();
        let none = DdrParams {
            refresh_period: 0,
            refresh_cycles: 0,
            ..ddr
        };
        let s = stream_cycles(1000, 220, 4, &none);
        assert_eq!((s.cycles, s.refresh_stalls), (1224, 0));
        // Beats 0..1340 fill cycles 220..1560; beat 1340 waits out the window 1560..1622.
        assert_eq!(stream_cycles(1340, 220, 4, &ddr).refresh_stalls, 0);
        let s = stream_cycles(1341, 220, 4, &ddr);
        assert_eq!((s.cycles, s.refresh_stalls), (1627, 62));
        // A first beat due inside the first window (the reference's 60 < 62) waits 2 cycles.
        assert_eq!(stream_cycles(1, 60, 3, &ddr).cycles, 66);
        // Long runs approach the paper's slope 1560 / 1498 = 1.0414 cycles per beat.
        let beats = 1 << 20;
        let per_beat = stream_cycles(beats, 0, 0, &ddr).cycles as f64 / beats as f64;
        assert!((per_beat - 1560.0 / 1498.0).abs() < 1e-4, "{per_beat}");
    }

    #[test]
    fn the_estimate_s_gearbox_is_the_3_bit_design_s() {
        let Layout::Gearbox { group } = THREE_BIT.layout else {
            panic!("the 3-bit design has a gearbox")
        };
        assert_eq!(records_per_cycle(Config::THREE_BIT), group);
        // 32-bit records: 17 (544 bits), wider than a beat; the 4bit-p6 preset's 44-bit records
        // of 11 weights: 12 (528 bits), 132 MACs.
        assert_eq!(records_per_cycle(Config { c: 7, p: 3, k: 16 }), 17);
        let e = estimate(Config::FOUR_BIT_P6, 512, 512, &DdrParams::default()).unwrap();
        assert_eq!((e.records_per_cycle, e.macs()), (12, 132));
    }

    #[test]
    fn a_partial_last_group_sharing_the_last_beat_costs_a_cycle() {
        let three = |rows, cols| gearbox_tail(Config::THREE_BIT, 15, rows, cols);
        // 5×200 in blocks of 12: 84 records, 6 groups of 15 (the last of 9), 6 beats; group 5
        // ends at bit 2700, in beat 6 with the rest.
        assert_eq!(three(5, 200), 1);
        // 512×512: 21 846 records, 1 457 groups, 1 537 beats: group 1 456 ends in beat 1 536.
        assert_eq!(three(512, 512), 0);
        assert_eq!(three(1, 180), 0, "a single group");
        // Whole beats never add one; 17-record groups of the same records do here.
        let ddr = DdrParams::default();
        let cycles = |layout| seedlm_cycles(Config::FOUR_BIT, layout, 3, 384, &ddr).cycles;
        assert_eq!(gearbox_tail(Config::FOUR_BIT, 17, 3, 384), 1);
        assert_eq!(
            cycles(Layout::WholeBeats) + 1,
            cycles(Layout::Gearbox { group: 17 })
        );
    }

    #[test]
    fn estimates_reproduce_the_measured_rtl_cycles() {
        // hdl/README.md's measured counts (random codes, default DDR model): reference, 4-bit
        // and 3-bit SeedLM.
        let ddr = DdrParams::default();
        for (n, reference, four, three) in [
            (512, 8567, 2334, 1823),
            (1024, 34135, 8726, 6617),
            (2048, 136531, 34294, 25793),
        ] {
            assert_eq!(reference_cycles(n, n, &ddr), Some(reference), "{n}");
            assert_eq!(
                seedlm_cycles(Config::FOUR_BIT, FOUR_BIT.layout, n, n, &ddr).cycles,
                four,
                "{n}"
            );
            let e = estimate(Config::THREE_BIT, n, n, &ddr).unwrap();
            assert_eq!(e.seedlm_cycles(), three, "{n}");
            assert_eq!(e.speedup(), Some(reference as f64 / three as f64));
        }
        // hdl/README.md's counts of `seedlm3_mvm` built for menu configurations (-GC, -GP,
        // -GRecords), among them shapes with a gearbox tail (4×100, 5×200, 448², 777×1232).
        for (c, p, rows, cols, cycles) in [
            (6, 4, 384, 384, 2015),
            (6, 4, 4, 100, 230),
            (6, 4, 1000, 1001, 12390),
            (14, 4, 1000, 1001, 5438),
            (11, 6, 2048, 2048, 34295),
            (11, 6, 5, 200, 233),
            (7, 3, 448, 448, 2079),
            (7, 3, 777, 1232, 9082),
            (7, 3, 2048, 2048, 39224),
        ] {
            let e = estimate(Config { c, p, k: 16 }, rows, cols, &ddr).unwrap();
            assert_eq!(e.seedlm_cycles(), cycles, "C={c}, P={p}, {rows}×{cols}");
        }
    }

    #[test]
    fn a_menu_configuration_is_estimated_within_its_datapath_s_shapes() {
        let ddr = DdrParams::default();
        let cfg = Config { c: 6, p: 4, k: 16 };
        let e = estimate(cfg, 1024, 1024, &ddr).unwrap();
        // 36-bit records of 6 weights: 174 763 records, 12 289 beats (6 bits a weight).
        assert_eq!((e.records_per_cycle, e.macs(), e.beats), (15, 90, 12289));
        assert!(e.note().starts_with("estimate, no RTL for C=6, P=4, K=16"));
        // Twice the 3-bit preset's beats, so close to twice its cycles; the reference's 4-bit
        // width gives a speed-up of about 16 / 6.
        let three = estimate(Config::THREE_BIT, 1024, 1024, &ddr).unwrap();
        let ratio = e.seedlm_cycles() as f64 / three.seedlm_cycles() as f64;
        assert!((1.9..2.0).contains(&ratio), "{ratio}");
        let s = e.speedup().unwrap();
        assert!((2.5..2.67).contains(&s), "{s}");
        // No reference at a width the 4-bit design does not take; too narrow for a group.
        assert_eq!(estimate(cfg, 4, 200, &ddr).unwrap().reference_cycles, None);
        let err = estimate(cfg, 4, 60, &ddr).unwrap_err().to_string();
        assert!(
            err.contains("estimated C=6, P=4, K=16") && err.contains("90..=8192"),
            "{err}"
        );
    }
}
