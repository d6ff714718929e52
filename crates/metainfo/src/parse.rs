//! Reading the file lists of an info dictionary: the v1 `length`/`files` (BEP 3, BEP 47),
//! the v2 `file tree` (BEP 52), and the hybrid consistency check between the two.

use mycel_bencode::{Dict, Value};

use crate::files::{check_component, find_conflict, FileAttr, FileEntry};
use crate::MetainfoError;

/// The v1 view of the content.
pub(crate) struct V1Files {
    pub files: Vec<FileEntry>,
    /// Sum of all lengths, pad files included: the size of the v1 piece space.
    pub total: u64,
    pub single: bool,
}

/// The v2 view of the content.
pub(crate) struct V2Files {
    pub files: Vec<FileEntry>,
    /// End of the last non-empty file in the piece-aligned layout.
    pub end: u64,
    pub single: bool,
}

// ---- typed field access -------------------------------------------------------------

pub(crate) fn wrong(field: impl Into<String>, expected: &'static str) -> MetainfoError {
    MetainfoError::WrongType { field: field.into(), expected }
}

pub(crate) fn opt_int(d: &Dict<'_>, key: &[u8], field: &dyn Fn() -> String) -> Result<Option<i64>, MetainfoError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(_) => Err(wrong(field(), "an integer")),
    }
}

pub(crate) fn opt_bytes<'a>(
    d: &Dict<'a>,
    key: &[u8],
    field: &dyn Fn() -> String,
) -> Result<Option<&'a [u8]>, MetainfoError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(wrong(field(), "a string")),
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A non-negative length.
fn length(d: &Dict<'_>, field: &dyn Fn() -> String, required: bool) -> Result<u64, MetainfoError> {
    match opt_int(d, b"length", &|| format!("{}.length", field()))? {
        Some(v) => u64::try_from(v)
            .map_err(|_| MetainfoError::InvalidLength { field: format!("{}.length", field()), value: v }),
        None if required => Err(MetainfoError::MissingField(format!("{}.length", field()))),
        None => Ok(0),
    }
}

/// A checked path component.
pub(crate) fn component(c: &[u8], field: &dyn Fn() -> String) -> Result<String, MetainfoError> {
    check_component(c).map_err(|reason| MetainfoError::UnsafePath { field: field(), component: text(c), reason })?;
    Ok(text(c))
}

/// A list of checked path components (`path`, `symlink path`).
fn path_list(v: &Value<'_>, field: &dyn Fn() -> String) -> Result<Vec<String>, MetainfoError> {
    let items = v.as_list().ok_or_else(|| wrong(field(), "a list of strings"))?;
    if items.is_empty() {
        return Err(wrong(field(), "a non-empty list of strings"));
    }
    items.iter().map(|c| component(c.as_bytes().ok_or_else(|| wrong(field(), "a list of strings"))?, field)).collect()
}

fn attr_and_symlink(
    d: &Dict<'_>,
    field: &dyn Fn() -> String,
) -> Result<(FileAttr, Option<Vec<String>>), MetainfoError> {
    let attr = opt_bytes(d, b"attr", &|| format!("{}.attr", field()))?.map(FileAttr::parse).unwrap_or_default();
    let target = match (attr.symlink, d.get(b"symlink path")) {
        (true, Some(v)) => Some(path_list(v, &|| format!("{}.symlink path", field()))?),
        (true, None) => return Err(MetainfoError::MissingField(format!("{}.symlink path", field()))),
        (false, _) => None,
    };
    Ok((attr, target))
}

// ---- v1 -------------------------------------------------------------------------------

/// Reads `length` (single file) or `files` (multi-file). `name` is the checked torrent name.
pub(crate) fn v1_files(info: &Dict<'_>, name: &str) -> Result<V1Files, MetainfoError> {
    match (info.get(b"length"), info.get(b"files")) {
        (Some(_), Some(_)) => Err(wrong("info", "a dictionary with `length` or `files`, not both")),
        (None, None) => Err(MetainfoError::MissingField("info.files".into())),
        (Some(_), None) => {
            let field = || "info".to_string();
            let len = length(info, &field, true)?;
            let (attr, symlink_target) = attr_and_symlink(info, &field)?;
            let file = FileEntry {
                path: vec![name.to_string()],
                length: len,
                offset: 0,
                attr,
                pieces_root: None,
                symlink_target,
            };
            Ok(V1Files { files: vec![file], total: len, single: true })
        }
        (None, Some(list)) => {
            let list = list.as_list().ok_or_else(|| wrong("info.files", "a list of dictionaries"))?;
            if list.is_empty() {
                return Err(MetainfoError::NoFiles);
            }
            let mut files = Vec::with_capacity(list.len());
            let mut total = 0u64;
            for (i, f) in list.iter().enumerate() {
                let field = || format!("info.files[{i}]");
                let d = f.as_dict().ok_or_else(|| wrong(field(), "a dictionary"))?;
                let (attr, symlink_target) = attr_and_symlink(d, &field)?;
                // BEP 47: a symlink's length may be left out.
                let len = length(d, &field, !attr.symlink)?;
                let mut path = vec![name.to_string()];
                match d.get(b"path") {
                    Some(p) => path.extend(path_list(p, &|| format!("{}.path", field()))?),
                    // BEP 47: do not require a path on pad files.
                    None if attr.pad => path.extend([".pad".to_string(), len.to_string()]),
                    None => return Err(MetainfoError::MissingField(format!("{}.path", field()))),
                }
                files.push(FileEntry { path, length: len, offset: total, attr, pieces_root: None, symlink_target });
                total = total.checked_add(len).ok_or(MetainfoError::SizeOverflow)?;
            }
            if let Some(p) = find_conflict(files.iter().filter(|f| !f.attr.pad).map(|f| f.path.as_slice())) {
                return Err(MetainfoError::PathConflict(p));
            }
            Ok(V1Files { files, total, single: false })
        }
    }
}

// ---- v2 -------------------------------------------------------------------------------

/// Reads the `file tree` and lays the files out in the piece-aligned v2 piece space.
///
/// A tree holding one file at its top is a single-file torrent, unless `directory` says
/// otherwise: in a hybrid, the v1 part tells a directory with one file from a single file.
pub(crate) fn v2_files(
    info: &Dict<'_>,
    name: &str,
    piece_length: u32,
    directory: bool,
) -> Result<V2Files, MetainfoError> {
    let tree = match info.get(b"file tree") {
        None => return Err(MetainfoError::MissingField("info.file tree".into())),
        Some(t) => t.as_dict().ok_or_else(|| wrong("info.file tree", "a dictionary"))?,
    };
    if tree.get(b"").is_some() {
        return Err(MetainfoError::FileTree { path: String::new(), reason: "the root must not be a file" });
    }
    let mut leaves = Vec::new();
    walk_tree(tree, &mut Vec::new(), &mut leaves)?;
    if leaves.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    // A single file at the top of the tree is a single-file torrent: its key is its name.
    let single = !directory && leaves.len() == 1 && leaves[0].path.len() == 1;
    let pl = u64::from(piece_length);
    let (mut pos, mut end) = (0u64, 0u64);
    for f in &mut leaves {
        if !single {
            f.path.insert(0, name.to_string());
        }
        // An empty file sits where the data before it ends, so no file lies past the piece
        // space.
        if f.length == 0 {
            f.offset = end;
            continue;
        }
        f.offset = pos;
        end = pos.checked_add(f.length).ok_or(MetainfoError::SizeOverflow)?;
        pos = end.checked_next_multiple_of(pl).ok_or(MetainfoError::SizeOverflow)?;
    }
    Ok(V2Files { files: leaves, end, single })
}

/// Depth-first walk in key order (the bencode dictionary is sorted), which is the order of
/// the files in the piece space. Depth is bounded by the decoder's nesting limit.
fn walk_tree(dir: &Dict<'_>, prefix: &mut Vec<String>, out: &mut Vec<FileEntry>) -> Result<(), MetainfoError> {
    for (key, value) in dir.iter() {
        let here = || format!("info.file tree/{}", prefix.join("/"));
        let name = component(key, &here)?;
        prefix.push(name);
        let at = || prefix.join("/");
        let node = value.as_dict().ok_or_else(|| MetainfoError::FileTree { path: at(), reason: "not a dictionary" })?;
        match node.get(b"") {
            Some(props) => {
                if node.len() != 1 {
                    return Err(MetainfoError::FileTree { path: at(), reason: "a file has sibling entries" });
                }
                let props = props
                    .as_dict()
                    .ok_or_else(|| MetainfoError::FileTree { path: at(), reason: "file entry is not a dictionary" })?;
                out.push(tree_file(props, prefix.clone())?);
            }
            None => walk_tree(node, prefix, out)?,
        }
        prefix.pop();
    }
    Ok(())
}

fn tree_file(props: &Dict<'_>, path: Vec<String>) -> Result<FileEntry, MetainfoError> {
    let field = || format!("info.file tree/{}", path.join("/"));
    let (attr, symlink_target) = attr_and_symlink(props, &field)?;
    let len = length(props, &field, !attr.symlink)?;
    let pieces_root = match opt_bytes(props, b"pieces root", &|| format!("{}.pieces root", field()))? {
        Some(r) => {
            Some(<[u8; 32]>::try_from(r).map_err(|_| wrong(format!("{}.pieces root", field()), "a 32-byte string"))?)
        }
        None => None,
    };
    if len > 0 && pieces_root.is_none() {
        return Err(MetainfoError::MissingField(format!("{}.pieces root", field())));
    }
    let pieces_root = if len > 0 { pieces_root } else { None };
    Ok(FileEntry { path, length: len, offset: 0, attr, pieces_root, symlink_target })
}

// ---- hybrid ---------------------------------------------------------------------------

/// BEP 52 "Upgrade Path": the v1 list without its pad files must be the v2 list (same
/// paths, lengths and order), every non-empty file at the same piece-space offset (so pad
/// files align v1 files to piece boundaries), and both views the same number of pieces.
///
/// Returns the v1 list (pad files included) with the v2 roots attached.
pub(crate) fn merge_hybrid(v1: V1Files, v2: &V2Files, piece_length: u32) -> Result<Vec<FileEntry>, MetainfoError> {
    let mismatch = |s: String| Err(MetainfoError::HybridMismatch(s));
    if v1.single != v2.single {
        return mismatch("one is a single-file torrent, the other is not".into());
    }
    let mut files = v1.files;
    let mut v2_iter = v2.files.iter();
    for (i, f) in files.iter_mut().enumerate().filter(|(_, f)| !f.attr.pad) {
        let Some(g) = v2_iter.next() else {
            return mismatch(format!("file {i} `{}` is not in the v2 file tree", f.display_path()));
        };
        if f.path != g.path || f.length != g.length {
            return mismatch(format!(
                "file {i} is `{}` ({} bytes) in v1 but `{}` ({} bytes) in v2",
                f.display_path(),
                f.length,
                g.display_path(),
                g.length
            ));
        }
        if f.length > 0 && f.offset != g.offset {
            return mismatch(format!("file {i} `{}` is not aligned to a piece boundary in v1", f.display_path()));
        }
        f.pieces_root = g.pieces_root;
    }
    if let Some(g) = v2_iter.next() {
        return mismatch(format!("`{}` is missing from the v1 file list", g.display_path()));
    }
    let pl = u64::from(piece_length);
    if v1.total.div_ceil(pl) != v2.end.div_ceil(pl) {
        return mismatch("the pad files change the number of pieces".into());
    }
    Ok(files)
}
