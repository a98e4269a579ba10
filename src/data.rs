//! Data files: CmdStan JSON and CSV, read and checked against the model's `data` block.
//!
//! Expects a checked program. Guarantees that every declared data variable is present with
//! exactly its declared shape (sizes evaluated from earlier int data), that ints are ints,
//! that reals are finite, and that declared bounds hold — or reports, with a coded
//! diagnostic naming the variable and the element, every variable that fails. Names the
//! model does not declare are ignored (and listed).

use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::sema::check::Decl;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind, TypeKind, UnOp};
use std::collections::BTreeMap;
use std::path::Path;

/// Element values, flat and row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Int(Vec<i64>),
    Real(Vec<f64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Real(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Values::Int(v) => v[i] as f64,
            Values::Real(v) => v[i],
        }
    }
}

/// One bound data variable.
#[derive(Clone, Debug, PartialEq)]
pub struct DataVar {
    /// Dimensions, outermost first (empty for a scalar).
    pub dims: Vec<usize>,
    pub values: Values,
}

/// The model's data, checked.
#[derive(Clone, Debug, Default)]
pub struct BoundData {
    /// In declaration order.
    pub vars: Vec<(String, DataVar)>,
    /// Names in the file the model does not declare.
    pub ignored: Vec<String>,
    /// Variables the file did not hold and that were filled with a constant, as asked
    /// ([`load_data_filling`]): observed variables that `predict` predicts.
    pub filled: Vec<String>,
    /// For a minibatch program: the row-count variable (whose value is then the batch size)
    /// and the data's own row count.
    pub rows: Option<(String, usize)>,
}

impl BoundData {
    /// Real data far from the unit scale a network's priors and optimisers assume: for each
    /// real variable with more than one element, its name, the largest |mean| and the largest
    /// sd of its columns (a matrix's second dimension; the whole of anything else), when
    /// either exceeds `limit`.
    pub fn off_scale(&self, limit: f64) -> Vec<(String, f64, f64)> {
        let mut out = Vec::new();
        for (name, var) in &self.vars {
            let Values::Real(v) = &var.values else { continue };
            if v.len() < 2 {
                continue;
            }
            let cols = if var.dims.len() == 2 { var.dims[1].max(1) } else { 1 };
            let (mut mean_max, mut sd_max) = (0.0f64, 0.0f64);
            for c in 0..cols {
                let col: Vec<f64> = v.iter().skip(c).step_by(cols).copied().filter(|x| x.is_finite()).collect();
                let n = col.len() as f64;
                if n < 2.0 {
                    continue;
                }
                let mean = col.iter().sum::<f64>() / n;
                let sd = (col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
                mean_max = mean_max.max(mean.abs());
                sd_max = sd_max.max(sd);
            }
            if mean_max > limit || sd_max > limit {
                out.push((name.clone(), mean_max, sd_max));
            }
        }
        out
    }

    /// The data restricted to observation rows `rows` (0-based): each variable in
    /// `row_vars` keeps those rows of its first dimension, and the row count `size` becomes
    /// their number (held-out rows, a split of the data).
    pub fn select_rows(&self, size: &str, row_vars: &[String], rows: &[usize]) -> BoundData {
        let mut out = self.clone();
        for (name, var) in &mut out.vars {
            if name == size {
                var.values = Values::Int(vec![rows.len() as i64]);
            } else if row_vars.contains(name) && !var.dims.is_empty() {
                let per: usize = var.dims[1..].iter().product();
                var.values = match &var.values {
                    Values::Int(v) => {
                        Values::Int(rows.iter().flat_map(|&r| v[r * per..(r + 1) * per].to_vec()).collect())
                    }
                    Values::Real(v) => {
                        Values::Real(rows.iter().flat_map(|&r| v[r * per..(r + 1) * per].to_vec()).collect())
                    }
                };
                var.dims[0] = rows.len();
            }
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&DataVar> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of an int scalar.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(DataVar { dims, values: Values::Int(v) }) if dims.is_empty() => v.first().copied(),
            _ => None,
        }
    }
}

/// A number as read, before it is known whether the model wants an int or a real.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Real(f64),
}

/// A variable as read from the file: dims and flat values.
#[derive(Clone, Debug, Default)]
struct Raw {
    dims: Vec<usize>,
    values: Vec<Num>,
    /// Why the entry could not be read, reported only if the model declares its name (names
    /// the model does not declare are ignored, whatever they hold).
    unreadable: Option<Box<Diagnostic>>,
}

/// Where a raw value came from, for diagnostics.
struct Source {
    file: FileId,
    name: String,
    csv: bool,
}

/// Read `path` (JSON, or CSV by extension) and bind it to the model's data declarations.
pub fn load_data(
    path: &Path,
    data_decls: &[Decl],
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<BoundData> {
    load_data_filling(path, data_decls, (&[], 0.0, false), sources, diags)
}

/// As [`load_data`], except that the variables named in `optional` may be absent: each one
/// missing is filled with `fill` in its declared shape and listed in [`BoundData::filled`].
/// With `discard`, they are filled even where the file has them (rows whose observed values
/// are not to be read, as `predict --ood`'s).
pub fn load_data_filling(
    path: &Path,
    data_decls: &[Decl],
    (optional, fill, discard): (&[String], f64, bool),
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<BoundData> {
    let shown = path.display().to_string();
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if ext == "npz" || ext == "npy" {
        let file = sources.add(shown.clone(), String::new());
        let src = Source { file, name: shown.clone(), csv: false };
        let raw = match read_numpy(path, ext == "npz") {
            // Sizes may be left out, as in CSV: the arrays' shapes give them.
            Ok(mut r) => {
                infer_csv_sizes(&mut r, data_decls);
                r
            }
            Err(why) => {
                let why = if why.contains("Compression method") {
                    "it is compressed (np.savez_compressed), which is not read".to_string()
                } else {
                    why
                };
                diags.push(
                    Diagnostic::error_nowhere(Code::DataFileUnreadable, format!("cannot read data file `{shown}`: {why}"))
                        .with_help("NumPy files are read as np.save (.npy, the array named after the file) and np.savez (.npz, uncompressed) write them"),
                );
                return None;
            }
        };
        return bind(raw, data_decls, (optional, fill, discard), &src, diags);
    }
    let text = match std::fs::read(path) {
        Ok(b) => match crate::source::decode_utf8(b) {
            Ok(t) => t,
            Err(_) => {
                diags.push(
                    Diagnostic::error_nowhere(
                        Code::DataFileUnreadable,
                        format!("data file `{shown}` is not valid UTF-8"),
                    )
                    .with_help("save it as UTF-8 text (JSON or CSV)"),
                );
                return None;
            }
        },
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound { "no such file".to_string() } else { e.to_string() };
            diags.push(
                Diagnostic::error_nowhere(Code::DataFileUnreadable, format!("cannot read data file `{shown}`: {why}"))
                    .with_help("check the path: a data file is JSON, CSV (with a header), .npy or .npz"),
            );
            return None;
        }
    };
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if text.trim().is_empty() {
        diags.push(Diagnostic::error_nowhere(Code::DataMalformed, format!("data file `{shown}` is empty")).with_help(
            if csv {
                "a CSV file has a header of names, then a row per observation"
            } else {
                "a JSON data file is one object: {\"N\": 3, \"y\": [...]}"
            },
        ));
        return None;
    }
    let file = sources.add(shown.clone(), text.clone());
    let src = Source { file, name: shown, csv };
    let raw = if csv { read_csv(&text, &src, diags)? } else { read_json(&text, &src, diags)? };
    bind(raw, data_decls, (optional, fill, discard), &src, diags)
}

fn malformed(src: &Source, text: &str, line: usize, col: usize, msg: String) -> Diagnostic {
    // Byte offset of a 1-based line and column.
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            off += l.char_indices().nth(col.saturating_sub(1)).map(|(b, _)| b).unwrap_or(l.len());
            break;
        }
        off += l.len();
    }
    let off = off.min(text.len());
    let end = (off + 1).min(text.len()).max(off);
    Diagnostic::error(
        Code::DataMalformed,
        Span::new(src.file, off, end),
        format!("`{}` is not valid {}", src.name, if src.csv { "CSV" } else { "JSON" }),
    )
    .with_label(msg)
}

/// `text` with the bare `NaN`, `Infinity` and `-Infinity` that Python's `json.dump` and
/// CmdStan write (not JSON) quoted, as the strings the reader takes for them.
fn quote_bare_nonfinite(text: &str) -> std::borrow::Cow<'_, str> {
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|w| rest.starts_with(w)) {
            let prev_alnum = out.chars().last().is_some_and(|p| p.is_ascii_alphanumeric());
            let next_alnum = rest[word.len()..].chars().next().is_some_and(|n| n.is_ascii_alphanumeric());
            if !prev_alnum && !next_alnum {
                out.push('"');
                out.push_str(word);
                out.push('"');
                rest = &rest[word.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

fn read_json(text: &str, src: &Source, diags: &mut Diagnostics) -> Option<BTreeMap<String, Raw>> {
    let quoted_text = quote_bare_nonfinite(text);
    // The object's entries in order, a repeated key kept (a map would keep one of its values
    // without a word); on failure the text is read again as any JSON value, to say why.
    let entries = match serde_json::from_str::<Entries>(&quoted_text) {
        Ok(Entries(entries)) => entries,
        Err(_) => match serde_json::from_str::<serde_json::Value>(&quoted_text) {
            Ok(_) => return not_an_object(src, text, diags),
            Err(e) => return malformed_json(e, src, text, diags),
        },
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    let mut seen = std::collections::HashSet::new();
    for k in entries.iter().map(|(k, _)| k).filter(|k| !seen.insert(k.as_str())) {
        let quoted = format!("\"{k}\"");
        let first = text.find(&quoted).unwrap_or(0);
        let at = text[first + 1..].find(&quoted).map_or(first, |i| first + 1 + i);
        diags.push(
            Diagnostic::error(
                Code::DataMalformed,
                Span::new(src.file, at, at + quoted.len()),
                format!("data `{k}` is given more than once"),
            )
            .with_label("again here")
            .with_help("keep one value per name: which one was meant cannot be told"),
        );
        ok = false;
    }
    for (k, v) in entries {
        let mut dims = Vec::new();
        let mut values = Vec::new();
        match flatten(&v, 0, &mut dims, &mut values) {
            Ok(()) => {
                out.insert(k, Raw { dims, values, unreadable: None });
            }
            Err(why) => {
                let at = text.find(&format!("\"{k}\"")).unwrap_or(0);
                let d = Diagnostic::error(
                    Code::DataMalformed,
                    Span::new(src.file, at, at + k.len() + 2),
                    format!("data `{k}` cannot be read: {why}"),
                )
                .with_label("this entry")
                .with_help("values are numbers (or \"NaN\", \"Inf\", \"-Inf\"; true and false are 1 and 0) and nested arrays of equal length");
                out.insert(k, Raw { unreadable: Some(Box::new(d)), ..Raw::default() });
            }
        }
    }
    ok.then_some(out)
}

/// A JSON file's text that does not parse: where and why.
fn malformed_json(
    e: serde_json::Error,
    src: &Source,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<BTreeMap<String, Raw>> {
    diags.push(
        malformed(src, text, e.line(), e.column(), e.to_string().split(" at line").next().unwrap_or("").to_string())
            .with_help("data files are one JSON object with a key per data name, as CmdStan writes them"),
    );
    None
}

/// A JSON file that holds a value other than an object.
fn not_an_object(src: &Source, text: &str, diags: &mut Diagnostics) -> Option<BTreeMap<String, Raw>> {
    diags.push(
        Diagnostic::error(
            Code::DataMalformed,
            Span::new(src.file, 0, text.len().min(1)),
            format!("`{}` must hold one JSON object", src.name),
        )
        .with_label("not an object")
        .with_help("write `{\"N\": 3, \"y\": [1.0, 2.5, 0.3]}`"),
    );
    None
}

/// The entries of a JSON object, in order and with repeats.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = m.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Flatten nested arrays row-major, checking they are rectangular.
fn flatten(v: &serde_json::Value, depth: usize, dims: &mut Vec<usize>, out: &mut Vec<Num>) -> Result<(), String> {
    match v {
        serde_json::Value::Number(n) => {
            if depth < dims.len() {
                return Err("an array is ragged (a number where a nested array is expected)".into());
            }
            out.push(match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Num::Int(i),
                (None, Some(f)) => Num::Real(f),
                _ => return Err(format!("number {n} is out of range")),
            });
            Ok(())
        }
        serde_json::Value::String(s) => {
            let f = match s.as_str() {
                "NaN" | "nan" => f64::NAN,
                "Inf" | "inf" | "+Inf" | "Infinity" | "+Infinity" => f64::INFINITY,
                "-Inf" | "-inf" | "-Infinity" => f64::NEG_INFINITY,
                other => return Err(format!("the string \"{other}\" is not a number")),
            };
            if depth < dims.len() {
                return Err("an array is ragged".into());
            }
            out.push(Num::Real(f));
            Ok(())
        }
        serde_json::Value::Array(items) => {
            if depth == dims.len() {
                if !out.is_empty() {
                    return Err("an array is ragged (nested arrays at different depths)".into());
                }
                dims.push(items.len());
            } else if dims[depth] != items.len() {
                return Err(format!("an array is ragged (rows of length {} and {})", dims[depth], items.len()));
            }
            for it in items {
                flatten(it, depth + 1, dims, out)?;
            }
            Ok(())
        }
        serde_json::Value::Bool(b) => {
            out.push(Num::Int(*b as i64));
            Ok(())
        }
        serde_json::Value::Null => Err("null is not a number".into()),
        serde_json::Value::Object(_) => Err("a nested object is not a number or array".into()),
    }
}

/// CSV with a header: each column is a vector. Columns `x[0]`, `x[1]`, ... form the
/// columns of a matrix `x`.
fn read_csv(text: &str, src: &Source, diags: &mut Diagnostics) -> Option<BTreeMap<String, Raw>> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            diags.push(malformed(src, text, 1, 1, e.to_string()));
            return None;
        }
    };
    let mut cols: Vec<Vec<Num>> = vec![Vec::new(); headers.len()];
    // A column with a field that is not a number: why, reported if the model reads it.
    let mut unreadable: Vec<Option<Diagnostic>> = vec![None; headers.len()];
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(1);
                diags.push(malformed(src, text, line, 1, e.to_string()));
                return None;
            }
        };
        for (i, field) in rec.iter().enumerate() {
            let num = if let Ok(v) = field.parse::<i64>() {
                Num::Int(v)
            } else if let Ok(v) = field.parse::<f64>() {
                Num::Real(v)
            } else if let Some(b) = match field {
                // pandas writes a boolean column as True/False: 1 and 0, as JSON's true/false.
                "True" | "true" | "TRUE" => Some(1),
                "False" | "false" | "FALSE" => Some(0),
                _ => None,
            } {
                Num::Int(b)
            } else {
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(1);
                if unreadable[i].is_none() {
                    let col = field_column(text, line, i);
                    unreadable[i] = Some(malformed(
                        src,
                        text,
                        line,
                        col,
                        format!("`{field}` in column `{}` is not a number", headers[i]),
                    ));
                }
                Num::Real(f64::NAN)
            };
            cols[i].push(num);
        }
    }
    let rows = cols.first().map(Vec::len).unwrap_or(0);
    // Group `x[j]` columns into matrices.
    let mut out: BTreeMap<String, Raw> = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        if let Some((base, rest)) = h.split_once('[') {
            if let Some(j) = rest.strip_suffix(']').and_then(|j| j.parse::<usize>().ok()) {
                groups.entry(base.to_string()).or_default().push((j, i));
                continue;
            }
        }
        // CmdStan's names, `x.1`, `x.2`, ..., counted from 1.
        if let Some((base, j)) = h.rsplit_once('.').and_then(|(b, j)| Some((b, j.parse::<usize>().ok()?))) {
            if j >= 1 && !base.is_empty() {
                groups.entry(base.to_string()).or_default().push((j - 1, i));
                continue;
            }
        }
        let unreadable = unreadable[i].clone().map(Box::new);
        out.insert(h.clone(), Raw { dims: vec![rows], values: cols[i].clone(), unreadable });
    }
    for (base, mut members) in groups {
        members.sort();
        let width = members.len();
        // The columns of `x` must be x[0], x[1], ... with none missing or repeated: the
        // matrix's column j is the header's `x[j]`, not the j-th such header.
        if let Some(k) = (0..width).find(|&k| members[k].0 != k) {
            let msg = match members[k].0 {
                j if k > 0 && j == members[k - 1].0 => format!("column `{base}[{j}]` appears twice in the header"),
                _ => format!(
                    "the columns of `{base}` must be `{base}[0]` to `{base}[{}]`, one each, but `{base}[{k}]` is missing",
                    members.last().map_or(0, |m| m.0)
                ),
            };
            diags.push(malformed(src, text, 1, 1, msg));
            return None;
        }
        let mut values = Vec::with_capacity(rows * width);
        for r in 0..rows {
            for (_, i) in &members {
                values.push(cols[*i][r]);
            }
        }
        let unreadable = members.iter().find_map(|(_, i)| unreadable[*i].clone()).map(Box::new);
        out.insert(base, Raw { dims: vec![rows, width], values, unreadable });
    }
    Some(out)
}

/// The 1-based character column where field `i` of line `line` starts (fields split at
/// commas outside quotes).
fn field_column(text: &str, line: usize, i: usize) -> usize {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else { return 1 };
    let (mut field, mut quoted) = (0, false);
    for (c, ch) in l.chars().enumerate() {
        if field == i {
            return c + 1;
        }
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => field += 1,
            _ => {}
        }
    }
    // An empty last field: just past the line's last comma.
    if field == i {
        l.chars().count() + 1
    } else {
        1
    }
}

/// The arrays of a `.npz` file by name, or of a `.npy` file under the file's stem. Floats and
/// ints of every width and bools are read; anything else says what it is.
fn read_numpy(path: &Path, npz: bool) -> Result<BTreeMap<String, Raw>, String> {
    use ndarray::{ArrayD, IxDyn, OwnedRepr};
    use ndarray_npy::ReadNpyExt;
    fn to_raw<T: Copy>(a: ArrayD<T>, f: impl Fn(T) -> Num) -> Raw {
        Raw { dims: a.shape().to_vec(), values: a.iter().map(|x| f(*x)).collect(), unreadable: None }
    }
    // Each element type in turn (a reader fails cleanly on a type it does not hold), with how
    // its elements become numbers: one list for `.npy` files and the arrays of `.npz` ones.
    macro_rules! each_type {
        ($read:ident) => {
            None.or_else(|| Some(to_raw($read!(f64)?, Num::Real)))
                .or_else(|| Some(to_raw($read!(f32)?, |x| Num::Real(x as f64))))
                .or_else(|| Some(to_raw($read!(i64)?, Num::Int)))
                .or_else(|| Some(to_raw($read!(i32)?, |x| Num::Int(x as i64))))
                .or_else(|| Some(to_raw($read!(i16)?, |x| Num::Int(x as i64))))
                .or_else(|| Some(to_raw($read!(i8)?, |x| Num::Int(x as i64))))
                .or_else(|| Some(to_raw($read!(u8)?, |x| Num::Int(x as i64))))
                .or_else(|| Some(to_raw($read!(u16)?, |x| Num::Int(x as i64))))
                .or_else(|| Some(to_raw($read!(u32)?, |x| Num::Int(x as i64))))
                .or_else(|| {
                    // Beyond i64, a u64 is not an int bnnc holds: read as a real, which the
                    // binding then refuses where an int is declared.
                    Some(to_raw($read!(u64)?, |x| i64::try_from(x).map_or(Num::Real(x as f64), Num::Int)))
                })
                .or_else(|| Some(to_raw($read!(bool)?, |x| Num::Int(x as i64))))
        };
    }
    let mut out = BTreeMap::new();
    if npz {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut z = ndarray_npy::NpzReader::new(file).map_err(|e| e.to_string())?;
        for name in z.names().map_err(|e| e.to_string())? {
            macro_rules! by_name {
                ($t:ty) => {
                    z.by_name::<OwnedRepr<$t>, IxDyn>(&name).ok()
                };
            }
            let raw: Option<Raw> = each_type!(by_name);
            let raw = raw.ok_or_else(|| {
                format!("array `{name}` is not of numbers NumPy stores as floats of 32 or 64 bits, ints of 8 to 64, or bools (float16 and complex are not read), or the file is compressed (save it with np.savez, not np.savez_compressed)")
            })?;
            out.insert(name, raw);
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        macro_rules! from_bytes {
            ($t:ty) => {
                ArrayD::<$t>::read_npy(&bytes[..]).ok()
            };
        }
        let raw: Option<Raw> = each_type!(from_bytes);
        let raw = raw.ok_or("not an array of numbers NumPy stores as floats of 32 or 64 bits, ints of 8 to 64, or bools (float16 and complex are not read)")?;
        out.insert(name, raw);
    }
    Ok(out)
}

/// Bind arrays given in memory (name, dims, row-major values; `int` when they hold ints) to
/// the model's data declarations, with the checks a data file gets; `optional` and `fill` as
/// in [`load_data_filling`]. `origin` names them in diagnostics.
pub fn bind_arrays(
    arrays: &[(String, Vec<usize>, Vec<f64>, bool)],
    data_decls: &[Decl],
    (optional, fill): (&[String], f64),
    origin: &str,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<BoundData> {
    let file = sources.add(origin.to_string(), String::new());
    let src = Source { file, name: origin.to_string(), csv: false };
    let raw = arrays
        .iter()
        .map(|(name, dims, values, int)| {
            let values = values.iter().map(|v| if *int { Num::Int(*v as i64) } else { Num::Real(*v) }).collect();
            (name.clone(), Raw { dims: dims.clone(), values, unreadable: None })
        })
        .collect();
    bind(raw, data_decls, (optional, fill, false), &src, diags)
}

/// A value a data-only expression can have.
#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Real(f64),
    Array(Vec<f64>),
}

/// Evaluate an int expression of data (a size). `Err` says why it cannot be.
pub fn eval_int(e: &Expr, data: &BoundData) -> Result<i64, String> {
    match eval(e, data)? {
        Val::Int(v) => Ok(v),
        _ => Err("not an int".into()),
    }
}

/// Evaluate a scalar expression of data (a bound). `Err` says why it cannot be.
pub fn eval_real(e: &Expr, data: &BoundData) -> Result<f64, String> {
    match eval(e, data)? {
        Val::Int(v) => Ok(v as f64),
        Val::Real(v) => Ok(v),
        Val::Array(_) => Err("not a scalar".into()),
    }
}

/// Evaluate an expression of data (sizes and bounds). `Err` holds a reason the expression
/// cannot be evaluated from data.
fn eval(e: &Expr, data: &BoundData) -> Result<Val, String> {
    match &e.kind {
        ExprKind::Int(v) => Ok(Val::Int(*v)),
        ExprKind::Real(v) => Ok(Val::Real(*v)),
        ExprKind::Paren(x) => eval(x, data),
        ExprKind::Name(n) => match data.get(n) {
            Some(DataVar { dims, values }) if dims.is_empty() => Ok(match values {
                Values::Int(v) => Val::Int(v[0]),
                Values::Real(v) => Val::Real(v[0]),
            }),
            Some(DataVar { values, .. }) => Ok(Val::Array((0..values.len()).map(|i| values.get_f64(i)).collect())),
            None => Err(format!("`{n}` is not data")),
        },
        ExprKind::Unary { op, operand } => match (op, eval(operand, data)?) {
            (UnOp::Neg, Val::Int(v)) => v.checked_neg().map(Val::Int).ok_or_else(|| "overflow".into()),
            (UnOp::Neg, Val::Real(v)) => Ok(Val::Real(-v)),
            (UnOp::Plus, v) => Ok(v),
            (UnOp::Not, Val::Int(v)) => Ok(Val::Int((v == 0) as i64)),
            _ => Err("unsupported operand".into()),
        },
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (eval(lhs, data)?, eval(rhs, data)?);
            match (a, b) {
                (Val::Int(x), Val::Int(y)) => {
                    let r = match op {
                        BinOp::Add => x.checked_add(y),
                        BinOp::Sub => x.checked_sub(y),
                        BinOp::Mul => x.checked_mul(y),
                        BinOp::Div => x.checked_div(y),
                        BinOp::Mod => x.checked_rem(y),
                        BinOp::Eq => Some((x == y) as i64),
                        BinOp::Ne => Some((x != y) as i64),
                        BinOp::Lt => Some((x < y) as i64),
                        BinOp::Le => Some((x <= y) as i64),
                        BinOp::Gt => Some((x > y) as i64),
                        BinOp::Ge => Some((x >= y) as i64),
                        BinOp::And => Some((x != 0 && y != 0) as i64),
                        BinOp::Or => Some((x != 0 || y != 0) as i64),
                        BinOp::Pow => return Ok(Val::Real((x as f64).powf(y as f64))),
                        BinOp::MatMul => None,
                    };
                    r.map(Val::Int).ok_or_else(|| "integer overflow or division by zero".into())
                }
                (a, b) => {
                    let f = |v: Val| match v {
                        Val::Int(i) => Ok(i as f64),
                        Val::Real(r) => Ok(r),
                        Val::Array(_) => Err("arithmetic on arrays is not evaluated here".to_string()),
                    };
                    let (x, y) = (f(a)?, f(b)?);
                    Ok(Val::Real(match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                        BinOp::Pow => x.powf(y),
                        _ => return Err("unsupported operator".into()),
                    }))
                }
            }
        }
        ExprKind::Call { callee, args } if args.len() == 1 => {
            let name = callee.name.as_str();
            if let Some(n) = args[0].value.as_name() {
                if let Some(var) = data.get(n) {
                    let d = |k: usize| {
                        var.dims
                            .get(k)
                            .map(|v| Val::Int(*v as i64))
                            .ok_or_else(|| format!("`{n}` has no dimension {k}"))
                    };
                    match name {
                        "rows" => return d(0),
                        "cols" => return d(1),
                        "size" => return Ok(Val::Int(var.values.len() as i64)),
                        _ => {}
                    }
                }
            }
            match (name, eval(&args[0].value, data)?) {
                ("abs", Val::Int(v)) => Ok(Val::Int(v.abs())),
                ("abs", Val::Real(v)) => Ok(Val::Real(v.abs())),
                ("sqrt", Val::Int(v)) => Ok(Val::Real((v as f64).sqrt())),
                ("sqrt", Val::Real(v)) => Ok(Val::Real(v.sqrt())),
                ("exp", Val::Real(v)) => Ok(Val::Real(v.exp())),
                ("log", Val::Real(v)) => Ok(Val::Real(v.ln())),
                _ => Err(format!("`{name}` is not evaluated when data is read")),
            }
        }
        _ => Err("not evaluated when data is read".into()),
    }
}

fn index_str(dims: &[usize], flat: usize) -> String {
    if dims.is_empty() {
        return String::new();
    }
    let mut idx = vec![0; dims.len()];
    let mut rest = flat;
    for k in (0..dims.len()).rev() {
        let d = dims[k].max(1);
        idx[k] = rest % d;
        rest /= d;
    }
    format!("[{}]", idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
}

fn show_dims(dims: &[usize]) -> String {
    match dims.len() {
        0 => "a scalar".to_string(),
        1 => format!("an array of {}", dims[0]),
        _ => format!("an array of shape [{}]", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// Check raw values against the declarations, in order (sizes use earlier ints).
fn bind(
    mut raw: BTreeMap<String, Raw>,
    decls: &[Decl],
    (optional, fill, discard): (&[String], f64, bool),
    src: &Source,
    diags: &mut Diagnostics,
) -> Option<BoundData> {
    if discard {
        raw.retain(|k, _| !optional.contains(k));
    }
    let mut data = BoundData::default();
    let declared: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    data.ignored = raw.keys().filter(|k| !declared.contains(&k.as_str())).cloned().collect();
    if src.csv {
        infer_csv_sizes(&mut raw, decls);
    }
    let before = diags.error_count();
    for d in decls {
        // Expected dims and element kind from the type as written.
        let (dims_exprs, elem_int) = type_dims(&d.type_expr);
        let mut expected: Vec<usize> = Vec::new();
        let mut sizes_ok = true;
        for e in &dims_exprs {
            match eval(e, &data) {
                Ok(Val::Int(v)) if v >= 0 => expected.push(v as usize),
                Ok(Val::Int(v)) => {
                    diags.push(
                        Diagnostic::error(Code::DataNegativeSize, e.span, format!("size of `{}` is {v}", d.name))
                            .with_label(format!("evaluates to {v}"))
                            .with_help("sizes must be zero or more; check the int data it is computed from"),
                    );
                    sizes_ok = false;
                }
                Ok(_) | Err(_) => {
                    // A size that could not be evaluated (an earlier error, usually).
                    sizes_ok = false;
                }
            }
        }
        if sizes_ok && optional.contains(&d.name) && !raw.contains_key(&d.name) {
            let n = expected.iter().product();
            let values = if elem_int { Values::Int(vec![fill as i64; n]) } else { Values::Real(vec![fill; n]) };
            data.vars.push((d.name.clone(), DataVar { dims: expected.clone(), values }));
            data.filled.push(d.name.clone());
            continue;
        }
        // An optional item (predict's observed values) whose size failed already said why.
        if !sizes_ok && optional.contains(&d.name) && !raw.contains_key(&d.name) {
            continue;
        }
        let Some(r) = raw.remove(&d.name) else {
            let present: Vec<&str> = data.ignored.iter().map(String::as_str).collect();
            diags.push(
                Diagnostic::error(
                    Code::DataMissing,
                    d.name_span,
                    format!("data `{}` is missing from `{}`", d.name, src.name),
                )
                .with_label("declared here")
                .with_help(
                    did_you_mean(&d.name, present.iter().copied())
                        .map(|s| format!("{s} (the file has it under that name)"))
                        .unwrap_or_else(|| format!("add `\"{}\": ...` to the data file", d.name)),
                ),
            );
            continue;
        };
        if let Some(d) = r.unreadable {
            diags.push(*d);
            continue;
        }
        if !sizes_ok {
            continue;
        }
        // Shapes: an empty array stands for any shape with a zero in it.
        let n_expected: usize = expected.iter().product();
        let shape_ok = r.dims == expected || (n_expected == 0 && r.values.is_empty() && !expected.is_empty());
        if !shape_ok {
            let decl = crate::syntax::print::ty(&d.type_expr);
            let sizes: Vec<String> = dims_exprs
                .iter()
                .zip(expected.iter())
                .filter(|(e, _)| !matches!(e.kind, ExprKind::Int(_)))
                .map(|(e, v)| format!("{} = {v}", crate::syntax::print::expr(e)))
                .collect();
            let mut diag = Diagnostic::error(
                Code::DataShape,
                d.span,
                format!("data `{}` is {} in `{}`, but the model declares {decl}", d.name, show_dims(&r.dims), src.name),
            )
            .with_label(if expected.is_empty() {
                "a scalar".to_string()
            } else {
                format!("expects shape [{}]", expected.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
            });
            if !sizes.is_empty() {
                diag = diag.with_note(format!("with {}", sizes.join(", ")));
            }
            diags.push(diag);
            continue;
        }
        // Element kinds.
        let values = if elem_int {
            let mut ints = Vec::with_capacity(r.values.len());
            let mut bad = None;
            for (i, v) in r.values.iter().enumerate() {
                match v {
                    Num::Int(x) => ints.push(*x),
                    Num::Real(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => ints.push(*x as i64),
                    Num::Real(x) => {
                        bad = Some((i, *x));
                        break;
                    }
                }
            }
            if let Some((i, x)) = bad {
                diags.push(
                    Diagnostic::error(
                        Code::DataNotInt,
                        d.span,
                        format!("data `{}{}` is {x}, but `{}` holds ints", d.name, index_str(&expected, i), d.name),
                    )
                    .with_label(if expected.is_empty() { "declared `int`" } else { "declared with int elements" })
                    .with_help(if x.fract() == 0.0 {
                        // Whole, but beyond where a number read from a file is an exact int.
                        "ints in data are whole numbers below 9e15 in magnitude; declare it `real`/`vector` for larger values"
                    } else {
                        "give whole numbers, or declare it `real`/`vector` if fractions are meant"
                    }),
                );
                continue;
            }
            Values::Int(ints)
        } else {
            let reals: Vec<f64> = r
                .values
                .iter()
                .map(|v| match v {
                    Num::Int(x) => *x as f64,
                    Num::Real(x) => *x,
                })
                .collect();
            if let Some(i) = reals.iter().position(|x| !x.is_finite()) {
                diags.push(
                    Diagnostic::error(
                        Code::DataNotFinite,
                        d.span,
                        format!("data `{}{}` is {} in `{}`", d.name, index_str(&expected, i), reals[i], src.name),
                    )
                    .with_label("data must be finite")
                    .with_help("remove or impute missing values before sampling; bnnc does not treat NaN as missing"),
                );
                continue;
            }
            Values::Real(reals)
        };
        let var = DataVar { dims: expected.clone(), values };
        // Declared bounds.
        if check_bounds(d, &var, &data, &expected, diags) {
            data.vars.push((d.name.clone(), var));
        }
    }
    (diags.error_count() == before).then_some(data)
}

/// Where sizes cannot be written (CSV), take a missing int size from the first variable
/// whose type names it as a dimension.
fn infer_csv_sizes(raw: &mut BTreeMap<String, Raw>, decls: &[Decl]) {
    for d in decls {
        let is_int_scalar =
            matches!(&d.type_expr.kind, TypeKind::Named { name, dims, .. } if name.name == "int" && dims.is_empty());
        if !is_int_scalar || raw.contains_key(&d.name) {
            continue;
        }
        let found = decls.iter().find_map(|other| {
            let (dims, _) = type_dims(&other.type_expr);
            let k = dims.iter().position(|e| e.as_name() == Some(d.name.as_str()))?;
            raw.get(&other.name).and_then(|r| r.dims.get(k).copied())
        });
        if let Some(n) = found {
            raw.insert(d.name.clone(), Raw { dims: vec![], values: vec![Num::Int(n as i64)], unreadable: None });
        }
    }
}

/// The dimension expressions of a declared type, outermost first, and whether its
/// elements are ints.
pub fn type_dims(t: &crate::syntax::ast::TypeExpr) -> (Vec<Expr>, bool) {
    match &t.kind {
        TypeKind::Array { dims, elem } => {
            let (inner, int) = type_dims(elem);
            (dims.iter().cloned().chain(inner).collect(), int)
        }
        TypeKind::Named { name, dims, .. } => match name.name.as_str() {
            // A Cholesky factor of a correlation matrix is k × k.
            "cholesky_corr" => (dims.iter().cloned().chain(dims.iter().cloned()).collect(), false),
            n => (dims.clone(), n == "int"),
        },
        TypeKind::Fn | TypeKind::Infer => (Vec::new(), false),
    }
}

fn check_bounds(d: &Decl, var: &DataVar, data: &BoundData, dims: &[usize], diags: &mut Diagnostics) -> bool {
    let mut ok = true;
    for (bound, is_lower) in [(&d.decl.lower, true), (&d.decl.upper, false)] {
        let Some(b) = bound else { continue };
        let limit = match eval(b, data) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let n = var.values.len();
        let lim = |i: usize| match &limit {
            Val::Int(v) => Some(*v as f64),
            Val::Real(v) => Some(*v),
            Val::Array(a) => a.get(i).copied(),
        };
        for i in 0..n {
            let Some(l) = lim(i) else { break };
            let x = var.values.get_f64(i);
            let bad = if is_lower { x < l } else { x > l };
            if bad {
                diags.push(
                    Diagnostic::error(
                        Code::DataOutOfRange,
                        b.span,
                        format!(
                            "data `{}{}` is {x}, {} its {} bound {l}",
                            d.name,
                            index_str(dims, i),
                            if is_lower { "below" } else { "above" },
                            if is_lower { "lower" } else { "upper" }
                        ),
                    )
                    .with_label(format!("`{}` bound", if is_lower { "lower" } else { "upper" }))
                    .with_secondary(d.name_span, "this data"),
                );
                ok = false;
                break;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every decimal reads as the nearest double, as CSV and .npz give it: JSON's reader
    /// once missed by a unit in the last place for about one number in thirteen.
    #[test]
    fn json_numbers_read_exactly() {
        for text in ["0.41848741407960005", "-1.2458020535506447", "2.2250738585072014e-308", "0.1"] {
            let v: serde_json::Value = serde_json::from_str(&format!("[{text}]")).unwrap();
            let (mut dims, mut out) = (Vec::new(), Vec::new());
            flatten(&v, 0, &mut dims, &mut out).unwrap();
            let want: f64 = text.parse().unwrap();
            assert!(matches!(out[0], Num::Real(x) if x.to_bits() == want.to_bits()), "{text}");
        }
    }

    #[test]
    fn flatten_checks_rectangles() {
        let v: serde_json::Value = serde_json::from_str("[[1, 2], [3, 4], [5, 6]]").unwrap();
        let (mut dims, mut out) = (Vec::new(), Vec::new());
        flatten(&v, 0, &mut dims, &mut out).unwrap();
        assert_eq!(dims, vec![3, 2]);
        assert_eq!(out.len(), 6);
        let v: serde_json::Value = serde_json::from_str("[[1, 2], [3]]").unwrap();
        assert!(flatten(&v, 0, &mut Vec::new(), &mut Vec::new()).is_err());
        let v: serde_json::Value = serde_json::from_str("[\"NaN\", \"-Inf\", 2.5]").unwrap();
        let mut out = Vec::new();
        flatten(&v, 0, &mut Vec::new(), &mut out).unwrap();
        assert!(matches!(out[0], Num::Real(x) if x.is_nan()));
        assert_eq!(out[1], Num::Real(f64::NEG_INFINITY));
    }

    #[test]
    fn bare_nonfinite_numbers_are_read_as_their_strings() {
        let text = r#"{"y": [NaN, -Infinity, Infinity, 1.5], "s": "NaN in a string", "NaNa": 2}"#;
        let quoted = quote_bare_nonfinite(text);
        assert_eq!(quoted, r#"{"y": ["NaN", "-Infinity", "Infinity", 1.5], "s": "NaN in a string", "NaNa": 2}"#);
        let v: serde_json::Value = serde_json::from_str(&quoted).unwrap();
        let mut out = Vec::new();
        flatten(&v["y"], 0, &mut Vec::new(), &mut out).unwrap();
        assert!(matches!(out[0], Num::Real(x) if x.is_nan()));
        assert_eq!(out[1..3], [Num::Real(f64::NEG_INFINITY), Num::Real(f64::INFINITY)]);
        // Plain JSON is left as it is.
        assert!(matches!(quote_bare_nonfinite(r#"{"y": [1, 2]}"#), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn index_strings_are_row_major() {
        assert_eq!(index_str(&[3, 2], 5), "[2, 1]");
        assert_eq!(index_str(&[4], 3), "[3]");
        assert_eq!(index_str(&[], 0), "");
    }
}
