//! Which tensors get compressed: a default rule, overridable by `--include` / `--exclude`.

use crate::io::dtype::{self, Dtype};
use regex::Regex;

/// The default rule: a tensor is compressed when it is a 2-D F32/F16/BF16 tensor whose name ends
/// in `.weight` and none of whose dot-separated name parts marks an embedding, the LM head or a
/// norm — that is, no part contains `embed` or `norm` (any case) and no part is `lm_head`,
/// `wte`, `wpe` or starts with `ln_`. These are the linear layers (attention and MLP
/// projections) that hold nearly all of an LLM's weights.
pub fn default_rule(name: &str, shape: &[usize], dtype: Dtype) -> bool {
    dtype::is_float(dtype)
        && shape.len() == 2
        && name.ends_with(".weight")
        && !name.split('.').any(|part| {
            let p = part.to_ascii_lowercase();
            p.contains("embed")
                || p.contains("norm")
                || p.starts_with("ln_")
                || matches!(p.as_str(), "lm_head" | "wte" | "wpe")
        })
}

/// The selection: `--include` replaces the default rule, `--exclude` then removes tensors.
/// Patterns are regular expressions searched anywhere in the tensor name (anchor with `^…$`).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Selection {
    /// A selection from optional `--include` and `--exclude` patterns.
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Self, PatternError> {
        Ok(Selection {
            include: include.map(|p| compile("--include", p)).transpose()?,
            exclude: exclude.map(|p| compile("--exclude", p)).transpose()?,
        })
    }

    /// Whether the tensor is to be compressed. A tensor picked by `--include` is selected
    /// whatever its dtype; the caller reports a non-float one as an error.
    pub fn selects(&self, name: &str, shape: &[usize], dtype: Dtype) -> bool {
        let wanted = match &self.include {
            Some(re) => re.is_match(name),
            None => default_rule(name, shape, dtype),
        };
        wanted && !self.exclude.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// A pattern that is not a valid regular expression.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {option} pattern '{pattern}': {reason}")]
pub struct PatternError {
    /// `--include` or `--exclude`.
    pub option: &'static str,
    /// The pattern.
    pub pattern: String,
    /// The regex parser's complaint, on one line.
    pub reason: String,
}

fn compile(option: &'static str, pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(pattern).map_err(|e| {
        // The parser's message spans lines (pattern, caret, reason); keep the reason.
        let msg = e.to_string();
        PatternError {
            option,
            pattern: pattern.to_string(),
            reason: msg
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_picks_linear_layers_only() {
        let yes = [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.3.mlp.down_proj.weight",
            "encoder.layer.0.attention.self.query.weight",
            "transformer.h.0.attn.c_attn.weight",
        ];
        let no = [
            "model.embed_tokens.weight",
            "embeddings.word_embeddings.weight",
            "lm_head.weight",
            "transformer.wte.weight",
            "model.layers.0.input_layernorm.weight",
            "encoder.layer.0.output.LayerNorm.weight",
            "model.norm.weight",
            "transformer.ln_f.weight",
            "model.layers.0.self_attn.q_proj.bias",
        ];
        for n in yes {
            assert!(default_rule(n, &[4, 4], Dtype::F16), "{n}");
        }
        for n in no {
            assert!(!default_rule(n, &[4, 4], Dtype::F16), "{n}");
        }
        let w = yes[0];
        assert!(!default_rule(w, &[16], Dtype::F16), "1-D");
        assert!(!default_rule(w, &[2, 2, 4], Dtype::F32), "3-D");
        assert!(!default_rule(w, &[4, 4], Dtype::I8), "integer");
        assert!(default_rule(w, &[4, 4], Dtype::BF16));
    }

    #[test]
    fn include_replaces_and_exclude_removes() {
        let s = Selection::new(Some(r"embed"), None).unwrap();
        assert!(s.selects("model.embed_tokens.weight", &[4, 4], Dtype::F16));
        assert!(!s.selects("model.layers.0.q_proj.weight", &[4, 4], Dtype::F16));
        assert!(
            s.selects("pos_embed_ids", &[4], Dtype::I64),
            "dtype checked later"
        );
        let s = Selection::new(None, Some(r"layers\.0\.")).unwrap();
        assert!(!s.selects("model.layers.0.q_proj.weight", &[4, 4], Dtype::F16));
        assert!(s.selects("model.layers.1.q_proj.weight", &[4, 4], Dtype::F16));
        let err = Selection::new(None, Some("(")).unwrap_err();
        assert_eq!(err.option, "--exclude");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
