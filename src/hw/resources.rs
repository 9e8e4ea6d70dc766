//! FPGA resources of a synthesised design, split like the paper's Table 4: the MAC block, the
//! LFSR decompressor, the pre-MAC stage and the rest (memories, beat front end, control, I/O
//! buffers). Each RTL module belongs to one part; Yosys's cell counts per module (`stat -json`)
//! are summed over every instance of it.

use crate::hw::paper::{PAPER_TABLE4_REFERENCE, PAPER_TABLE4_SEEDLM, PaperTable4, PaperUsage};
use crate::hw::rtl::Target;
use serde_json::Value;
use std::collections::BTreeMap;

/// LUTs, flip-flops, block RAMs (36 Kb) and DSP slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Lookup tables, those used as memory or shift registers and inverters included.
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Block RAMs in 36 Kb units (a RAMB18 is half).
    pub bram: f64,
    /// DSP48E2 slices.
    pub dsps: u64,
}

impl Usage {
    fn add_cells(&mut self, cell: &str, n: u64) {
        match cell {
            // An inverter Yosys leaves as a cell takes a LUT1 unless the placer folds it.
            "INV" | "LUT1" | "LUT2" | "LUT3" | "LUT4" | "LUT5" | "LUT6" | "SRL16E" | "SRLC32E"
            | "RAM64X1S" | "RAM32X1S" => self.luts += n,
            "RAM32X1D" | "RAM64X1D" | "RAM128X1S" => self.luts += 2 * n,
            "RAM32M" | "RAM64M" | "RAM128X1D" | "RAM256X1S" => self.luts += 4 * n,
            "RAM32M16" | "RAM64M8" | "RAM512X1S" => self.luts += 8 * n,
            "FDRE" | "FDSE" | "FDCE" | "FDPE" | "LDCE" | "LDPE" => self.ffs += n,
            "RAMB36E2" => self.bram += n as f64,
            "RAMB18E2" => self.bram += 0.5 * n as f64,
            "DSP48E2" => self.dsps += n,
            _ => {}
        }
    }

    fn add(&mut self, o: &Usage) {
        self.luts += o.luts;
        self.ffs += o.ffs;
        self.bram += o.bram;
        self.dsps += o.dsps;
    }

    /// The paper's figures in this form.
    pub fn from_paper(p: &PaperUsage) -> Usage {
        Usage {
            luts: p.luts,
            ffs: p.ffs,
            bram: p.bram,
            dsps: p.dsps,
        }
    }
}

/// A part of a design, as Table 4 splits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The multipliers, the per-beat sums and their pipeline (`ref_mvm`, `seedlm_mvm`,
    /// `seedlm3_mvm`; the 3-bit design's gearbox included).
    Mac,
    /// The LFSR states of a block's basis (`seedlm_lfsr_jump`).
    Lfsr,
    /// Between the decompressor and the MACs (`seedlm_record_decode`: the exact integer weights
    /// n_i = Σ v·q; in the FP16 variant also `seedlm_fp16_convert`, the paper's fixed-point to
    /// FP16 conversion).
    PreMac,
    /// Everything else: activation and output memories, beat front end, row accumulator,
    /// control, I/O buffers.
    Other,
}

impl Part {
    /// Every part, in table order.
    pub const ALL: [Part; 4] = [Part::Mac, Part::Lfsr, Part::PreMac, Part::Other];

    /// The part's name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Part::Mac => "MAC block",
            Part::Lfsr => "LFSR decompress",
            Part::PreMac => "pre-MAC / conversion",
            Part::Other => "other (memories, control)",
        }
    }

    /// Its key in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Part::Mac => "mac",
            Part::Lfsr => "lfsr",
            Part::PreMac => "pre_mac",
            Part::Other => "other",
        }
    }

    /// The part a module (its name before the `$` Yosys appends per instance) belongs to.
    fn of_module(base: &str) -> Part {
        match base {
            "ref_mvm" | "seedlm_mvm" | "seedlm3_mvm" => Part::Mac,
            "seedlm_lfsr_jump" => Part::Lfsr,
            "seedlm_record_decode" | "seedlm_fp16_convert" => Part::PreMac,
            _ => Part::Other,
        }
    }

    /// The paper's figure of this part. Table 4 has no "other" column, and its named parts do
    /// not add up to its total (the SeedLM LUTs sum to 1 395 more), so no rest is derived.
    pub fn paper(self, t: &PaperTable4) -> Option<Usage> {
        match self {
            Part::Mac => Some(Usage::from_paper(&t.mac)),
            Part::Lfsr => Some(Usage::from_paper(&t.lfsr)),
            Part::PreMac => Some(Usage::from_paper(&t.pre_mac)),
            Part::Other => None,
        }
    }
}

/// The synthesised resources of one design.
#[derive(Clone, Debug, PartialEq)]
pub struct DesignResources {
    /// The design.
    pub target: Target,
    /// Resources per part, in [`Part::ALL`] order.
    pub parts: [Usage; 4],
    /// The longest combinational path of the flattened netlist, in cells (Yosys `ltp -noff`; a
    /// carry chain or a DSP counts once per cell): a logic-depth figure, not a timing.
    pub logic_depth: Option<u64>,
}

impl DesignResources {
    /// Reads Yosys's `stat -json` and, if given, `ltp` output of a synthesis of `target`.
    pub fn from_stat(target: Target, stat: &str, ltp: Option<&str>) -> Result<Self, String> {
        let v: Value = serde_json::from_str(stat).map_err(|e| format!("stat JSON: {e}"))?;
        let modules = v["modules"].as_object().ok_or("stat JSON has no modules")?;
        // Module name → its local cell counts by type; names drop Yosys's leading backslash.
        let cells: BTreeMap<&str, BTreeMap<&str, u64>> = modules
            .iter()
            .map(|(name, m)| {
                let by_type = m["num_cells_by_type"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(t, n)| (t.as_str(), n.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default();
                (name.trim_start_matches('\\'), by_type)
            })
            .collect();
        let top = target.top();
        if !cells.contains_key(top) {
            return Err(format!("stat JSON has no module {top}"));
        }
        // Instances of each module below the top (a submodule is a cell whose type is a module).
        let mut count: BTreeMap<&str, u64> = BTreeMap::from([(top, 1)]);
        let mut stack = vec![(top, 1u64)];
        while let Some((m, n)) = stack.pop() {
            for (ty, k) in &cells[m] {
                if cells.contains_key(ty) {
                    *count.entry(ty).or_default() += n * k;
                    stack.push((ty, n * k));
                }
            }
        }
        let mut parts = [Usage::default(); 4];
        for (m, n) in &count {
            let base = m.split('$').next().unwrap_or(m);
            let i = Part::ALL
                .iter()
                .position(|p| *p == Part::of_module(base))
                .unwrap_or(3);
            for (ty, k) in &cells[m] {
                parts[i].add_cells(ty, n * k);
            }
        }
        Ok(DesignResources {
            target,
            parts,
            logic_depth: ltp.and_then(parse_ltp),
        })
    }

    /// The whole design.
    pub fn total(&self) -> Usage {
        let mut t = Usage::default();
        for p in &self.parts {
            t.add(p);
        }
        t
    }

    /// A part's resources.
    pub fn part(&self, p: Part) -> Usage {
        self.parts[Part::ALL.iter().position(|q| *q == p).unwrap_or(3)]
    }

    /// The paper's column group for this design, where Table 4 has one (the 3-bit design is
    /// not in the paper; its SeedLM design converts to FP16, both 4-bit designs face it).
    pub fn paper(&self) -> Option<&'static PaperTable4> {
        match self.target {
            Target::RefMvm => Some(&PAPER_TABLE4_REFERENCE),
            Target::SeedlmMvm | Target::SeedlmFp16Mvm => Some(&PAPER_TABLE4_SEEDLM),
            _ => None,
        }
    }

    /// The design's name in tables.
    pub fn label(&self) -> &'static str {
        design_label(self.target)
    }
}

/// A synthesised design's name in tables.
pub fn design_label(t: Target) -> &'static str {
    match t {
        Target::RefMvm => "FP16 reference",
        Target::SeedlmMvm => "SeedLM 4-bit",
        Target::SeedlmFp16Mvm => "SeedLM 4-bit FP16",
        Target::Seedlm3Mvm => "SeedLM 3-bit",
        Target::LfsrUnit => "LFSR unit",
    }
}

/// The length in `ltp`'s "Longest topological path in TOP (length=N):"; none where it met a
/// loop (its length then means nothing).
fn parse_ltp(text: &str) -> Option<u64> {
    if text.contains("Detected loop") {
        return None;
    }
    let rest = text.split("(length=").nth(1)?;
    rest.split(')').next()?.trim().parse().ok()
}

/// The resources of every synthesised design, with the tool that gave them.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceTable {
    /// The Yosys version.
    pub tool: String,
    /// One entry per design.
    pub designs: Vec<DesignResources>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A top with two instances of one LFSR module below a decoder, and a MAC module.
    const STAT: &str = r#"{"modules": {
        "\\mvm_top": {"num_cells_by_type": {"IBUF": 3, "FDRE": 2,
            "seedlm_mvm$mvm_top.u": 1}},
        "\\seedlm_mvm$mvm_top.u": {"num_cells_by_type": {"DSP48E2": 4, "LUT6": 10,
            "seedlm_record_decode$x": 1}},
        "\\seedlm_record_decode$x": {"num_cells_by_type": {"LUT3": 5,
            "seedlm_lfsr_jump$y": 2}},
        "\\seedlm_lfsr_jump$y": {"num_cells_by_type": {"LUT2": 7, "RAMB18E2": 1,
            "RAM64M8": 1}}
    }}"#;

    #[test]
    fn cells_are_summed_per_part_over_instances() {
        let ltp = "Longest topological path in mvm_top (length=37):\n  1: a\n";
        let r = DesignResources::from_stat(Target::SeedlmMvm, STAT, Some(ltp)).unwrap();
        assert_eq!(r.part(Part::Mac).dsps, 4);
        assert_eq!(r.part(Part::Mac).luts, 10);
        assert_eq!(r.part(Part::PreMac).luts, 5);
        // Two instances: 2 · (7 LUTs + 8 LUTs of LUT RAM), 2 · half a BRAM.
        assert_eq!(r.part(Part::Lfsr).luts, 30);
        assert_eq!(r.part(Part::Lfsr).bram, 1.0);
        assert_eq!(r.part(Part::Other).ffs, 2);
        assert_eq!(r.total().luts, 45);
        assert_eq!(r.logic_depth, Some(37));
        let looped = format!("Warning: Detected loop at x\n{ltp}");
        let r = DesignResources::from_stat(Target::SeedlmMvm, STAT, Some(&looped)).unwrap();
        assert_eq!(r.logic_depth, None);
        // A statistics file without the top, or not JSON, is an error.
        let no_top = r#"{"modules": {"\\seedlm_mvm$x": {"num_cells_by_type": {}}}}"#;
        assert!(DesignResources::from_stat(Target::SeedlmMvm, no_top, None).is_err());
        assert!(DesignResources::from_stat(Target::SeedlmMvm, "stat", None).is_err());
    }

    #[test]
    fn paper_parts_are_table4s_columns() {
        let mac = Part::Mac.paper(&PAPER_TABLE4_SEEDLM).unwrap();
        assert_eq!((mac.luts, mac.dsps), (42174, 128));
        assert_eq!(Part::Lfsr.paper(&PAPER_TABLE4_SEEDLM).unwrap().bram, 144.0);
        assert_eq!(Part::Lfsr.paper(&PAPER_TABLE4_REFERENCE).unwrap().luts, 0);
        assert!(Part::Other.paper(&PAPER_TABLE4_SEEDLM).is_none());
    }
}
