//! The safetensors container: a validating, memory-mapped reader and an atomic writer.
//!
//! The reader checks everything before trusting it (header length, UTF-8, JSON, dtypes, shapes,
//! offsets against the file size, overlaps and gaps), so malformed files give a clear error,
//! never a panic. The writer writes a temporary file beside the target and renames it into
//! place; the temporary file is named `.seedlm-partial-*.tmp` and locked while written, so a
//! leftover of a killed run is recognisable and removed by the next run into that directory.

use crate::io::dtype::{self, Dtype};
use crate::io::error::{ModelError, shape_text};
use memmap2::Mmap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Largest header accepted (the safetensors reference limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor as the header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTensor {
    /// Name in the file.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Byte range in the memory map.
    pub range: Range<usize>,
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of data.
    pub fn byte_size(&self) -> usize {
        self.range.len()
    }
}

/// A memory-mapped, validated safetensors file.
#[derive(Debug)]
pub struct MappedSafetensors {
    path: PathBuf,
    map: Mmap,
    metadata: BTreeMap<String, String>,
    tensors: Vec<RawTensor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

impl MappedSafetensors {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = File::open(path).map_err(|e| ModelError::io(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| ModelError::io(path, "cannot stat", e))?
            .len();
        if len < 8 {
            return Err(ModelError::file(
                path,
                format!("truncated: {len} bytes, too short for the 8-byte header length"),
            ));
        }
        // SAFETY: the map is read-only; like every mmap-based reader we rely on the file not
        // being truncated by another process while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, "cannot map", e))?;
        let (metadata, tensors) = parse(path, &map)?;
        Ok(MappedSafetensors {
            path: path.to_path_buf(),
            map,
            metadata,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` string map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[RawTensor] {
        &self.tensors
    }

    /// The bytes of `t` (a tensor of this file).
    pub fn bytes(&self, t: &RawTensor) -> &[u8] {
        &self.map[t.range.clone()]
    }

    /// Lets the OS drop the resident pages of `range` (bytes of the map) once they have been
    /// read, so reading a large tensor leaves no copy of it resident; the next read maps them
    /// in again from the file.
    pub fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        if range.end <= self.map.len() && !range.is_empty() {
            // SAFETY: the map is a read-only shared file mapping that is never written, so
            // dropped pages read back unchanged; an error only leaves the pages resident.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// The header's entries in file order, each tensor's JSON kept as text borrowed from the map
/// until it is checked: a `serde_json::Value` tree of the whole header took about 1.5 KB an
/// entry, 2.2 GB for a 90 MB header of 1.4 M empty tensors (issue 23, item 8).
struct Header<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> Deserialize<'de> for Header<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Header<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Header<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    v.push((name, map.next_value()?));
                }
                Ok(Header(v))
            }
        }
        d.deserialize_map(Entries)
    }
}

fn parse(
    path: &Path,
    map: &[u8],
) -> Result<(BTreeMap<String, String>, Vec<RawTensor>), ModelError> {
    let file_len = map.len() as u64;
    let n = u64::from_le_bytes(map[..8].try_into().expect("8 bytes checked by the caller"));
    if n > MAX_HEADER_LEN {
        return Err(ModelError::file(
            path,
            format!(
                "header length {n} exceeds the {MAX_HEADER_LEN}-byte limit (oversized or garbage header)"
            ),
        ));
    }
    if 8 + n > file_len {
        return Err(ModelError::file(
            path,
            format!(
                "header length {n} runs past the end of the {file_len}-byte file (truncated file or garbage header)"
            ),
        ));
    }
    let data_start = 8 + n as usize;
    let text = std::str::from_utf8(&map[8..data_start])
        .map_err(|_| ModelError::file(path, "header is not UTF-8 text (garbage header)"))?;
    let Header(entries) = serde_json::from_str(text)
        .map_err(|e| ModelError::file(path, format!("header is not a JSON object ({e})")))?;
    let data_len = file_len - data_start as u64;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    if let Some((name, _)) = entries.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(ModelError::tensor(path, name, "given twice in the header"));
    }
    drop(seen);
    for (name, value) in entries {
        if name == "__metadata__" {
            metadata = serde_json::from_str(value.get()).map_err(|_| {
                ModelError::file(path, "__metadata__ is not a map of strings to strings")
            })?;
            continue;
        }
        let bad = |reason: String| ModelError::tensor(path, &name, reason);
        // serde would also take an array of the three fields; the format says object.
        if !value.get().starts_with('{') {
            return Err(bad("header entry is not a JSON object".into()));
        }
        let entry: HeaderEntry = serde_json::from_str(value.get())
            .map_err(|e| bad(format!("malformed header entry ({e})")))?;
        let dtype = dtype::parse(&entry.dtype)
            .ok_or_else(|| bad(format!("unknown dtype '{}'", entry.dtype)))?;
        let shape: Vec<usize> = entry
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()
            .ok_or_else(|| bad("shape does not fit in memory".into()))?;
        let size = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|numel| dtype::byte_len(dtype, numel))
            .ok_or_else(|| {
                bad(format!(
                    "shape {} of {dtype} has no valid byte size",
                    shape_text(&shape)
                ))
            })?;
        let [s, e] = entry.data_offsets;
        if s > e || e > data_len {
            return Err(bad(format!(
                "data offsets [{s}, {e}) out of range: the data section has {data_len} bytes (truncated file or bad offsets)"
            )));
        }
        if e - s != size as u64 {
            return Err(bad(format!(
                "data offsets [{s}, {e}) hold {} bytes but shape {} of {dtype} needs {size}",
                e - s,
                shape_text(&shape)
            )));
        }
        tensors.push(RawTensor {
            name,
            dtype,
            shape,
            range: data_start + s as usize..data_start + e as usize,
        });
    }
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    for pair in tensors.windows(2) {
        if pair[1].range.start < pair[0].range.end {
            return Err(ModelError::tensor(
                path,
                &pair[1].name,
                format!("data overlaps tensor '{}'", pair[0].name),
            ));
        }
    }
    // Like the reference reader: the tensors cover the data section exactly.
    let mut end = data_start;
    for t in &tensors {
        if t.range.start != end {
            return Err(ModelError::tensor(
                path,
                &t.name,
                format!(
                    "{} unused bytes in the data section before this tensor (gap)",
                    t.range.start - end
                ),
            ));
        }
        end = t.range.end;
    }
    if end != map.len() {
        return Err(ModelError::file(
            path,
            format!(
                "{} trailing bytes after the last tensor in the data section",
                map.len() - end
            ),
        ));
    }
    Ok((metadata, tensors))
}

/// Where an output tensor's bytes come from.
pub enum Payload<'a> {
    /// Bytes already in memory (or in a memory map).
    Bytes(&'a [u8]),
    /// Owned bytes.
    Owned(Vec<u8>),
    /// Produced when written, so only one such tensor is in memory at a time.
    Lazy(Box<dyn Fn() -> Result<Vec<u8>, ModelError> + 'a>),
    /// Produced piece by piece while written, so not even one whole tensor is in memory; an
    /// `Err` piece stops the write (nothing is left on disk).
    Pieces(Box<dyn Iterator<Item = Result<Vec<u8>, ModelError>> + 'a>),
}

/// One tensor to write.
pub struct OutTensor<'a> {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Data (must be exactly the size shape and dtype imply).
    pub data: Payload<'a>,
}

/// A header's JSON: `__metadata__` (unless empty) and each tensor's entry, keys in byte order
/// (as a `serde_json::Map` orders them), written one entry at a time: a JSON tree of the whole
/// header took about 1.5 KB an entry (issue 23, item 8). Fails with a name given twice.
fn header_json<'t>(
    tensors: &'t [OutTensor<'_>],
    spans: &[[usize; 2]],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, &'t str> {
    // Fields in byte order too.
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        data_offsets: [usize; 2],
        dtype: String,
        shape: &'a [usize],
    }
    const META: &str = "__metadata__";
    // `None` stands for the metadata.
    let mut keys: Vec<(&str, Option<usize>)> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), Some(i)))
        .collect();
    if !metadata.is_empty() {
        keys.push((META, None));
    }
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(w[1].1.map_or(META, |i| tensors[i].name.as_str()));
    }
    let mut out = vec![b'{'];
    for (n, (key, item)) in keys.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let written = serde_json::to_writer(&mut out, key).and_then(|()| {
            out.push(b':');
            match item {
                None => serde_json::to_writer(&mut out, metadata),
                Some(i) => serde_json::to_writer(
                    &mut out,
                    &Entry {
                        data_offsets: spans[i],
                        dtype: tensors[i].dtype.to_string(),
                        shape: &tensors[i].shape,
                    },
                ),
            }
        });
        written.expect("strings and numbers always serialize");
    }
    out.push(b'}');
    Ok(out)
}

/// Writes a safetensors file atomically: a temporary file in the target directory, renamed
/// into place once complete. On any error no file is left at `path` (an existing file there
/// is untouched). Tensors are laid out widest dtype first so every tensor is naturally aligned.
pub fn write_atomic(
    path: &Path,
    mut tensors: Vec<OutTensor<'_>>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    tensors.sort_by_key(|t| std::cmp::Reverse(t.dtype.bitsize()));
    let mut offset = 0usize;
    let mut spans = Vec::with_capacity(tensors.len());
    for t in &tensors {
        let size = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| dtype::byte_len(t.dtype, n))
            .ok_or_else(|| ModelError::tensor(path, &t.name, "shape has no valid byte size"))?;
        spans.push([offset, offset + size]);
        offset += size;
    }
    let sizes: Vec<usize> = spans.iter().map(|[s, e]| e - s).collect();
    let mut header = header_json(&tensors, &spans, metadata)
        .map_err(|name| ModelError::tensor(path, name, "duplicate tensor name"))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    // A file no reader would open is not written (the input's header may have been just under).
    if header.len() as u64 > MAX_HEADER_LEN {
        return Err(ModelError::file(
            path,
            format!(
                "its header would be {} bytes, over the {MAX_HEADER_LEN}-byte limit of safetensors readers (this one included); nothing written",
                header.len()
            ),
        ));
    }

    let tmp = partial_file(parent_dir(path))
        .map_err(|e| ModelError::io(path, "cannot create a temporary file beside it", e))?;
    let write_err = |e| ModelError::io(path, "cannot write", e);
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(write_err)?;
        w.write_all(&header).map_err(write_err)?;
        for (t, size) in tensors.into_iter().zip(sizes) {
            let wrong = |n: usize| {
                ModelError::tensor(
                    path,
                    &t.name,
                    format!("has {n} bytes of data, shape needs {size}"),
                )
            };
            let written = match t.data {
                Payload::Bytes(b) => {
                    w.write_all(b).map_err(write_err)?;
                    b.len()
                }
                Payload::Owned(v) => {
                    w.write_all(&v).map_err(write_err)?;
                    v.len()
                }
                Payload::Lazy(f) => {
                    let v = f()?;
                    w.write_all(&v).map_err(write_err)?;
                    v.len()
                }
                Payload::Pieces(pieces) => {
                    let mut n = 0;
                    for piece in pieces {
                        let piece = piece?;
                        n += piece.len();
                        if n > size {
                            return Err(wrong(n));
                        }
                        w.write_all(&piece).map_err(write_err)?;
                    }
                    n
                }
            };
            // A wrong size is found after writing; the partial file is removed all the same.
            if written != size {
                return Err(wrong(written));
            }
        }
        w.flush().map_err(write_err)?;
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path)
        .map_err(|e| ModelError::io(path, "cannot move the finished file into place", e.error))?;
    Ok(())
}

/// Prefix of the temporary files written beside an output ([`partial_file`]).
pub const PARTIAL_PREFIX: &str = ".seedlm-partial-";
/// Suffix of the temporary files written beside an output.
pub const PARTIAL_SUFFIX: &str = ".tmp";

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the temporary file an output is written to in `dir`: named
/// `.seedlm-partial-*.tmp`, created like any new file (mode 0666 less the umask, as `cp` does;
/// tempfile's default 0600 would stick to the renamed output), and locked while this process
/// holds it so that [`remove_stale_partials`] leaves it alone.
pub fn partial_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(PARTIAL_PREFIX).suffix(PARTIAL_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = b.tempfile_in(dir)?;
    tmp.as_file().lock()?;
    Ok(tmp)
}

/// The lock file inside a partial directory ([`PartialDir`]), held while it is written.
const DIR_LOCK: &str = ".seedlm-lock";

/// A directory output being written: a partial directory `.seedlm-partial-*.tmp` beside the
/// target, locked while written (so [`remove_stale_partials`] leaves it alone), and renamed into
/// place by [`PartialDir::finish`]. Dropped unfinished, it is removed.
pub struct PartialDir {
    dir: tempfile::TempDir,
    lock: File,
    target: PathBuf,
}

impl PartialDir {
    /// Starts writing the directory `target` (its parent is created if needed).
    pub fn begin(target: &Path) -> Result<PartialDir, ModelError> {
        let parent = parent_dir(target);
        std::fs::create_dir_all(parent)
            .map_err(|e| ModelError::io(parent, "cannot create directory", e))?;
        let fail = |e| ModelError::io(target, "cannot create a temporary directory beside it", e);
        let dir = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .suffix(PARTIAL_SUFFIX)
            .tempdir_in(parent)
            .map_err(fail)?;
        let lock = File::create(dir.path().join(DIR_LOCK)).map_err(fail)?;
        lock.lock().map_err(fail)?;
        Ok(PartialDir {
            dir,
            lock,
            target: target.to_path_buf(),
        })
    }

    /// Where the directory's files are written until it is finished.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the finished directory into place. An existing target (the caller checked that
    /// it may be replaced) is moved aside first and removed once the new one is in place.
    pub fn finish(self) -> Result<(), ModelError> {
        let PartialDir { dir, lock, target } = self;
        let fail = |e| ModelError::io(&target, "cannot move the finished directory into place", e);
        std::fs::remove_file(dir.path().join(DIR_LOCK)).map_err(fail)?;
        let aside = if target.exists() {
            let aside = tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .suffix(PARTIAL_SUFFIX)
                .tempdir_in(parent_dir(&target))
                .map_err(fail)?;
            std::fs::rename(&target, aside.path()).map_err(fail)?;
            Some(aside)
        } else {
            None
        };
        let path = dir.keep();
        if let Err(e) = std::fs::rename(&path, &target) {
            let _ = std::fs::remove_dir_all(&path);
            if let Some(a) = &aside {
                let _ = std::fs::rename(a.path(), &target);
            }
            return Err(fail(e));
        }
        drop(lock);
        // Dropping the aside directory removes the replaced output.
        drop(aside);
        Ok(())
    }
}

/// Removes the partial files in `dir` that no running writer holds (what a killed run left
/// behind) and returns their paths. Partial files it cannot check or remove are left alone.
pub fn remove_stale_partials(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX)) {
            continue;
        }
        let path = entry.path();
        // A live writer holds the lock (of a directory output: of its lock file); a killed one
        // released it with its last descriptor.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let lock = if is_dir {
            path.join(DIR_LOCK)
        } else {
            path.clone()
        };
        let stale = match File::open(&lock) {
            Ok(f) => f.try_lock().is_ok(),
            // A directory moved aside for a replaced output has no lock file.
            Err(e) => is_dir && e.kind() == std::io::ErrorKind::NotFound,
        };
        if !stale {
            continue;
        }
        let gone = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn open_bytes(bytes: &[u8]) -> Result<MappedSafetensors, ModelError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        std::fs::write(&p, bytes).unwrap();
        MappedSafetensors::open(&p)
    }

    #[test]
    fn written_files_read_back_and_open_in_the_reference_crate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.safetensors");
        let a: Vec<u8> = (0..6u8).collect();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let tensors = vec![
            OutTensor {
                name: "small".into(),
                dtype: Dtype::U8,
                shape: vec![3],
                data: Payload::Owned(vec![7, 8, 9]),
            },
            OutTensor {
                name: "a".into(),
                dtype: Dtype::F16,
                shape: vec![3],
                data: Payload::Bytes(&a),
            },
            OutTensor {
                name: "lazy".into(),
                dtype: Dtype::F32,
                shape: vec![1, 2],
                data: Payload::Lazy(Box::new(|| Ok(vec![1; 8]))),
            },
            OutTensor {
                name: "pieces".into(),
                dtype: Dtype::U8,
                shape: vec![5],
                data: Payload::Pieces(Box::new(
                    [vec![1, 2], vec![], vec![3, 4, 5]].into_iter().map(Ok),
                )),
            },
        ];
        write_atomic(&p, tensors, &meta).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("lazy").unwrap().data(), &[1u8; 8]);
        let m = MappedSafetensors::open(&p).unwrap();
        assert_eq!(m.metadata(), &meta);
        let names: Vec<&str> = m.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["lazy", "a", "small", "pieces"],
            "widest dtype first"
        );
        assert_eq!(m.bytes(&m.tensors()[3]), &[1, 2, 3, 4, 5]);
        assert_eq!(m.bytes(&m.tensors()[1]), &a[..]);
        assert_eq!(m.bytes(&m.tensors()[2]), &[7, 8, 9]);
    }

    #[test]
    fn wrong_payload_size_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.safetensors");
        let t = OutTensor {
            name: "x".into(),
            dtype: Dtype::F32,
            shape: vec![2],
            data: Payload::Owned(vec![0; 4]),
        };
        let err = write_atomic(&p, vec![t], &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("'x'"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Pieces that fail, or add up to too much or too little, leave nothing either.
        let stop = || ModelError::file(&p, "stopped");
        type Pieces = Vec<Result<Vec<u8>, ModelError>>;
        let cases: Vec<(Pieces, &str)> = vec![
            (vec![Ok(vec![0; 4]), Err(stop())], "stopped"),
            (vec![Ok(vec![0; 4]), Ok(vec![0; 5])], "has 9 bytes"),
            (vec![Ok(vec![0; 4])], "has 4 bytes"),
        ];
        for (pieces, want) in cases {
            let t = OutTensor {
                name: "x".into(),
                dtype: Dtype::F32,
                shape: vec![2],
                data: Payload::Pieces(Box::new(pieces.into_iter())),
            };
            let err = write_atomic(&p, vec![t], &BTreeMap::new()).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn malformed_headers_are_reported() {
        let ok = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        assert!(open_bytes(&raw_file(ok, &[0; 8])).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "truncated"),
            (u64::MAX.to_le_bytes().to_vec(), "exceeds"),
            (raw_file(ok, &[0; 8])[..40].to_vec(), "runs past the end"),
            (raw_file("\u{0}\u{0}\u{ff}", &[]), "JSON"),
            (
                {
                    let mut v = 4u64.to_le_bytes().to_vec();
                    v.extend_from_slice(&[0xff, 0xfe, 0x80, 0x81]);
                    v
                },
                "UTF-8",
            ),
            (raw_file(ok, &[0; 5]), "out of range"),
            (
                raw_file(
                    r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "needs 12",
            ),
            (
                raw_file(
                    r#"{"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "unknown dtype",
            ),
            (
                raw_file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
                    &[0; 8],
                ),
                "overlaps",
            ),
            (
                raw_file(
                    r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                    &[0; 8],
                ),
                "out of range",
            ),
            (raw_file(ok, &[0; 9]), "1 trailing bytes"),
            (
                raw_file(r#"{"w":["F32",[2],[0,8]]}"#, &[0; 8]),
                "not a JSON object",
            ),
            (
                raw_file(
                    r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &[0; 8],
                ),
                "given twice",
            ),
            (
                raw_file(
                    r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    &[0; 12],
                ),
                "4 unused bytes",
            ),
            (
                raw_file(
                    r#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "no valid byte size",
            ),
        ];
        for (bytes, want) in cases {
            let err = open_bytes(&bytes).unwrap_err().to_string();
            assert!(err.contains(want), "wanted '{want}' in: {err}");
            assert!(err.contains("m.safetensors"), "names the file: {err}");
        }
    }

    #[test]
    fn partial_files_are_named_locked_and_cleaned_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let live = partial_file(dir.path()).unwrap();
        let name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX));
        let stale = dir
            .path()
            .join(format!("{PARTIAL_PREFIX}killed{PARTIAL_SUFFIX}"));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(dir.path().join("keep.tmp"), b"x").unwrap();
        assert_eq!(remove_stale_partials(dir.path()), vec![stale.clone()]);
        assert!(!stale.exists() && live.path().exists());
        drop(live);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
