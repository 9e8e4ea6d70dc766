//! The Generate tab driven through egui_kittest: on the llama fixture compressed at 3 bits, a
//! run is a background job whose two continuations, divergences and top lists are the eval
//! engine's, drawn side by side token by token; an encoder says in one line why it cannot run.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness, type_into, wait_idle};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use seedlm::app::command::{Command, TabId};
use seedlm::app::panels::generate::shown;
use seedlm::app::work::{JobKind, Work};
use seedlm::app::{Studio, loader};
use seedlm::core::config::Config;
use seedlm::core::control::Control;
use seedlm::eval::Evaluator;
use seedlm::eval::divergence::Lm;
use seedlm::infer::generate::Sampling;
use std::path::{Path, PathBuf};

const PROMPT: &str = "She walked to the window and";

fn llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/llama")
}

/// The labels drawn below the header that starts with `head`, between its left edge and
/// `right`, in reading order, with where they are.
fn tokens_under(h: &Harness<'_, Studio>, head: &str, right: f32) -> Vec<(egui::Rect, String)> {
    let top = h.get_by_label_contains(head).rect();
    let mut found: Vec<(egui::Rect, String)> = h
        .query_all_by_role(egui::accesskit::Role::Label)
        .filter_map(|n| {
            let r = n.rect();
            let inside = r.top() >= top.bottom() && r.left() >= top.left() && r.right() <= right;
            Some((r, n.accesskit_node().value()?)).filter(|_| inside)
        })
        .collect();
    // Rows by their middle (labels of one row differ in height by a pixel), then left to right.
    found.sort_by(|a, b| a.0.center().y.total_cmp(&b.0.center().y));
    let mut rows: Vec<Vec<(egui::Rect, String)>> = Vec::new();
    for f in found {
        match rows.last_mut() {
            Some(row) if (f.0.center().y - row[0].0.center().y).abs() < 4.0 => row.push(f),
            _ => rows.push(vec![f]),
        }
    }
    rows.iter_mut()
        .for_each(|r| r.sort_by(|a, b| a.0.left().total_cmp(&b.0.left())));
    rows.into_iter().flatten().collect()
}

/// Opens the llama fixture in `h` and compresses every linear layer at 3 bits; returns their
/// indices.
fn compress_llama(h: &mut Harness<'_, Studio>) -> Vec<usize> {
    h.state_mut().state.apply(Command::Open(llama()));
    wait_idle(h, ui::MODEL_RUN);
    let doc = &h.state().state.doc;
    let linear: Vec<usize> = (0..doc.tensors.len())
        .filter(|&i| doc.tensors[i].name.contains("_proj."))
        .collect();
    assert_eq!(linear.len(), 14);
    for c in [
        Command::SetConfig(Config::THREE_BIT),
        Command::Compress(linear.clone()),
    ] {
        h.state_mut().state.apply(c);
    }
    wait_idle(h, ui::MODEL_RUN);
    linear
}

#[test]
fn generate_shows_both_continuations_as_the_engine_computes_them() {
    // The demo model is an encoder: one line says why there is nothing to run.
    let mut h = harness(Studio::with_document(loader::demo()));
    h.state_mut().state.apply(Command::ShowTab(TabId::Generate));
    h.run_steps(2);
    let why = h.get_by_label_contains("Generate is unavailable:");
    let why = why.accesskit_node().value().unwrap();
    assert!(why.contains("is an encoder"), "{why}");
    assert!(h.query_by_label("Prompt").is_none(), "no prompt to type");

    let linear = compress_llama(&mut h);
    h.state_mut().state.apply(Command::ShowTab(TabId::Generate));
    h.run_steps(2);
    type_into(&mut h, "Prompt", PROMPT);
    click(&mut h, "Generate continuations");
    assert!(
        h.state().state.running(JobKind::Generate).is_some(),
        "the run is a background job"
    );
    wait_idle(&mut h, ui::MODEL_RUN);
    let msg = h.state().state.messages.last().unwrap().clone();
    assert!(
        !msg.error && msg.text.starts_with("Generate: done in"),
        "{msg:?}"
    );
    let run = h
        .state()
        .state
        .results
        .generate
        .as_ref()
        .unwrap()
        .value
        .clone();
    assert_eq!(run.prompt, PROMPT);

    // The engine on the same reconstructions.
    let ev = Evaluator::open(&llama()).unwrap();
    let doc = &h.state().state.doc;
    let recon = linear.iter().map(|&i| {
        let t = &doc.tensors[i];
        Ok((t.name.clone(), t.result.as_ref().unwrap().reconstruction()?))
    });
    let cand = ev.weights().overlay(Path::new("app"), recon).unwrap();
    let lm = Lm::open(&llama()).unwrap();
    let want = lm
        .diverge(
            ev.weights(),
            &cand,
            &lm.prompt_ids(PROMPT).unwrap(),
            48,
            &Sampling::default(),
            Control::unwatched(),
        )
        .unwrap();
    let d = &run.divergence;
    assert_eq!(d.prompt, want.prompt);
    for (got, want) in [
        (&d.original, &want.original),
        (&d.compressed, &want.compressed),
    ] {
        assert_eq!((&got.tokens, &got.pieces), (&want.tokens, &want.pieces));
        assert!(!got.tokens.is_empty());
    }
    assert_eq!(d.positions, want.positions);
    assert!(d.positions.iter().any(|p| p.kl > 0.0));

    // On screen: each side's tokens in order under its header, and its speed.
    let right = h.get_by_label_contains("Compressed: ").rect().left();
    let drawn = |c: &seedlm::eval::divergence::Continuation| -> Vec<String> {
        c.pieces.iter().map(|p| shown(&h.ctx, p)).collect()
    };
    let texts =
        |t: Vec<(egui::Rect, String)>| -> Vec<String> { t.into_iter().map(|t| t.1).collect() };
    assert_eq!(
        texts(tokens_under(&h, "Original: ", right)),
        drawn(&d.original)
    );
    let compressed = tokens_under(&h, "Compressed: ", f32::INFINITY);
    assert_eq!(texts(compressed.clone()), drawn(&d.compressed));
    let rate = format!("{:.1} tokens/s", d.compressed.stats.generate_rate());
    let head = h.get_by_label_contains("Compressed: ");
    assert!(head.accesskit_node().value().unwrap().contains(&rate));

    // Pointing at the most divergent compressed token shows its KL and both top-5 lists.
    let (i, p) = d
        .positions
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.kl.total_cmp(&b.1.kl))
        .unwrap();
    let at = compressed[i].0.center();
    h.input_mut().events.push(egui::Event::PointerMoved(at));
    // The tooltip waits for the pointer to rest (egui's tooltip delay).
    h.run_steps(6);
    h.get_by_label(&format!(
        "KL(p_original || p_compressed) = {:.4} nats",
        p.kl
    ));
    h.get_by_label(&format!(
        "The compressed model chose \"{}\" (underlined below)",
        shown(&h.ctx, &d.compressed.pieces[i])
    ));
    for l in p.original.iter().chain(&p.compressed) {
        let text = format!("\"{}\"", shown(&h.ctx, &l.text));
        assert!(h.query_all_by_label(&text).count() >= 1, "{text}");
        assert!(h.query_all_by_label(&format!("{:.3}", l.prob)).count() >= 1);
    }
}

#[test]
fn cancel_stops_a_run_and_keeps_no_result() {
    let mut h = harness(Studio::with_document(loader::synthetic()));
    compress_llama(&mut h);
    h.state_mut().state.apply(Command::Run(Work::Generate {
        prompt: PROMPT.into(),
        max_tokens: 64,
        sampling: Sampling::default(),
    }));
    // Raised before the job's first forward: it stops there.
    h.state_mut().state.apply(Command::Stop(JobKind::Generate));
    wait_idle(&mut h, ui::MODEL_RUN);
    let s = &h.state().state;
    assert!(s.results.generate.is_none());
    let msg = s.messages.last().unwrap();
    assert_eq!(
        (msg.error, msg.text.as_str()),
        (false, "Generate cancelled")
    );
}
