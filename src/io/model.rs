//! Models in: a single `.safetensors` file or a Hugging Face model directory (`model.safetensors`,
//! or shards listed in `model.safetensors.index.json`), memory-mapped and read tensor by tensor.

use crate::io::container::{MappedSafetensors, RawTensor};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File name of a single-file model inside a model directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the shard index inside a model directory.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One tensor of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
    /// Bytes of data.
    pub byte_size: usize,
    file: usize,
    index: usize,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened model: one or more memory-mapped safetensors files.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    is_dir: bool,
    files: Vec<MappedSafetensors>,
    tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl Model {
    /// Opens a `.safetensors` file or a model directory.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let is_dir = path.is_dir();
        let files = if is_dir {
            open_dir(path)?
        } else {
            vec![MappedSafetensors::open(path)?]
        };
        let mut tensors = Vec::new();
        let mut by_name = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (ti, t) in f.tensors().iter().enumerate() {
                if by_name.insert(t.name.clone(), tensors.len()).is_some() {
                    return Err(ModelError::tensor(
                        f.path(),
                        &t.name,
                        "appears in more than one shard",
                    ));
                }
                tensors.push(TensorEntry {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                    byte_size: t.byte_size(),
                    file: fi,
                    index: ti,
                });
            }
        }
        Ok(Model {
            path: path.to_path_buf(),
            is_dir,
            files,
            tensors,
            by_name,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it was opened from a directory.
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// Every tensor, shard by shard in file order.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The safetensors files, in shard order.
    pub fn files(&self) -> &[MappedSafetensors] {
        &self.files
    }

    /// `__metadata__` of every file merged (first shard wins on a clash).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for f in self.files.iter().rev() {
            out.extend(f.metadata().clone());
        }
        out
    }

    /// The file holding `t`.
    pub fn file_of(&self, t: &TensorEntry) -> &Path {
        self.files[t.file].path()
    }

    /// The raw little-endian bytes of `t` (zero-copy from the memory map).
    pub fn bytes(&self, t: &TensorEntry) -> &[u8] {
        let f = &self.files[t.file];
        f.bytes(&f.tensors()[t.index])
    }

    /// `t` converted to f32, or an error naming file and tensor for a non-float dtype.
    pub fn to_f32(&self, t: &TensorEntry) -> Result<Vec<f32>, ModelError> {
        self.range_to_f32(t, 0..t.numel())
    }

    /// Elements `elems` of `t` (row-major) converted to f32. The pages read are released
    /// afterwards, so only the f32 copy the caller keeps stays resident.
    pub fn range_to_f32(
        &self,
        t: &TensorEntry,
        elems: std::ops::Range<usize>,
    ) -> Result<Vec<f32>, ModelError> {
        let fail = |reason: String| ModelError::tensor(self.file_of(t), &t.name, reason);
        if !dtype::is_float(t.dtype) {
            return Err(fail(format!(
                "dtype {} is not supported for compression (only F32, F16 and BF16)",
                t.dtype
            )));
        }
        if elems.start > elems.end || elems.end > t.numel() {
            return Err(fail(format!(
                "elements {}..{} asked of a tensor of {}",
                elems.start,
                elems.end,
                t.numel()
            )));
        }
        let width = t.dtype.bitsize() / 8;
        let rel = elems.start * width..elems.end * width;
        // A tensor far larger than memory (a sparse file can claim 2^40 weights) is an error,
        // not an abort.
        let mut out = Vec::new();
        out.try_reserve_exact(elems.len()).map_err(|_| {
            fail(format!(
                "its f32 copy of {:.1} GB cannot be allocated: not enough memory",
                elems.len() as f64 * 4.0 / 1e9
            ))
        })?;
        assert!(
            dtype::extend_f32(t.dtype, &self.bytes(t)[rel.clone()], &mut out),
            "a float dtype converts"
        );
        let f = &self.files[t.file];
        let at = f.tensors()[t.index].range.start;
        f.release(at + rel.start..at + rel.end);
        Ok(out)
    }
}

/// Compares strings so that embedded numbers sort by value ("layers.2" before "layers.10").
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord.is_ne() {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}

fn open_dir(dir: &Path) -> Result<Vec<MappedSafetensors>, ModelError> {
    let index_path = dir.join(INDEX_FILE);
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path)
            .map_err(|e| ModelError::io(&index_path, "cannot read", e))?;
        let index: ShardIndex = serde_json::from_str(&text)
            .map_err(|e| ModelError::file(&index_path, format!("not a valid shard index ({e})")))?;
        if index.weight_map.is_empty() {
            return Err(ModelError::file(
                &index_path,
                "weight_map lists no tensor (an empty model)",
            ));
        }
        let mut shard_names: Vec<&String> = index.weight_map.values().collect();
        shard_names.sort();
        shard_names.dedup();
        let mut files = Vec::with_capacity(shard_names.len());
        for name in shard_names {
            if Path::new(name).components().count() != 1 || name == ".." {
                return Err(ModelError::file(
                    &index_path,
                    format!("shard '{name}' is not a plain file name"),
                ));
            }
            files.push(MappedSafetensors::open(&dir.join(name))?);
        }
        for (tensor, shard) in &index.weight_map {
            let f = files
                .iter()
                .find(|f| f.path().file_name() == Some(shard.as_ref()))
                .expect("every shard of the map was opened");
            if !f.tensors().iter().any(|t: &RawTensor| &t.name == tensor) {
                return Err(ModelError::tensor(
                    &index_path,
                    tensor,
                    format!("listed in shard '{shard}', which does not contain it"),
                ));
            }
        }
        return Ok(files);
    }
    let single = dir.join(MODEL_FILE);
    if single.is_file() {
        return Ok(vec![MappedSafetensors::open(&single)?]);
    }
    Err(ModelError::file(
        dir,
        format!("no {MODEL_FILE} or {INDEX_FILE} in this directory"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::container::{OutTensor, Payload, write_atomic};

    fn write(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let out = tensors
            .iter()
            .map(|(n, d, s, b)| OutTensor {
                name: n.to_string(),
                dtype: *d,
                shape: s.clone(),
                data: Payload::Bytes(b),
            })
            .collect();
        write_atomic(path, out, &BTreeMap::new()).unwrap();
    }

    #[test]
    fn single_file_converts_float_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let vals = [1.0f32, -2.5, 0.125, 3.0];
        write(
            &p,
            &[
                (
                    "h",
                    Dtype::F16,
                    vec![2, 2],
                    dtype::from_f32(Dtype::F16, &vals).unwrap(),
                ),
                (
                    "b",
                    Dtype::BF16,
                    vec![4],
                    dtype::from_f32(Dtype::BF16, &vals).unwrap(),
                ),
                ("i", Dtype::I64, vec![1], vec![5, 0, 0, 0, 0, 0, 0, 0]),
            ],
        );
        let m = Model::open(&p).unwrap();
        assert_eq!(m.tensors().len(), 3);
        assert_eq!(m.to_f32(m.get("h").unwrap()).unwrap(), vals);
        assert_eq!(m.to_f32(m.get("b").unwrap()).unwrap(), vals);
        let err = m.to_f32(m.get("i").unwrap()).unwrap_err().to_string();
        assert!(err.contains("'i'") && err.contains("I64"), "{err}");
        assert_eq!(m.bytes(m.get("i").unwrap())[0], 5);
    }

    #[test]
    fn sharded_directory_lists_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let a = vec![0u8; 8];
        write(
            &dir.path().join("model-00001-of-00002.safetensors"),
            &[("x.weight", Dtype::F32, vec![2], a.clone())],
        );
        write(
            &dir.path().join("model-00002-of-00002.safetensors"),
            &[("y.weight", Dtype::F32, vec![1, 2], a.clone())],
        );
        let index = r#"{"metadata":{"total_size":16},"weight_map":{
            "x.weight":"model-00001-of-00002.safetensors",
            "y.weight":"model-00002-of-00002.safetensors"}}"#;
        std::fs::write(dir.path().join(INDEX_FILE), index).unwrap();
        let m = Model::open(dir.path()).unwrap();
        assert!(m.is_dir());
        let names: Vec<&str> = m.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x.weight", "y.weight"]);
        assert_eq!(m.get("y.weight").unwrap().shape, vec![1, 2]);

        let bad = index.replace("\"y.weight\":\"model-00002", "\"z.weight\":\"model-00002");
        std::fs::write(dir.path().join(INDEX_FILE), bad).unwrap();
        let err = Model::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("z.weight"), "{err}");

        // An index that maps nothing is no model, not one of 0 tensors (issue 23, item 10).
        std::fs::write(dir.path().join(INDEX_FILE), r#"{"weight_map":{}}"#).unwrap();
        let err = Model::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(INDEX_FILE) && err.contains("weight_map lists no tensor"),
            "{err}"
        );
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Model::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(MODEL_FILE), "{err}");
    }
}
