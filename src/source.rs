//! Source files and spans.
//!
//! Every span is a half-open byte range `[lo, hi)` into one file of the [`SourceMap`].
//! Byte offsets (not characters) are the unit everywhere, so CRLF line endings and
//! multi-byte characters never shift a span; the renderer is told the same
//! (ariadne's `IndexType::Byte`).

use std::fmt;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub fn new(file: FileId, lo: usize, hi: usize) -> Span {
        Span { file, lo: lo as u32, hi: hi.max(lo) as u32 }
    }

    /// The smallest span covering both (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, lo: self.lo.min(other.lo), hi: self.hi.max(other.hi) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.lo as usize..self.hi as usize
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}..{}", self.file.0, self.lo, self.hi)
    }
}

/// One loaded source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as the user gave it, or `<stdlib>/dense.bnn`).
    pub name: String,
    pub text: String,
}

/// A fingerprint of a model's text (64-bit FNV-1a, printed in hex), kept with a fit so that a
/// fit is not read back with another version of its model.
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// All files of one compilation: the user's model, its imports and the standard library.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }

    /// The file whose name is `name`, if loaded already.
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name).map(|i| FileId(i as u32))
    }

    /// 1-based line and column (in characters) of a byte offset, for JSON output.
    pub fn line_col(&self, file: FileId, offset: u32) -> (usize, usize) {
        let text = &self.get(file).text;
        let offset = (offset as usize).min(text.len());
        let mut off = offset;
        while !text.is_char_boundary(off) {
            off -= 1;
        }
        let before = &text[..off];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// The source text under a span.
    pub fn snippet(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.range()).unwrap_or("")
    }
}

/// Decode file bytes as UTF-8. On failure returns the text with invalid sequences replaced
/// (U+FFFD) and the byte range, in that replaced text, of the first bad sequence, so the
/// diagnostic can point at it. A byte-order mark, which some editors put at the start of a
/// UTF-8 file, is dropped.
pub fn decode_utf8(mut bytes: Vec<u8>) -> Result<String, (String, std::ops::Range<usize>)> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let bytes = e.into_bytes();
            let at = std::str::from_utf8(&bytes).err().map(|e| e.valid_up_to()).unwrap_or(0);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // The prefix up to `at` is unchanged by the lossy conversion, and the bad
            // sequence became one U+FFFD (3 bytes).
            Err((text, at..at + '\u{FFFD}'.len_utf8()))
        }
    }
}
