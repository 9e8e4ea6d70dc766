//! Helpers shared by the integration tests: the binary under test, and small models written to
//! temporary directories.

pub mod ui;

use seedlm::io::container::{OutTensor, Payload, write_atomic};
use seedlm::io::dtype::{self, Dtype};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Hang guards: how long background work or a child run may take before a test calls it
/// stuck. Generous, since the machine may be shared; no test asserts how fast work ends.
/// Work on a tiny or synthetic model.
pub const SMALL_JOB: Duration = Duration::from_secs(120);
/// Work on the bundled demo model (opening it, compressing some of it).
pub const JOB: Duration = Duration::from_secs(300);
/// Running a model: Quality, Generate, Baselines with function-space figures.
pub const MODEL_RUN: Duration = Duration::from_secs(600);
/// The whole demo model through the CLI: a calibrated plan, or every shard on a cluster.
pub const WHOLE_MODEL: Duration = Duration::from_secs(900);
/// A daemon starting or stopping (slurmctld, slurmd, munged).
pub const DAEMON: Duration = Duration::from_secs(60);
/// A cold Verilator build and simulation (minutes on two cores).
pub const HW_BUILD: Duration = Duration::from_secs(1200);

/// A tensor to write: name, dtype, shape, values (converted to the dtype) or raw bytes.
pub struct T {
    pub name: &'static str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl T {
    /// A float tensor from f32 values.
    pub fn float(name: &'static str, dtype: Dtype, shape: &[usize], values: &[f32]) -> T {
        assert_eq!(values.len(), shape.iter().product::<usize>());
        T {
            name,
            dtype,
            shape: shape.to_vec(),
            bytes: dtype::from_f32(dtype, values).unwrap(),
        }
    }

    /// An I64 tensor 0, 1, 2, ...
    pub fn ids(name: &'static str, n: usize) -> T {
        T {
            name,
            dtype: Dtype::I64,
            shape: vec![1, n],
            bytes: (0..n as i64).flat_map(|i| i.to_le_bytes()).collect(),
        }
    }
}

pub use seedlm::core::random::gaussian;

/// The bundled demo model's directory (assets/demo).
pub fn demo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

/// The bundled demo model's weights file.
pub fn demo_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(seedlm::app::loader::DEMO_MODEL)
}

/// Writes a safetensors file.
pub fn write_model(path: &Path, tensors: &[T]) {
    let out = tensors
        .iter()
        .map(|t| OutTensor {
            name: t.name.to_string(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: Payload::Bytes(&t.bytes),
        })
        .collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_atomic(path, out, &meta).unwrap();
}

/// A small model: two compressible weights (one of 65 elements, not a multiple of C), a norm,
/// a bias and an integer tensor.
pub fn small_model() -> Vec<T> {
    vec![
        T::float(
            "layers.0.q_proj.weight",
            Dtype::F16,
            &[16, 24],
            &gaussian(384, 0.02, 1),
        ),
        T::float(
            "layers.0.mlp.weight",
            Dtype::BF16,
            &[5, 13],
            &gaussian(65, 0.5, 2),
        ),
        T::float(
            "layers.0.norm.weight",
            Dtype::F32,
            &[24],
            &gaussian(24, 1.0, 3),
        ),
        T::float(
            "layers.0.q_proj.bias",
            Dtype::F32,
            &[24],
            &gaussian(24, 1.0, 4),
        ),
        T::ids("position_ids", 7),
    ]
}

/// Names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Paths of every file under `dir`, relative to it and sorted (sub-folders included).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The `seedlm` binary under test, ready for arguments.
pub fn seedlm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seedlm"))
}

/// Runs `seedlm` with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    seedlm().args(args).output().expect("the binary runs")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command that must fail: returns stderr after checking it is one error line, not a
/// panic.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one error line expected: {err}");
    err
}

/// A path as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sends SIGINT (Ctrl-C) to `child`, reads the rest of its `stderr` and waits for it: its exit
/// code and that stderr.
pub fn interrupt(
    child: &mut std::process::Child,
    stderr: &mut impl std::io::Read,
) -> (Option<i32>, String) {
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    (child.wait().unwrap().code(), rest)
}

/// Checkpoint pieces in a shard's checkpoint directory `ckpt` (0 when it does not exist).
pub fn pieces(ckpt: &Path) -> usize {
    std::fs::read_dir(ckpt)
        .map(|r| {
            r.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("piece-")
            })
            .count()
        })
        .unwrap_or(0)
}

/// Starts `seedlm args` (one `compress --shard` run) and returns it, still running, once its
/// checkpoint directory `ckpt` holds at least `n` pieces.
pub fn running_after_pieces(args: &[&str], ckpt: &Path, n: usize) -> std::process::Child {
    let mut child = seedlm().args(args).spawn().unwrap();
    let start = std::time::Instant::now();
    while pieces(ckpt) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the shard finished before {n} pieces were seen"
        );
        assert!(start.elapsed() < SMALL_JOB, "no checkpoint written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// Runs `seedlm args` (one `compress --shard` run) and kills it once its checkpoint directory
/// `ckpt` holds at least `n` pieces; returns the pieces it left.
pub fn kill_after_pieces(args: &[&str], ckpt: &Path, n: usize) -> usize {
    let mut child = running_after_pieces(args, ckpt, n);
    child.kill().unwrap();
    child.wait().unwrap();
    pieces(ckpt)
}
