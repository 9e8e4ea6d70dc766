//! The documentation against the real command line: every `seedlm …` command shown in a shell
//! block of README.md or docs/*.md parses, and docs/cli.md is the binary's current `--help`.

use crate::helpers::{run, text};
use clap::{CommandFactory, Parser};
use seedlm::cli::Cli;
use std::path::{Path, PathBuf};

/// README.md and every Markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files.insert(0, root.join("README.md"));
    files
}

/// The lines of the ```sh (or ```bash) blocks of a Markdown text, continuation lines joined.
fn shell_lines(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let fence = line.trim_start();
        if fence.starts_with("```") {
            inside = !inside && matches!(fence.trim_start_matches('`'), "sh" | "bash");
            continue;
        }
        if !inside {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

/// Splits a shell line into words (quotes honoured), stopping at a comment; operators such as
/// `|`, `&&`, `;` and redirections come out as words of their own.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for ch in line.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                started = true;
            }
            (None, '#') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The `seedlm` invocations of one shell line: the arguments after the program, for every
/// command of the line run as `seedlm`, `…/seedlm` or `cargo run [--release] --`.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let words = words(line);
    let commands =
        words.split(|w| matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&") || w.starts_with('>'));
    let mut out = Vec::new();
    for cmd in commands {
        // Leading `NAME=value` words set the environment; the program follows them.
        let skip = cmd.iter().take_while(|w| is_assignment(w)).count();
        let cmd = &cmd[skip..];
        let start = if cmd
            .first()
            .is_some_and(|w| w == "seedlm" || w.ends_with("/seedlm"))
        {
            Some(1)
        } else if cmd.starts_with(&["cargo".into(), "run".into()]) {
            cmd.iter().position(|w| w == "--").map(|i| i + 1)
        } else {
            None
        };
        if let Some(start) = start {
            // Redirections of the whole line end a command's arguments too.
            let args = cmd[start..]
                .iter()
                .take_while(|w| !w.starts_with('<') && !w.starts_with("2>"))
                .cloned()
                .collect();
            out.push(args);
        }
    }
    out
}

/// Whether a shell word is a variable assignment (`NAME=value`).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[test]
fn every_documented_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let markdown = std::fs::read_to_string(&file).unwrap();
        let mut in_file = 0;
        for line in shell_lines(&markdown) {
            for args in invocations(&line) {
                in_file += 1;
                let argv = std::iter::once("seedlm".to_string()).chain(args);
                if let Err(e) = Cli::try_parse_from(argv) {
                    failures.push(format!("{}: `{line}`: {}", file.display(), e.kind()));
                }
            }
        }
        if file.ends_with("README.md") {
            assert!(
                in_file >= 5,
                "the README shows its CLI example ({in_file} commands)"
            );
        }
        checked += in_file;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} commands found");
}

#[test]
fn a_command_the_parser_refuses_is_caught() {
    let lines = shell_lines("```sh\nseedlm compress in -o out --bits 5  # no such preset\n```\n");
    let args = invocations(&lines[0]);
    assert_eq!(args, [["compress", "in", "-o", "out", "--bits", "5"]]);
    let argv = std::iter::once("seedlm".to_string()).chain(args[0].iter().cloned());
    assert!(Cli::try_parse_from(argv).is_err());
    let piped = invocations("cargo run --release -- inspect 'a b' | head && echo done");
    assert_eq!(piped, [["inspect", "a b"]]);
    let env = invocations("SEEDLM_KERNEL=avx2 target/release/seedlm bench --json");
    assert_eq!(env, [["bench", "--json"]]);
}

#[test]
fn cli_reference_is_the_current_help() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = std::fs::read_to_string(root.join("docs/cli.md")).unwrap();
    let mut sections: Vec<(String, String)> = Vec::new();
    for part in reference.split("\n## ").skip(1) {
        let (title, body) = part.split_once('\n').unwrap();
        let start = body.find("```text\n").expect("a text block") + "```text\n".len();
        let end = start + body[start..].find("```").unwrap();
        sections.push((title.to_string(), body[start..end].to_string()));
    }
    let mut expected: Vec<String> = vec!["seedlm".into()];
    expected.extend(
        Cli::command()
            .get_subcommands()
            .map(|c| format!("seedlm {}", c.get_name())),
    );
    let titles: Vec<String> = sections.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(
        titles, expected,
        "docs/cli.md: run scripts/cli_reference.sh"
    );
    for (title, body) in &sections {
        let mut args: Vec<&str> = title.split(' ').skip(1).collect();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success());
        assert_eq!(
            body,
            &text(&out.stdout),
            "docs/cli.md, {title}: run scripts/cli_reference.sh"
        );
    }
}
