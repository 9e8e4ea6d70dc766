//! Function-space evaluation: candle against PyTorch references (tests/fixtures/eval, made by
//! scripts/make_eval_fixtures.py) and `seedlm eval` end to end.

use crate::helpers::{T, fails, run, s, text, write_model};
use seedlm::core::control::Control;
use seedlm::eval::{Evaluator, weights::Weights};
use seedlm::io::dtype::Dtype;
use seedlm::io::model::Model;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
}

/// The MiniLM model of the reference embeddings: the bundled demo model (its one copy in the
/// repository; the reference outputs stay in tests/fixtures/eval/minilm).
fn minilm() -> PathBuf {
    crate::helpers::demo_dir()
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap())
        .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The largest |got − want| over rows of equal lengths.
fn worst_diff(got: &[Vec<f32>], want: &[Value]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(want) {
        let w = floats(w);
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((f64::from(*a) - b).abs());
        }
    }
    worst
}

/// `seedlm eval` with `args` after ORIGINAL CANDIDATE and `--json`: its JSON object.
fn eval_json(original: &Path, candidate: &Path, args: &[&str]) -> Value {
    let mut all = vec!["eval", s(original), s(candidate), "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `seedlm compare` with `args` and `--json`: all its rows, and the total rows among them.
fn compare_json(args: &[&str]) -> (Vec<Value>, Vec<Value>) {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let totals = rows
        .iter()
        .filter(|r| r["tensor"] == "total")
        .cloned()
        .collect();
    (rows, totals)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number '{key}' in {v}"))
}

#[test]
fn decoders_reproduce_transformers_log_probs() {
    let never = AtomicBool::new(false);
    for name in ["llama", "mistral", "qwen2"] {
        let r = reference(name);
        let Evaluator::Decoder(d) = Evaluator::open(&fixture(name)).unwrap() else {
            panic!("{name} is not opened as a decoder");
        };
        let ids = d.tokenize(r["text"].as_str().unwrap()).unwrap();
        let want: Vec<u32> = r["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            ids, want,
            "{name}: tokenization differs from the tokenizers library's"
        );
        let ctx = r["ctx"].as_u64().unwrap() as usize;
        let windows: Vec<&[u32]> = ids.chunks(ctx).filter(|w| w.len() >= 2).collect();
        let ref_windows = r["logprobs"].as_array().unwrap();
        assert_eq!(windows.len(), ref_windows.len());
        let mut worst = 0f64;
        for (w, rw) in windows.iter().zip(ref_windows) {
            let got: Vec<Vec<f32>> = d
                .window_log_probs(d.weights(), w, &never)
                .unwrap()
                .to_vec2()
                .unwrap();
            worst = worst.max(worst_diff(&got, rw.as_array().unwrap()));
        }
        eprintln!("{name}: largest log-prob difference {worst:.1e}");
        assert!(
            worst < 1e-4,
            "{name}: log-probs differ from transformers' by {worst}"
        );
    }
}

#[test]
fn bert_reproduces_sentence_transformers_embeddings() {
    let r = reference("minilm");
    let Evaluator::Encoder(e) = Evaluator::open(&minilm()).unwrap() else {
        panic!("MiniLM is not opened as an encoder");
    };
    let sentences: Vec<String> = r["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let got = e
        .embed(e.weights(), &sentences, Control::unwatched())
        .unwrap();
    let worst = worst_diff(&got, r["embeddings"].as_array().unwrap());
    eprintln!("MiniLM: largest embedding difference {worst:.1e}");
    assert!(
        worst < 1e-4,
        "embeddings differ from sentence-transformers' by {worst}"
    );
}

#[test]
fn eval_of_a_model_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    // The reference text through the CLI: its perplexity is transformers' (same windows).
    let r = reference("llama");
    let text_file = dir.path().join("text.txt");
    std::fs::write(&text_file, r["text"].as_str().unwrap()).unwrap();
    let llama = fixture("llama");
    let j = eval_json(&llama, &llama, &["--text", s(&text_file), "--ctx", "16"]);
    assert_eq!(num(&j, "kl"), 0.0);
    assert_eq!(num(&j, "top1"), 1.0);
    assert_eq!(num(&j, "ppl_original"), num(&j, "ppl_candidate"));
    let ppl = num(&r, "ppl");
    assert!(
        (num(&j, "ppl_original") / ppl - 1.0).abs() < 1e-4,
        "{j} vs {ppl}"
    );
    assert_eq!(j["tokens"], r["ids"].as_array().unwrap().len());
    assert_eq!(j["scored"], r["scored"]);
    assert_eq!(j["ctx"], 16);
    assert_eq!(j["changed_tensors"], 0);

    let sentences = dir.path().join("s.txt");
    std::fs::write(
        &sentences,
        "A cat sleeps.\n\nStocks fell today.\nThe train is late.\nI like tea.\n",
    )
    .unwrap();
    let minilm = minilm();
    let j = eval_json(&minilm, &minilm, &["--sentences", s(&sentences)]);
    assert_eq!(j["sentences"], 4);
    assert!((num(&j, "mean_cosine") - 1.0).abs() < 1e-6, "{j}");
    assert!((num(&j, "min_cosine") - 1.0).abs() < 1e-6, "{j}");
    assert_eq!(num(&j, "similarity_spearman"), 1.0);
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("llama").join(f), m.join(f)).unwrap();
    }
    std::fs::write(
        m.join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}"#,
    )
    .unwrap();
    let err = fails(&["eval", s(&m), s(&m)]);
    assert!(
        err.contains("unsupported architecture 'gpt2' (GPT2LMHeadModel)"),
        "{err}"
    );
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn packed_candidate_in_memory_equals_decompressed_one() {
    let dir = tempfile::tempdir().unwrap();
    let llama = fixture("llama");
    let packed = dir.path().join("packed");
    let plain = dir.path().join("plain");
    for args in [
        vec!["compress", s(&llama), "-o", s(&packed), "--bits", "3"],
        vec!["decompress", s(&packed), "-o", s(&plain), "--dtype", "f32"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let opts = ["--ctx", "32", "--max-tokens", "600", "--per-layer"];
    let a = eval_json(&llama, &packed, &opts);
    let b = eval_json(&llama, &plain.join("model.safetensors"), &opts);
    assert_eq!(
        a, b,
        "decoding in memory must give the decompressed file's figures"
    );
    assert!(
        num(&a, "kl") > 0.0 && num(&a, "top1") < 1.0 && num(&a, "top1") > 0.0,
        "{a}"
    );
    assert!(num(&a, "ppl_candidate") != num(&a, "ppl_original"));
    // 2 layers × q, k, v, o, gate, up, down.
    let rows = a["per_layer"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    assert_eq!(a["changed_tensors"], 14);
    for row in rows {
        assert!(
            num(row, "relmse") > 0.0 && num(row, "relmse") < 0.2,
            "{row}"
        );
        assert!(num(row, "delta_kl") > 0.0, "{row}");
        assert!(
            num(row, "delta_kl") < num(&a, "kl"),
            "one tensor hurts less than all: {row}"
        );
    }
    // In the file's order.
    assert_eq!(rows[0]["tensor"], "model.layers.0.mlp.down_proj.weight");
}

#[test]
fn missing_candidate_tensors_come_from_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = minilm();
    let name = "encoder.layer.3.output.dense.weight";
    let model = Model::open(&minilm).unwrap();
    let t = model.get(name).unwrap();
    let noisy: Vec<f32> = model
        .to_f32(t)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, w)| w * (1.0 + 0.5 * ((i % 7) as f32 - 3.0) / 3.0))
        .collect();
    let one = dir.path().join("one.safetensors");
    write_model(&one, &[T::float(name, Dtype::F16, &t.shape, &noisy)]);
    let sentences = dir.path().join("s.txt");
    std::fs::write(
        &sentences,
        "A cat sleeps.\nStocks fell today.\nThe train is late.\n",
    )
    .unwrap();
    let j = eval_json(
        &minilm,
        &one,
        &["--sentences", s(&sentences), "--per-layer"],
    );
    assert_eq!(j["changed_tensors"], 1);
    let cos = num(&j, "mean_cosine");
    assert!(cos < 0.9999 && cos > 0.5, "{j}");
    assert!(num(&j, "min_cosine") <= cos);
    let rows = j["per_layer"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["tensor"], name);
    assert!(
        (num(&rows[0], "delta_mean_cosine") - (cos - 1.0)).abs() < 1e-12,
        "{j}"
    );
    assert!(num(&rows[0], "relmse") > 0.01, "{j}");

    let wrong = dir.path().join("wrong.safetensors");
    write_model(&wrong, &[T::float(name, Dtype::F32, &[2, 2], &[0.0; 4])]);
    let err = fails(&["eval", s(&minilm), s(&wrong)]);
    assert!(err.contains(name) && err.contains("shape"), "{err}");
}

#[test]
fn ctrl_c_stops_an_evaluation() {
    let llama = fixture("llama");
    let mut child = crate::helpers::seedlm()
        .args([
            "eval",
            s(&llama),
            s(&llama),
            "--ctx",
            "16",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Ctrl-C") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no Ctrl-C hint");
    }
    let (code, rest) = crate::helpers::interrupt(&mut child, &mut stderr);
    assert_eq!(code, Some(130), "{rest}");
    assert!(rest.contains("cancelled"), "{rest}");
}

#[test]
fn original_weights_load_in_any_float_dtype() {
    // The fixtures are stored as f32 (llama), bf16 (mistral) and f16 (qwen2).
    let dtypes: Vec<Dtype> = ["llama", "mistral", "qwen2"]
        .iter()
        .map(|n| Model::open(&fixture(n)).unwrap().tensors()[0].dtype)
        .collect();
    assert_eq!(dtypes, [Dtype::F32, Dtype::BF16, Dtype::F16]);
    let w = Weights::open(&fixture("qwen2")).unwrap();
    assert!(w.names().iter().any(|n| n.ends_with("q_proj.bias")));
    assert!(w.changed().is_empty());
}

#[test]
fn compare_eval_adds_each_methods_function_space_figure() {
    let demo = minilm();
    let (rows, totals) = compare_json(&[
        s(&demo),
        "--include",
        "layer\\.5\\.attention\\.self\\.value",
        "--methods",
        "rtn4-g128,rtn3-g128",
        "--eval",
    ]);
    assert_eq!(totals.len(), 2);
    let (c4, c3) = (
        num(&totals[0]["eval"], "mean_cosine"),
        num(&totals[1]["eval"], "mean_cosine"),
    );
    assert!(c3 < c4 && c4 < 1.0, "{c4} {c3}");
    // Per-tensor rows carry none; a model that cannot run is refused before the search.
    assert!(rows[0].get("eval").is_none());
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("m.safetensors");
    write_model(&lone, &crate::helpers::small_model());
    let err = fails(&["compare", s(&lone), "--eval"]);
    assert!(err.contains("no config.json"), "{err}");
}

/// `compress --calibrate` end to end, on a decoder and on the BERT encoder: the file records the
/// text, and each calibrated tensor's activation-weighted error (the search's own objective, its
/// floor included) is no larger than the data-free file's, and the total is smaller.
#[test]
fn calibrated_compression_lowers_each_tensors_activation_weighted_error() {
    use seedlm::io::opened::{Opened, open};
    use seedlm::search::compress::MIN_RELATIVE_WEIGHT;
    let dir = tempfile::tempdir().unwrap();
    let calib = dir.path().join("calib.txt");
    let words = "She walked to the window and looked out at the rain for a long while.\n\n\
                 He said nothing, then laughed, and the letter lay unopened on the table.";
    std::fs::write(&calib, words).unwrap();
    let cases = [
        (fixture("llama"), None, 14),
        (
            minilm(),
            Some("layer\\.1\\.(attention\\.self\\.query|output\\.dense)\\.weight"),
            2,
        ),
    ];
    for (model, include, count) in cases {
        // One output per model: an existing output directory is not replaced without --force.
        let plain = dir.path().join(format!("plain-{count}.safetensors"));
        let cal = dir.path().join(format!("cal-{count}.safetensors"));
        for (out, calibrate) in [(&plain, false), (&cal, true)] {
            let mut args = vec!["compress", s(&model), "-o", s(out)];
            if let Some(re) = include {
                args.extend(["--include", re]);
            }
            if calibrate {
                args.extend(["--calibrate", s(&calib)]);
            }
            let o = run(&args);
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
        let shown = run(&["inspect", s(&cal)]);
        assert!(
            text(&shown.stdout).contains(&format!(
                "search activation-diagonal on calib.txt (sha256 {:x}): {count} tensors weighted",
                <sha2::Sha256 as sha2::Digest>::digest(words)
            )),
            "{}",
            text(&shown.stdout)
        );
        // The record names the compressed tensors the moments steered, and no other (the
        // encoder's moments reach every linear layer; two are compressed).
        let listed = run(&["inspect", s(&cal), "--json"]);
        let j: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let mut marked: Vec<&str> = j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["calibrated"] == true)
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        marked.sort();
        let moments = Evaluator::open_model(&model)
            .unwrap()
            .input_moments(&calib, words, Control::unwatched())
            .unwrap();
        let original = Model::open(&model).unwrap();
        let decoded = |path: &Path| match open(path).unwrap() {
            Opened::Packed(p) => {
                assert_eq!(p.calibration().is_some(), path == cal, "{}", path.display());
                p.tensors()
                    .iter()
                    .filter(|t| t.packed.is_some())
                    .map(|t| (t.name.clone(), p.to_f32(t).unwrap()))
                    .collect::<std::collections::BTreeMap<_, _>>()
            }
            Opened::Plain(_) => panic!("{} is not packed", path.display()),
        };
        let (a, b) = (decoded(&plain), decoded(&cal));
        assert_eq!(a.len(), count, "{}", model.display());
        assert_eq!(
            marked,
            a.keys().map(String::as_str).collect::<Vec<_>>(),
            "{}",
            model.display()
        );
        let Opened::Packed(p) = open(&cal).unwrap() else {
            unreachable!()
        };
        let mut record = p.calibration_record().unwrap().tensors;
        record.sort();
        assert_eq!(record, marked);
        let (mut sum_a, mut sum_b) = (0.0, 0.0);
        for (name, got_a) in &a {
            let d = &moments[name];
            let floor = d.iter().fold(0.0f64, |m, &x| m.max(x)) * MIN_RELATIVE_WEIGHT;
            let t = original.tensors().iter().find(|t| &t.name == name).unwrap();
            let w = original.to_f32(t).unwrap();
            let weighted = |r: &[f32]| -> f64 {
                w.iter()
                    .zip(r)
                    .enumerate()
                    .map(|(i, (x, y))| d[i % d.len()].max(floor) * f64::from(x - y).powi(2))
                    .sum()
            };
            let (ea, eb) = (weighted(got_a), weighted(&b[name]));
            assert!(
                eb <= ea * (1.0 + 1e-6),
                "{name}: calibrated {eb} > plain {ea}"
            );
            sum_a += ea;
            sum_b += eb;
        }
        assert!(
            sum_b < 0.97 * sum_a,
            "{}: {sum_b} vs {sum_a}",
            model.display()
        );
    }
}

/// `compare --calibrate` puts each paper preset's calibrated twin beside it, in weight and
/// function space, and refuses a calibrated method without a text or a text with nothing to
/// calibrate.
#[test]
fn compare_calibrate_adds_the_calibrated_twins() {
    let qwen = fixture("qwen2");
    let calib = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/eval/sentences.txt");
    let (_, totals) = compare_json(&[
        s(&qwen),
        "--methods",
        "seedlm-3bit",
        "--calibrate",
        s(&calib),
        "--eval",
    ]);
    let names: Vec<&str> = totals
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["seedlm-3bit", "seedlm-3bit-cal"]);
    assert_eq!(totals[0]["bits_per_weight"], totals[1]["bits_per_weight"]);
    // The calibrated search spends weight error where the inputs are small.
    assert!(
        num(&totals[1], "relmse") > num(&totals[0], "relmse"),
        "{totals:?}"
    );
    for t in &totals {
        assert!(num(&t["eval"], "kl") > 0.0, "{t}");
    }
    let err = fails(&["compare", s(&qwen), "--methods", "seedlm-4bit-cal"]);
    assert!(err.contains("needs a calibration text"), "{err}");
    let err = fails(&[
        "compare",
        s(&qwen),
        "--methods",
        "nf4-g64",
        "--calibrate",
        s(&calib),
    ]);
    assert!(
        err.contains("--calibrate needs seedlm-4bit or seedlm-3bit"),
        "{err}"
    );
}

/// A BERT config.json no model can have is refused naming the key, not divided by (0 heads)
/// or evaluated into confident numbers (no layers, a negative epsilon): issue 23, items 9, 10.
#[cfg(unix)]
#[test]
fn impossible_bert_configs_are_refused() {
    let original: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(minilm().join("config.json")).unwrap())
            .unwrap();
    for (key, value, says) in [
        (
            "num_attention_heads",
            serde_json::json!(0),
            "num_attention_heads",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(0),
            "num_hidden_layers",
        ),
        ("layer_norm_eps", serde_json::json!(-1.0), "layer_norm_eps"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(minilm()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "config.json" {
                std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name()))
                    .unwrap();
            }
        }
        let mut config = original.clone();
        config.insert(key.into(), value);
        std::fs::write(
            dir.path().join("config.json"),
            Value::Object(config).to_string(),
        )
        .unwrap();
        let err = Evaluator::open(dir.path()).err().expect(key).to_string();
        assert!(
            err.contains("config.json") && err.contains(says),
            "{key}: {err}"
        );
    }
}

/// The llama fixture with `config.json` edited by `edit`, its other files linked, in `dir`.
#[cfg(unix)]
fn llama_with_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let llama = fixture("llama");
    for entry in std::fs::read_dir(&llama).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "config.json" {
            std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let mut config: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(llama.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), Value::Object(config).to_string()).unwrap();
}

/// A decoder is scored only within the positions it was trained for: a longer --ctx is
/// refused naming config.json, the default window stops there, and a negative epsilon is
/// refused (issue 23, item 10).
#[cfg(unix)]
#[test]
fn decoder_windows_stay_within_the_model_s_positions() {
    let llama = fixture("llama");
    let err = fails(&["eval", s(&llama), s(&llama), "--ctx", "129"]);
    assert!(
        err.contains("config.json")
            && err.contains("a window of 129 tokens is longer than the 128 positions"),
        "{err}"
    );
    let j = eval_json(&llama, &llama, &["--max-tokens", "300"]);
    assert_eq!(
        j["ctx"], 128,
        "the default window is the model's 128 positions"
    );
    let j = eval_json(&llama, &llama, &["--max-tokens", "300", "--ctx", "128"]);
    assert_eq!(j["ctx"], 128);

    let dir = tempfile::tempdir().unwrap();
    llama_with_config(dir.path(), |c| {
        c.insert("rms_norm_eps".into(), serde_json::json!(-1.0));
    });
    let err = Evaluator::open(dir.path()).err().expect("eps").to_string();
    assert!(
        err.contains("config.json")
            && err.contains("'rms_norm_eps' -1.0 must be a positive number"),
        "{err}"
    );
}

/// A text the model does not fit (the fixture's random weights score Pride and Prejudice near
/// a uniform guess over its 300 tokens) gets a warning, since a compressed copy can then score
/// "better"; a fitting perplexity gets none (issue 23, item 14).
#[test]
fn perplexity_near_uniform_is_warned_about() {
    let llama = fixture("llama");
    let out = run(&[
        "eval",
        s(&llama),
        s(&llama),
        "--json",
        "--max-tokens",
        "300",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["vocab"], 300);
    assert!(num(&j, "ppl_original") >= 150.0, "{j}");
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: the original's perplexity")
            && err.contains("near or above a uniform guess over its 300 tokens"),
        "{err}"
    );
    let fits = seedlm::eval::decoder::DecoderFigures {
        ppl_original: 149.0,
        ppl_candidate: 150.0,
        kl: 0.01,
        top1: 0.9,
        tokens: 300,
        scored: 297,
        ctx: 128,
        vocab: 300,
    };
    assert_eq!(fits.misfit(), None);
}

/// `compare --eval` scores the text and window the user gives, within the model's positions
/// (issue 23, item 14).
#[test]
fn compare_eval_takes_the_text_and_window_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let r = reference("llama");
    let text_file = dir.path().join("text.txt");
    std::fs::write(&text_file, r["text"].as_str().unwrap()).unwrap();
    let llama = fixture("llama");
    let args = ["--methods", "rtn4-row", "--eval", "--text", s(&text_file)];
    let (_, totals) = compare_json(&[&[s(&llama)], &args[..], &["--ctx", "16"]].concat());
    assert_eq!(totals[0]["eval"]["ctx"], 16);
    assert_eq!(
        totals[0]["eval"]["tokens"],
        r["ids"].as_array().unwrap().len()
    );
    let err = fails(&[&["compare", s(&llama)], &args[..], &["--ctx", "129"]].concat());
    assert!(err.contains("longer than the 128 positions"), "{err}");
}

/// A damaged tokenizer.json is refused in one line naming it where the tokenizers crate panics
/// on its own: a control character inside the decoder's type (found by
/// scripts/fuzz_readers.py), and a Precompiled normalizer whose charsmap is not base64 (well-
/// formed JSON the crate `expect`s to parse).
#[cfg(unix)]
#[test]
fn damaged_tokenizers_are_refused_not_panicked_on() {
    let llama = fixture("llama");
    let tok = std::fs::read_to_string(llama.join("tokenizer.json")).unwrap();
    let (head, decoder) = tok.split_once("\"decoder\"").unwrap();
    let control = format!(
        "{head}\"decoder\"{}",
        decoder.replacen("\"ByteLevel\"", "\"ByteLev\u{5}l\"", 1)
    );
    let precompiled = tok.replacen(
        "\"normalizer\": null",
        "\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"!!\"}",
        1,
    );
    assert_ne!(precompiled, tok);
    for (what, text, says) in [
        ("control character", control, "not valid JSON"),
        ("precompiled", precompiled, "not a usable tokenizer"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&llama).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "tokenizer.json" {
                std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name()))
                    .unwrap();
            }
        }
        std::fs::write(dir.path().join("tokenizer.json"), text).unwrap();
        let model = dir.path().join("model.safetensors");
        let err = fails(&["eval", s(dir.path()), s(&model)]);
        assert!(
            err.contains("tokenizer.json") && err.contains(says),
            "{what}: {err}"
        );
    }
}

/// A decoder's config.json counting more layers than its weights hold is refused naming it,
/// before the network reserves room for every layer: num_hidden_layers 2^64 − 1 panicked on a
/// capacity overflow (found by scripts/fuzz_readers.py); 3 for a 2-layer model is refused
/// the same way.
#[cfg(unix)]
#[test]
fn decoder_layer_counts_beyond_the_weights_are_refused() {
    for layers in [serde_json::json!(u64::MAX), serde_json::json!(3)] {
        let dir = tempfile::tempdir().unwrap();
        llama_with_config(dir.path(), |c| {
            c.insert("num_hidden_layers".into(), layers.clone());
        });
        let model = dir.path().join("model.safetensors");
        let err = fails(&["eval", s(dir.path()), s(&model)]);
        assert!(
            err.contains("config.json")
                && err.contains(&format!("num_hidden_layers is {layers}"))
                && err.contains("no layer"),
            "{layers}: {err}"
        );
    }
}

/// The demo encoder, linked into a temporary folder, with `max_seq_length` set to `len`.
#[cfg(unix)]
fn demo_with_max_seq_length(len: usize) -> tempfile::TempDir {
    let config = format!("{{\"max_seq_length\": {len}, \"do_lower_case\": false}}");
    model_with(
        &crate::helpers::demo_dir(),
        "sentence_bert_config.json",
        &config,
    )
}

/// The model directory `src` with its file `name` holding `contents` (the others linked).
#[cfg(unix)]
fn model_with(src: &Path, name: &str, contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != name {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(dir.path().join(name), contents).unwrap();
    dir
}

/// A config whose layer count runs far past the weights is refused naming what is missing,
/// before anything is sized by it (the encoder reserved room for 2^31 layers and aborted on a
/// 2.6 TB allocation; found by scripts/fuzz_readers.py on a debug build).
#[cfg(unix)]
#[test]
fn a_layer_count_past_the_weights_is_refused_not_allocated_for() {
    for (src, missing) in [
        (crate::helpers::demo_dir(), "encoder.layer.6."),
        (fixture("llama"), "no layer 2147483647"),
    ] {
        let config = std::fs::read_to_string(src.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&config).unwrap();
        config["num_hidden_layers"] = (1u64 << 31).into();
        let dir = model_with(&src, "config.json", &config.to_string());
        let model = dir.path().join("model.safetensors");
        let err = fails(&["eval", s(dir.path()), s(&model)]);
        assert!(err.contains(missing), "{}: {err}", src.display());
    }
}

/// A sentence-transformers `max_seq_length` that leaves no room beside the special tokens
/// ([CLS] and [SEP]) is refused naming its file: the tokenizers crate subtracted them
/// unchecked (a panic in debug builds, a wrapped length in release; found by
/// scripts/fuzz_readers.py).
#[cfg(unix)]
#[test]
fn a_max_seq_length_without_room_for_a_token_is_refused() {
    for len in [0, 2] {
        let dir = demo_with_max_seq_length(len);
        let model = dir.path().join("model.safetensors");
        let err = fails(&["eval", s(dir.path()), s(&model)]);
        assert!(
            err.contains("sentence_bert_config.json")
                && err.contains(&format!("max_seq_length {len} leaves no room")),
            "{len}: {err}"
        );
    }
    // Three is room for one token: the demo evaluates.
    let dir = demo_with_max_seq_length(3);
    let model = dir.path().join("model.safetensors");
    let o = run(&["eval", s(dir.path()), s(&model)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
