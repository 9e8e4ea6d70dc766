//! A real single-node Slurm cluster on localhost (munged, slurmctld, slurmd from Debian's
//! slurm-wlm and munge, installed by scripts/setup.sh): `seedlm slurm … --submit` runs a
//! 3-task job array and a merge job after it, and the merged file is byte-identical to a
//! single-machine compression. A machine that cannot run the cluster fails the test.

use crate::helpers::{DAEMON, run, s, small_model, text, write_model};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the cluster could not be brought up, as the test's failure message.
fn cannot(what: impl std::fmt::Display) -> ! {
    panic!(
        "cannot run a single-node Slurm cluster on this machine: {what} (scripts/setup.sh installs slurm-wlm and munge; the test must run as root)"
    )
}

/// Waits up to `limit` for `ok`.
fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn sh(cmd: &str, args: &[&str], conf: &Path) -> Option<String> {
    let o = Command::new(cmd)
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .ok()?;
    o.status.success().then(|| text(&o.stdout))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| cannot(format!("no free TCP port ({e})")))
}

/// One cluster at a time: the tests share munged and the node's resources.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The daemons this test started; dropping it stops exactly those.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    daemons: Vec<Child>,
    munged: Option<u32>,
    /// Held until the daemons are stopped (fields drop after [`Drop::drop`]).
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    fn start() -> Cluster {
        // A test that failed while holding the lock leaves nothing running: go on.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| text(&o.stdout));
        if uid.ok().as_deref().map(str::trim) != Some("0") {
            cannot("not running as root");
        }
        for bin in [
            "/usr/sbin/munged",
            "/usr/sbin/slurmctld",
            "/usr/sbin/slurmd",
        ] {
            if !Path::new(bin).exists() {
                cannot(format!("{bin} is not installed"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            conf: dir.path().join("slurm.conf"),
            dir,
            daemons: Vec::new(),
            munged: None,
            _serial: serial,
        };
        cluster.start_munge();
        cluster.write_conf();
        let d = cluster.dir.path();
        for (bin, args, log) in [
            ("/usr/sbin/slurmctld", &["-D", "-c"][..], "slurmctld.out"),
            (
                "/usr/sbin/slurmd",
                &["-D", "-N", "localhost"][..],
                "slurmd.out",
            ),
        ] {
            let out = std::fs::File::create(d.join(log)).unwrap();
            let child = Command::new(bin)
                .args(args)
                .env("SLURM_CONF", &cluster.conf)
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| cannot(format!("{bin} does not start ({e})")));
            cluster.daemons.push(child);
        }
        let conf = cluster.conf.clone();
        if !wait_for(DAEMON, || {
            sh("sinfo", &["-h", "-o", "%T"], &conf).is_some_and(|s| s.trim() == "idle")
        }) {
            let log = std::fs::read_to_string(d.join("slurmctld.log")).unwrap_or_default();
            let dlog = std::fs::read_to_string(d.join("slurmd.log")).unwrap_or_default();
            cannot(format!(
                "the node did not become idle within {} s; slurmctld.log ends: {}; slurmd.log ends: {}",
                DAEMON.as_secs(),
                tail(&log),
                tail(&dlog)
            ));
        }
        cluster
    }

    /// Uses a running munged, or starts one as the munge user (creating the key if missing).
    fn start_munge(&mut self) {
        let works = || {
            Command::new("sh")
                .args(["-c", "munge -n | unmunge"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works() {
            return;
        }
        let setup = "set -e; mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
            [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
            chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
            chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge";
        let ok = Command::new("sh")
            .args(["-c", setup])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            cannot("cannot prepare /etc/munge and /run/munge");
        }
        let o = Command::new("runuser")
            .args(["-u", "munge", "--", "/usr/sbin/munged"])
            .output()
            .unwrap_or_else(|e| cannot(format!("runuser does not run ({e})")));
        if !o.status.success() {
            cannot(format!("munged does not start: {}", text(&o.stderr).trim()));
        }
        self.munged = std::fs::read_to_string("/run/munge/munged.pid")
            .ok()
            .and_then(|p| p.trim().parse().ok());
        if !wait_for(DAEMON, works) {
            cannot("munged started but munge -n | unmunge fails");
        }
    }

    fn write_conf(&self) {
        let d = self.dir.path();
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        // The node as slurmd detects it (CPUs, sockets, cores, RealMemory), named localhost.
        let detected = Command::new("/usr/sbin/slurmd")
            .arg("-C")
            .output()
            .map(|o| text(&o.stdout))
            .unwrap_or_default();
        let node = detected
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .unwrap_or_else(|| cannot("slurmd -C does not describe the node"));
        let node = node
            .split_whitespace()
            .skip(1)
            .filter(|f| !f.starts_with("UpTime"))
            .collect::<Vec<_>>()
            .join(" ");
        let (ctl, slurmd) = (free_port(), free_port());
        let p = |name: &str| d.join(name).display().to_string();
        let conf = format!(
            "ClusterName=seedlmtest
SlurmctldHost=localhost
SlurmctldPort={ctl}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={ctlpid}
SlurmdPidFile={dpid}
SlurmctldLogFile={ctllog}
SlurmdLogFile={dlog}
NodeName=localhost {node} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
            state = p("state"),
            spool = p("spool"),
            ctlpid = p("slurmctld.pid"),
            dpid = p("slurmd.pid"),
            ctllog = p("slurmctld.log"),
            dlog = p("slurmd.log"),
        );
        std::fs::write(&self.conf, conf).unwrap();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if !wait_for(DAEMON, || child.try_wait().ok().flatten().is_some()) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(pid) = self.munged {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// Runs `seedlm slurm MODEL -o OUT --shards 3 EXTRA --submit` on `cluster` and waits up to
/// `limit` for every job it submitted (those named on the lines starting with `submitted`);
/// returns the shard folder and the compress array's job id.
fn submit_and_wait(
    cluster: &Cluster,
    model: &Path,
    out: &Path,
    extra: &[&str],
    limit: Duration,
) -> (PathBuf, String) {
    let o = crate::helpers::seedlm()
        .args(["slurm", s(model), "-o", s(out), "--shards", "3"])
        .args(["--cpus-per-task", "1", "--time", "30:00", "--submit"])
        .args(extra)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", text(&o.stderr));
    let id = |what: &str| -> Option<String> {
        let line = stdout.lines().find(|l| l.starts_with(what))?;
        Some(line[what.len()..].split_whitespace().next()?.to_string())
    };
    let array = id("submitted compress array job ").unwrap_or_else(|| panic!("{stdout}"));
    let ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("submitted "))
        .filter_map(|l| {
            l.split(" job ")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(String::from)
        })
        .collect();
    assert!(ids.len() >= 2, "{stdout}");
    let folder = PathBuf::from(format!("{}.shards", out.display()));
    let script = std::fs::read_to_string(folder.join("compress.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2"), "{script}");
    assert!(script.contains(env!("CARGO_BIN_EXE_seedlm")), "{script}");
    let merge_script = std::fs::read_to_string(folder.join("merge.sbatch")).unwrap();
    assert!(merge_script.contains(" merge "), "{merge_script}");

    // Bounded wait until no job is queued or running.
    let conf = cluster.conf.clone();
    let jobs = ids.join(",");
    let finished = wait_for(limit, || {
        sh("squeue", &["-h", "-j", &jobs], &conf).is_some_and(|s| s.trim().is_empty())
    });
    assert!(
        finished,
        "jobs {jobs} still queued after {limit:?}: {}",
        log_text(&folder)
    );
    for task in 0..3 {
        let log = folder
            .join("logs")
            .join(format!("compress-{array}_{task}.log"));
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            t.contains(&format!("shard {task}/3")),
            "{}: {t}",
            log.display()
        );
    }
    (folder, array)
}

/// Every log of a shard folder, for a failure message.
fn log_text(folder: &Path) -> String {
    std::fs::read_dir(folder.join("logs"))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.file_name().to_string_lossy(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn slurm_array_and_merge_job_give_the_single_machine_bytes() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model.safetensors");
    write_model(&model, &small_model());
    let single = work.path().join("single.safetensors");
    let o = run(&["compress", s(&model), "-o", s(&single)]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let out = work.path().join("packed.safetensors");
    let started = Instant::now();
    let (folder, _) = submit_and_wait(&cluster, &model, &out, &[], crate::helpers::JOB);
    assert!(
        out.is_file(),
        "the merge job wrote no output: {}",
        log_text(&folder)
    );
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&single).unwrap(),
        "Slurm result differs from the single-machine compression"
    );
    eprintln!(
        "slurm: 3-task array and merge done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let st = text(&run(&["status", s(&out)]).stdout);
    assert!(st.contains("3/3 shards finished"), "{st}");
}

/// `seedlm slurm --target-bpw 4.0 --calibrate TEXT` submits three steps: the plan job, the
/// array after it, the merge after the array; the result is the single run's bytes.
#[test]
fn slurm_plan_array_and_merge_give_the_single_machine_bytes_with_a_bit_budget_and_calibration() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/llama");
    let calib = work.path().join("calib.txt");
    std::fs::write(
        &calib,
        "She walked to the window and looked out at the rain for a long while.\n",
    )
    .unwrap();
    let extra = [
        "--include",
        r"layers\.0\.self_attn\.k_proj|layers\.1\.self_attn\.q_proj",
        "--target-bpw",
        "4.0",
        "--calibrate",
        s(&calib),
    ];
    let single = work.path().join("single");
    let o = run(&[&["compress", s(&model), "-o", s(&single)][..], &extra].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));

    let out = work.path().join("packed");
    let (folder, _) = submit_and_wait(&cluster, &model, &out, &extra, crate::helpers::WHOLE_MODEL);
    let plan = std::fs::read_to_string(folder.join("plan.sbatch")).unwrap();
    assert!(
        plan.contains(" plan ") && plan.contains("--target-bpw 4 ") && plan.contains("calib.txt"),
        "{plan}"
    );
    let logs = log_text(&folder);
    assert!(
        logs.contains("plan-") && logs.contains("job.json"),
        "{logs}"
    );
    for f in ["model.safetensors", "config.json"] {
        assert!(
            std::fs::read(out.join(f)).ok() == std::fs::read(single.join(f)).ok(),
            "{f}: the Slurm result differs from the single-machine compression: {logs}"
        );
    }
    let st = text(&run(&["status", s(&out)]).stdout);
    assert!(
        st.contains("plan   made for") && st.contains("3/3 shards finished"),
        "{st}"
    );
}

/// Paths and options written into the scripts cannot run commands: a control character (a
/// newline would end a comment or `#SBATCH` line) is refused before anything is written, and
/// `$(…)`, backticks and quotes reach the binary as the literal path.
#[test]
fn script_paths_cannot_inject_commands() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model.safetensors");
    write_model(&model, &small_model());
    let dir = work.path();
    for bad in ["o\ntouch pwned\n.safetensors", "o\rx.safetensors"] {
        let out = dir.join(bad);
        let err = crate::helpers::fails(&["slurm", s(&model), "-o", s(&out), "--shards", "2"]);
        assert!(err.contains("control character"), "{err}");
    }
    let err = crate::helpers::fails(&[
        "slurm",
        s(&model),
        "-o",
        s(&dir.join("o")),
        "--shards",
        "2",
        "--partition",
        "a\nb",
    ]);
    assert!(err.contains("--partition"), "{err}");
    assert_eq!(
        crate::helpers::listing(dir),
        ["model.safetensors"],
        "nothing written"
    );
    // The scripts run `--bin` with the paths as arguments: echo shows what a binary would get.
    for name in [
        "o$(touch pwned).safetensors",
        "o`touch pwned`.safetensors",
        "o'x\" y.safetensors",
    ] {
        let out = dir.join(name);
        let o = run(&[
            "slurm",
            s(&model),
            "-o",
            s(&out),
            "--shards",
            "2",
            "--bin",
            "/bin/echo",
        ]);
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
        let folder = PathBuf::from(format!("{}.shards", out.display()));
        for script in ["compress.sbatch", "merge.sbatch"] {
            let ran = std::process::Command::new("bash")
                .arg(folder.join(script))
                .current_dir(dir)
                .env_remove("SLURM_CPUS_PER_TASK")
                .output()
                .unwrap();
            assert!(
                ran.status.success(),
                "{name} {script}: {}",
                text(&ran.stderr)
            );
            let said = text(&ran.stdout);
            assert!(said.contains(s(&out)), "{name} {script}: {said}");
            assert!(!dir.join("pwned").exists(), "{name} {script} ran a command");
        }
    }
}

/// Memory, account, quality of service and any other sbatch option reach both scripts as
/// `#SBATCH` lines (issue 23, item 11).
#[test]
fn scripts_take_memory_account_qos_and_other_sbatch_options() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model.safetensors");
    write_model(&model, &small_model());
    let out = work.path().join("o.safetensors");
    let o = run(&[
        "slurm",
        s(&model),
        "-o",
        s(&out),
        "--shards",
        "2",
        "--mem",
        "16G",
        "--account",
        "proj1",
        "--qos",
        "low",
        "--sbatch",
        "--constraint=avx2",
        "--sbatch",
        "--exclusive",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let folder = PathBuf::from(format!("{}.shards", out.display()));
    for script in ["compress.sbatch", "merge.sbatch"] {
        let body = std::fs::read_to_string(folder.join(script)).unwrap();
        for line in [
            "#SBATCH --mem=16G",
            "#SBATCH --account=proj1",
            "#SBATCH --qos=low",
            "#SBATCH --constraint=avx2",
            "#SBATCH --exclusive",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "{script}: no '{line}' in {body}"
            );
        }
    }
    let err = crate::helpers::fails(&[
        "slurm",
        s(&model),
        "-o",
        s(&out),
        "--shards",
        "2",
        "--sbatch",
        "--x\nrm -rf /",
    ]);
    assert!(err.contains("--sbatch"), "{err}");
}
