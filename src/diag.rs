//! Diagnostics: the one place errors are collected and rendered.
//!
//! Every error a user can cause is a [`Diagnostic`] with a stable [`Code`], a primary span,
//! optional secondary labels, and a help line where one helps. Passes push into a
//! [`Diagnostics`] sink and carry on, so one run reports every independent mistake.
//! Rendering (ariadne, byte-indexed; or JSON lines) happens only here.

use crate::source::{SourceMap, Span};
use std::fmt;

macro_rules! codes {
    ($($variant:ident = $code:literal, $title:literal;)*) => {
        /// Stable error codes. Each has a page in the book's error index.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed: `E0001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// One-line description, used as the error index title.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    // Files and tokens.
    FileUnreadable = "E0001", "file cannot be read";
    NotUtf8 = "E0002", "source is not valid UTF-8";
    InvalidToken = "E0003", "character that starts no token";
    UnterminatedComment = "E0004", "block comment never closed";
    BadNumber = "E0005", "number literal out of range";
    // Syntax.
    UnexpectedToken = "E0010", "unexpected token";
    UnexpectedEof = "E0011", "unexpected end of file";
    TooDeep = "E0012", "nesting too deep";
    UnclosedDelimiter = "E0013", "unclosed or unmatched bracket";
    // Program structure.
    MissingModel = "E0100", "no `model` block";
    DuplicateBlock = "E0101", "block given twice";
    DuplicateDecl = "E0102", "name declared twice";
    ImportFailed = "E0103", "import cannot be read";
    MisplacedStmt = "E0104", "statement not allowed here";
    NotAssignable = "E0105", "cannot assign to this";
    MissingReturn = "E0106", "function or layer may end without `return`";
    // Names.
    UnknownName = "E0200", "unknown name";
    UnknownFunction = "E0201", "unknown function";
    UnknownDistribution = "E0202", "unknown distribution";
    UnknownArgument = "E0203", "unknown named argument";
    BadArgumentOrder = "E0204", "argument given twice or out of order";
    UnknownType = "E0205", "unknown type";
    ReservedName = "E0206", "name is reserved";
    UnreadParameter = "E0207", "parameter without a prior that the model never reads (a warning)";
    IntDivision = "E0208", "a number divided by an int, rounding to zero (a warning)";
    // Types, kinds and shapes.
    TypeMismatch = "E0300", "type mismatch";
    ArgumentCount = "E0301", "wrong number of arguments";
    WrongKind = "E0302", "wrong kind of value";
    IntRequired = "E0303", "int required";
    SizeNotData = "E0304", "size must be known from data";
    ShapeMismatch = "E0305", "shape mismatch";
    IntParameter = "E0306", "parameter of int type";
    BadBounds = "E0307", "bounds on a type that cannot have them";
    ConditionOnParameter = "E0308", "condition depends on a parameter";
    BadIndex = "E0309", "invalid indexing";
    NotADistribution = "E0310", "right of `~` is not a distribution";
    NotAFunction = "E0311", "called value is not a function";
    DiscreteParameter = "E0312", "discrete distribution on a parameter";
    NotConstant = "E0313", "value must be known at compile time";
    BadOperands = "E0314", "operator not defined for these operands";
    VariateMismatch = "E0315", "variate does not fit the distribution";
    // Elaboration.
    RecursionLimit = "E0400", "recursion does not end";
    LayerInFn = "E0401", "layer called where parameters cannot be made";
    ShapeVarConflict = "E0402", "shape variable bound to two sizes";
    LayerArgOutOfRange = "E0403", "layer argument outside its declared bounds";
    // Data.
    DataFileUnreadable = "E0500", "data file cannot be read";
    DataMalformed = "E0501", "data file is not valid JSON or CSV";
    DataMissing = "E0502", "data variable missing";
    DataShape = "E0503", "data has the wrong shape";
    DataNotInt = "E0504", "real where an int is needed";
    DataNotFinite = "E0505", "non-finite number in data";
    DataOutOfRange = "E0506", "data value outside its declared bounds";
    DataNegativeSize = "E0507", "negative size";
    NoDataFile = "E0508", "the model needs data and none was given";
    BadPoint = "E0509", "parameter values cannot be used";
    // Lowering, once sizes are numbers.
    BindShape = "E0600", "shapes disagree once the data sizes are known";
    BindIndex = "E0601", "index out of range";
    Unsupported = "E0602", "construct not supported by the compiler yet";
    NotFinite = "E0603", "log density not finite at this point";
    NoInitialPoint = "E0604", "no initial point with a finite log density";
    BadDistArg = "E0605", "distribution parameter outside its domain";
    DivByZero = "E0606", "integer division by zero";
    TooLarge = "E0607", "value too large for memory";
    // Minibatches of observation rows.
    NoRows = "E0610", "observation rows cannot be found";
    ParamPerRow = "E0611", "parameter with a value per observation row";
    RowsCoupled = "E0612", "likelihood couples observation rows";
    RowCountUsed = "E0613", "row count used as a number";
    NoRowsToTrain = "E0614", "no observation rows to train on";
    // Prediction.
    FitUnusable = "E0700", "fit cannot be used with this model and data";
    NothingToPredict = "E0701", "no observed variable to predict";
    ObservedIsInput = "E0702", "observed variable also read as an input";
    NoSuchColumn = "E0703", "no such column of a fractal";
    NoSuchVariable = "E0704", "no such variable in the fit";
}

impl Default for Format {
    fn default() -> Format {
        Format::Human { color: false }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggestions_are_close_and_not_random() {
        assert_eq!(suggest("normmal", ["normal", "poisson"]), Some("normal"));
        assert_eq!(suggest("modle", ["model", "data"]), Some("model"));
        assert_eq!(suggest("n", ["N", "D"]), Some("N"));
        assert_eq!(suggest("y", ["N", "D"]), None);
        assert_eq!(suggest("mu", ["nu", "sigma"]), None);
        assert_eq!(suggest("sigam", ["sigma", "mu"]), Some("sigma"));
        assert_eq!(suggest("bernouli_logit", ["bernoulli_logit", "bernoulli"]), Some("bernoulli_logit"));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One labelled span.
#[derive(Clone, Debug)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where it happened. `None` only for errors about a whole file that could not be read.
    pub span: Option<Span>,
    /// Text for the primary label.
    pub label: String,
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning: the program is valid, but likely not what was meant.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, span, message) }
    }

    /// An error with no place in a source file (e.g. a file that cannot be opened).
    pub fn error_nowhere(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: None,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// The sink every pass writes into.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Record a diagnostic; an exact repeat (same code, place and message, as from one
    /// layer expanded several times) is recorded once.
    pub fn push(&mut self, d: Diagnostic) {
        if self.items.iter().any(|x| x.code == d.code && x.span == d.span && x.message == d.message) {
            return;
        }
        self.items.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Drop the diagnostics recorded after the first `from` whose code is `code`.
    pub fn drop_after(&mut self, from: usize, code: Code) {
        let mut i = 0;
        self.items.retain(|d| {
            i += 1;
            i <= from || d.code != code
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Diagnostics in source order (file, then position), errors without a place first.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut v: Vec<&Diagnostic> = self.items.iter().collect();
        v.sort_by_key(|d| d.span.map(|s| (s.file, s.lo, s.hi)));
        v
    }
}

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ariadne reports; `color` adds ANSI colours.
    Human { color: bool },
    /// One JSON object per line.
    Json,
}

/// Render every diagnostic to a string in source order.
pub fn render(diags: &Diagnostics, sources: &SourceMap, format: Format) -> String {
    let mut out = String::new();
    for d in diags.sorted() {
        match format {
            Format::Human { color } => out.push_str(&render_human(d, sources, color)),
            Format::Json => {
                out.push_str(&render_json(d, sources).to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// The longest line of a data file a diagnostic shows as an excerpt.
const MAX_SHOWN_LINE: usize = 400;

fn render_human(d: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    use ariadne::{Color, Config, IndexType, Label as ALabel, Report, ReportKind};
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    // A line of a data file too long to show (one written on one line) is named by its
    // position.
    let too_long = d.span.filter(|sp| {
        let file = sources.get(sp.file);
        let data = [".json", ".csv"].iter().any(|e| file.name.to_ascii_lowercase().ends_with(e));
        let text = &file.text;
        if !data {
            return false;
        }
        let at = (sp.lo as usize).min(text.len());
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        end - start > MAX_SHOWN_LINE
    });
    if let Some(sp) = too_long {
        let (line, col) = sources.line_col(sp.file, sp.lo);
        let mut shown = d.clone();
        shown.span = None;
        let label = if d.label.is_empty() { String::new() } else { format!(": {}", d.label) };
        shown.message = format!("{} (at {}:{line}:{col}{label})", d.message, sources.get(sp.file).name);
        return render_human(&shown, sources, color);
    }
    let Some(span) = d.span else {
        let kind = match d.severity {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        };
        let mut s = format!("[{}] {kind}: {}\n", d.code, d.message);
        for n in &d.notes {
            s.push_str(&format!("    Note: {n}\n"));
        }
        if let Some(h) = &d.help {
            s.push_str(&format!("    Help: {h}\n"));
        }
        return s;
    };
    let name = |s: Span| sources.get(s.file).name.clone();
    let clamp = |s: Span| {
        let len = sources.get(s.file).text.len();
        let lo = (s.lo as usize).min(len);
        let hi = (s.hi as usize).min(len).max(lo);
        (name(s), lo..hi)
    };
    let config = Config::default().with_index_type(IndexType::Byte).with_color(color);
    let mut report = Report::build(kind, clamp(span)).with_config(config).with_code(d.code).with_message(&d.message);
    let primary_color = if color { Color::Red } else { Color::Primary };
    // Labels in the primary's file in the order of their positions, those in other files
    // after: a label above an earlier one would open a second excerpt of the same file, headed
    // with the primary's position.
    let order = |s: Span| {
        let other = if s.file == span.file { 0 } else { 1 << 30 };
        other + (s.lo as i32).min((1 << 30) - 1)
    };
    let mut label = ALabel::new(clamp(span)).with_color(primary_color).with_order(order(span));
    if !d.label.is_empty() {
        label = label.with_message(&d.label);
    }
    report = report.with_label(label);
    for l in &d.secondary {
        let c = if color { Color::Blue } else { Color::Primary };
        report = report
            .with_label(ALabel::new(clamp(l.span)).with_message(&l.message).with_color(c).with_order(order(l.span)));
    }
    for n in &d.notes {
        report = report.with_note(n);
    }
    if let Some(h) = &d.help {
        report = report.with_help(h);
    }
    let report = report.finish();
    let mut files: Vec<(String, String)> = Vec::new();
    for s in std::iter::once(span).chain(d.secondary.iter().map(|l| l.span)) {
        let n = name(s);
        if !files.iter().any(|(f, _)| *f == n) {
            files.push((n, sources.get(s.file).text.clone()));
        }
    }
    let mut buf = Vec::new();
    if report.write(ariadne::sources(files), &mut buf).is_err() {
        return format!("{}[{}]: {}\n", kind_word(d.severity), d.code, d.message);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn kind_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn span_json(span: Span, sources: &SourceMap) -> serde_json::Value {
    let (line, col) = sources.line_col(span.file, span.lo);
    let (end_line, end_col) = sources.line_col(span.file, span.hi);
    serde_json::json!({
        "file": sources.get(span.file).name,
        "byte_start": span.lo,
        "byte_end": span.hi,
        "line_start": line,
        "column_start": col,
        "line_end": end_line,
        "column_end": end_col,
    })
}

/// The JSON form of one diagnostic (one line of `--message-format json`).
pub fn render_json(d: &Diagnostic, sources: &SourceMap) -> serde_json::Value {
    let mut labels = Vec::new();
    if let Some(span) = d.span {
        let mut v = span_json(span, sources);
        v["primary"] = true.into();
        v["label"] = d.label.clone().into();
        labels.push(v);
    }
    for l in &d.secondary {
        let mut v = span_json(l.span, sources);
        v["primary"] = false.into();
        v["label"] = l.message.clone().into();
        labels.push(v);
    }
    serde_json::json!({
        "severity": kind_word(d.severity),
        "code": d.code.as_str(),
        "message": d.message,
        "spans": labels,
        "notes": d.notes,
        "help": d.help,
    })
}

/// The closest candidate to `name` by edit distance, for "did you mean" help lines.
/// Very short names only match when they differ in case or by a swap (`n` for `N`), so a
/// one-letter typo is not answered with an unrelated one-letter name.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    let len = name.chars().count();
    for c in candidates {
        if c == name {
            continue;
        }
        let close = if c.eq_ignore_ascii_case(name) {
            true
        } else if len <= 2 {
            let mut a: Vec<char> = name.chars().collect();
            let mut b: Vec<char> = c.chars().collect();
            a.sort_unstable();
            b.sort_unstable();
            a == b
        } else {
            let dist = strsim::damerau_levenshtein(name, c);
            dist <= (len / 3).max(1) || (strsim::normalized_damerau_levenshtein(name, c) >= 0.75 && dist <= 3)
        };
        if !close {
            continue;
        }
        let score = if c.eq_ignore_ascii_case(name) { 2.0 } else { strsim::normalized_damerau_levenshtein(name, c) };
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `help: did you mean `x`?` when there is a close candidate.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    suggest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}
