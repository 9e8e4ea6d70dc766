//! The record of how a calibrated search was steered ([`super::KEY_CALIBRATION`]).

use crate::io::job_plan::TextId;

/// The [`KEY_CALIBRATION`](super::KEY_CALIBRATION) record: the text a calibrated search was
/// weighted by, and which tensors were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibrationRecord {
    /// How the search was steered (`activation-diagonal`).
    pub mode: String,
    /// The text's file name.
    pub text: String,
    /// SHA-256 of the text's bytes, lower-case hex.
    pub sha256: String,
    /// The compressed tensors whose search was weighted, in the order compressed (files written
    /// before this list existed hold a count here, read as an empty list).
    pub tensors: Vec<String>,
}

impl CalibrationRecord {
    /// The record of `tensors` searched weighted by the input moments measured on `text` (the
    /// diagonal of their second moments, mode `activation-diagonal`).
    pub fn weighted_by(text: &TextId, tensors: Vec<String>) -> CalibrationRecord {
        CalibrationRecord {
            mode: "activation-diagonal".into(),
            text: text.path.file_name().map_or_else(
                || text.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            sha256: text.sha256.clone(),
            tensors,
        }
    }

    /// The record as stored: a JSON object with the fields `mode`, `text`, `sha256` and
    /// `tensors` (an array of names).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "mode": self.mode,
            "text": self.text,
            "sha256": self.sha256,
            "tensors": self.tensors,
        })
        .to_string()
    }

    /// Reads a stored record; `None` when it is not an object with string `mode`, `text` and
    /// `sha256`. A `tensors` that is not an array of names (a count, in older files) reads as
    /// none named.
    pub fn parse(json: &str) -> Option<CalibrationRecord> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let text = |k: &str| v.get(k)?.as_str().map(str::to_string);
        let tensors = match v.get("tensors") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Some(CalibrationRecord {
            mode: text("mode")?,
            text: text("text")?,
            sha256: text("sha256")?,
            tensors,
        })
    }
}
