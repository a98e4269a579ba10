//! Parsing one file: tokens (with the layout filter) → lalrpop grammar → [`Program`].
//!
//! Syntax errors are recovered at statement and item level (lalrpop's `!`), so one run
//! reports every independent mistake; each becomes an E001x diagnostic saying what was
//! expected.

use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use crate::syntax::ast::{Expr, ExprKind, Ident, Program, MAX_EXPR_DEPTH};
use crate::syntax::token::{lex, Tok};
use lalrpop_util::{ErrorRecovery, ParseError};

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused_parens, unused_imports)]
    grammar,
    "/bnn.rs"
);

/// Errors raised by grammar actions.
#[derive(Clone, Debug, PartialEq)]
pub enum UserError {
    /// An expression nested deeper than [`MAX_EXPR_DEPTH`].
    TooDeep { lo: usize, hi: usize },
    /// Something other than a plain name before `:` in a declaration or `=` in a named argument.
    NotAName { lo: usize, hi: usize },
    /// A recognised mistake the grammar recovered from: message, label, help.
    Hint { lo: usize, hi: usize, message: String, label: String, help: String },
}

/// Record a recognised mistake (E0010) and carry on parsing.
pub fn hint(lo: usize, hi: usize, message: &str, label: &str, help: &str) -> ErrorRecovery<usize, Tok, UserError> {
    ErrorRecovery {
        error: ParseError::User {
            error: UserError::Hint { lo, hi, message: message.into(), label: label.into(), help: help.into() },
        },
        dropped_tokens: Vec::new(),
    }
}

/// The name in `name: type` or `name = value`, which the grammar parses as an expression.
pub fn ident_of(e: Expr) -> Result<Ident, ErrorRecovery<usize, Tok, UserError>> {
    match e.kind {
        ExprKind::Name(name) => Ok(Ident { name, span: e.span }),
        _ => Err(ErrorRecovery {
            error: ParseError::User { error: UserError::NotAName { lo: e.span.lo as usize, hi: e.span.hi as usize } },
            dropped_tokens: Vec::new(),
        }),
    }
}

/// Build an expression node, refusing trees deeper than [`MAX_EXPR_DEPTH`].
pub fn mk(file: FileId, l: usize, r: usize, kind: ExprKind) -> Result<Expr, ParseError<usize, Tok, UserError>> {
    let e = Expr::new(kind, Span::new(file, l, r));
    if e.depth > MAX_EXPR_DEPTH {
        return Err(ParseError::User { error: UserError::TooDeep { lo: l, hi: r } });
    }
    Ok(e)
}

/// Parse a whole file. Always returns a program (possibly with `Error` nodes); errors go to
/// `diags`. `None` when the file was rejected before parsing (nesting too deep).
pub fn parse_program(file: FileId, src: &str, diags: &mut Diagnostics) -> Program {
    parse_program_checked(file, src, diags).unwrap_or_default()
}

/// As [`parse_program`], but `None` when the file could not be parsed at all (so no
/// further checking should be reported on it).
pub fn parse_program_checked(file: FileId, src: &str, diags: &mut Diagnostics) -> Option<Program> {
    let lexed = lex(file, src, diags)?;
    let mut recovered: Vec<ErrorRecovery<usize, Tok, UserError>> = Vec::new();
    let tokens = lexed.tokens.clone();
    let result =
        grammar::ProgramParser::new().parse(file, &mut recovered, lexed.tokens.into_iter().map(Ok::<_, UserError>));
    let ctx =
        ErrorContext { file, eof: src.len(), tokens: &tokens, reported: &lexed.reported, unclosed: lexed.unclosed };
    for r in recovered {
        ctx.report(r.error, diags);
    }
    match result {
        Ok(p) => Some(p),
        Err(e) => {
            // The parser could not recover (the file ends mid-construct): what it had is
            // lost, so nothing more is checked or reported.
            ctx.report(e, diags);
            None
        }
    }
}

/// Parse a single expression (used by elaboration and tests).
pub fn parse_expr(file: FileId, src: &str, diags: &mut Diagnostics) -> Option<Expr> {
    let lexed = lex(file, src, diags)?;
    let tokens = lexed.tokens.clone();
    let mut recovered = Vec::new();
    let result =
        grammar::ExprParser::new().parse(file, &mut recovered, lexed.tokens.into_iter().map(Ok::<_, UserError>));
    let ctx =
        ErrorContext { file, eof: src.len(), tokens: &tokens, reported: &lexed.reported, unclosed: lexed.unclosed };
    for r in recovered {
        ctx.report(r.error, diags);
    }
    match result {
        Ok(e) => Some(e),
        Err(e) => {
            ctx.report(e, diags);
            None
        }
    }
}

/// What a syntax error is reported against.
struct ErrorContext<'a> {
    file: FileId,
    eof: usize,
    tokens: &'a [(usize, Tok, usize)],
    /// Positions the layout filter already reported (bracket errors).
    reported: &'a [usize],
    unclosed: bool,
}

impl ErrorContext<'_> {
    fn report(&self, e: ParseError<usize, Tok, UserError>, diags: &mut Diagnostics) {
        // The filter already said this: an unmatched bracket, or the file ending inside one.
        match &e {
            ParseError::UnrecognizedToken { token: (lo, _, _), .. } if self.reported.contains(lo) => return,
            ParseError::UnrecognizedEof { .. } if self.unclosed => return,
            _ => {}
        }
        diags.push(syntax_error(self.file, e, self.eof, self.tokens));
    }
}

const BLOCK_KEYWORDS: &[&str] = &["data", "params", "model", "generated", "fn", "layer", "import"];
const STMT_KEYWORDS: &[&str] = &["let", "var", "for", "if", "return", "target", "param"];

fn syntax_error(
    file: FileId,
    e: ParseError<usize, Tok, UserError>,
    eof: usize,
    tokens: &[(usize, Tok, usize)],
) -> Diagnostic {
    match e {
        ParseError::UnrecognizedToken { token: (lo, tok, hi), expected } => {
            let span = Span::new(file, lo, hi);
            let (list, exp) = describe_expected(&expected);
            let mut d = Diagnostic::error(Code::UnexpectedToken, span, format!("unexpected {}", tok.describe()))
                .with_label(if list.is_empty() { "not expected here".to_string() } else { format!("expected {list}") });
            // A misspelt keyword shows up as an identifier followed by something unexpected:
            // `lett mu = ...`.
            // The statement's first word, when the error comes within its first few tokens.
            let before: Vec<&Tok> = tokens.iter().take_while(|(l, _, _)| *l < lo).map(|(_, t, _)| t).collect();
            let start = before.iter().rposition(|t| matches!(t, Tok::Sep | Tok::LBrace)).map(|i| i + 1).unwrap_or(0);
            // Stan statements bnnc does not have, by the statement's first word.
            if let Some(Tok::Ident(word)) = before.get(start) {
                if let Some(help) = stan_statement(word) {
                    return d.with_help(help);
                }
            }
            // Stan's truncation, `y ~ normal(mu, s) T[lo, hi]`.
            let next = tokens.iter().find(|(l, _, _)| *l >= hi).map(|(_, t, _)| t);
            if matches!((&tok, next), (Tok::Ident(t), Some(Tok::LBracket)) if t == "T") && before.contains(&&Tok::Tilde) {
                return d.with_help("bnnc has no truncation `T[lo, hi]`: add the density and subtract the log probability of the range, as `target += normal_lpdf(y | mu, s) - normal_lccdf(lo | mu, s)` for a lower bound; for both, subtract `lh + log1m(exp(ll - lh))`, where `lh` and `ll` are the `_lcdf`s at the upper and lower bounds");
            }
            if before.len() - start <= 3 {
                if let Some(Tok::Ident(word)) = before.get(start) {
                    if let Some(k) = crate::diag::suggest(word.as_str(), STMT_KEYWORDS.iter().copied()) {
                        d = d.with_help(format!("`{word}` is not a keyword: did you mean `{k}`?"));
                    }
                }
            }
            if d.help.is_some() {
                return d;
            }
            // Stan's `vector[N] y`: a sized type, then the name.
            if let (Tok::Ident(name), Some(Tok::Ident(ty)), Some(Tok::RBracket)) =
                (&tok, before.get(start), before.last())
            {
                if matches!(ty.as_str(), "vector" | "matrix" | "array" | "tensor" | "simplex" | "ordered" | "row_vector") {
                    let dims: Vec<String> = before[start + 1..].iter().map(|t| t.to_string()).collect();
                    return d.with_help(format!(
                        "declarations are written `name: type`, as `{name}: {ty}{}`",
                        dims.join("").replace(',', ", ")
                    ));
                }
            }
            if let Tok::Ident(name) = &tok {
                if exp.iter().any(|e| e == "model") {
                    d = d.with_help_opt(did_you_mean(name, BLOCK_KEYWORDS.iter().copied()));
                } else if exp.iter().any(|e| e == "let") {
                    d = d.with_help_opt(did_you_mean(name, STMT_KEYWORDS.iter().copied()));
                }
            }
            if d.help.is_none() {
                d = d.with_help_opt(hint_for(&tok, &exp));
            }
            d
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let lo = location.min(eof);
            let (list, _) = describe_expected(&expected);
            Diagnostic::error(Code::UnexpectedEof, Span::new(file, lo.saturating_sub(1), lo), "unexpected end of file")
                .with_label(if list.is_empty() { "the file ends here".to_string() } else { format!("expected {list}") })
        }
        ParseError::ExtraToken { token: (lo, tok, hi) } => {
            Diagnostic::error(Code::UnexpectedToken, Span::new(file, lo, hi), format!("unexpected {}", tok.describe()))
                .with_label("nothing more was expected")
        }
        ParseError::InvalidToken { location } => {
            Diagnostic::error(Code::InvalidToken, Span::new(file, location, location + 1), "invalid token")
        }
        ParseError::User { error: UserError::TooDeep { lo, hi } } => Diagnostic::error(
            Code::TooDeep,
            Span::new(file, lo, hi),
            format!("expression too deep: more than {MAX_EXPR_DEPTH} operations nested in one another"),
        )
        .with_label("too deep")
        .with_help("each operator in a chain like `a + b + c + ...` nests one level: add up a vector with `sum(...)`, or split the expression with `let` bindings"),
        ParseError::User { error: UserError::Hint { lo, hi, message, label, help } } => {
            Diagnostic::error(Code::UnexpectedToken, Span::new(file, lo, hi), message).with_label(label).with_help(help)
        }
        ParseError::User { error: UserError::NotAName { lo, hi } } => {
            Diagnostic::error(Code::UnexpectedToken, Span::new(file, lo, hi), "expected a name")
                .with_label("only a plain name can stand here")
                .with_help("declarations are written `name: type`, named arguments `name = value`")
        }
    }
}

/// What to write instead of a Stan statement bnnc does not have, by its first word.
fn stan_statement(word: &str) -> Option<&'static str> {
    match word {
        "increment_log_prob" => Some("Stan's old `increment_log_prob(e)` is `target += e`"),
        "print" => Some("bnnc has no `print`: evaluate the model at a point with `bnnc logp`, or inspect a fit's values with `bnnc repl --fit DIR`"),
        "reject" | "fatal_error" => Some("bnnc has no `reject`: declare the bounds a value must keep in its type (`sigma: real<lower=0>`); data are checked against theirs when they are read"),
        _ => None,
    }
}

fn hint_for(tok: &Tok, expected: &[String]) -> Option<String> {
    let has = |s: &str| expected.iter().any(|e| e == s);
    match tok {
        Tok::Assign if has("~") => Some("in `params` a prior is given with `~` (`mu: real ~ normal(0, 1)`); a local is declared with `var x: real = 0`".into()),
        Tok::Assign if has("==") => Some("comparison is `==`; `let` binds a name, `=` assigns to a `var`".into()),
        Tok::Colon if has("=") => Some("a mutable local is declared with `var name: type`".into()),
        Tok::Colon if has("..") => Some("a range is `lo..hi`, from lo up to hi − 1, and indices count from 0: `for i in 0..N` where Stan writes `for (i in 1:N)`".into()),
        Tok::Sep if has(")") || has("]") => Some("a bracket opened on this line is not closed".into()),
        Tok::Ident(_) | Tok::Target | Tok::Let | Tok::Var | Tok::For | Tok::If | Tok::Return if has(";") => {
            Some("put each statement on its own line or separate them with `;`".into())
        }
        Tok::Bar if has("+") => Some("logical or is `||`; a single `|` only separates the variate in `normal_lpdf(y | mu, sigma)`".into()),
        Tok::LtBound if has("[") => Some("bounds come before sizes: `vector<lower=0>[N]`".into()),
        Tok::LBracket if has("(") && has("-") => Some("there are no vector literals: give the values as data (`alpha: vector[3]` in `data`), or build them with `rep_vector(x, n)`".into()),
        _ => None,
    }
}

/// Human form of lalrpop's expected-terminal list, and the bare names.
fn describe_expected(expected: &[String]) -> (String, Vec<String>) {
    let names: Vec<String> = expected.iter().map(|e| e.trim_matches('"').to_string()).collect();
    let ops = ["+", "-", "*", "/", "%", "^", "@", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "?"];
    let has_ops = ops.iter().filter(|o| names.iter().any(|n| n == *o)).count() >= 4;
    let mut shown: Vec<String> = Vec::new();
    if has_ops {
        shown.push("an operator".to_string());
    }
    for n in &names {
        if has_ops && ops.contains(&n.as_str()) {
            continue;
        }
        let s = match n.as_str() {
            ";" => "end of statement".to_string(),
            "identifier" | "integer" | "number" | "string" => format!(
                "{}",
                if n == "integer" {
                    "an integer"
                } else if n == "identifier" {
                    "a name"
                } else if n == "number" {
                    "a number"
                } else {
                    "a string"
                }
            ),
            other => format!("`{other}`"),
        };
        if !shown.contains(&s) {
            shown.push(s);
        }
    }
    let list = match shown.len() {
        0 => String::new(),
        1 => shown[0].clone(),
        n if n <= 8 => format!("{} or {}", shown[..n - 1].join(", "), shown[n - 1]),
        _ => format!("{}, ...", shown[..7].join(", ")),
    };
    (list, names)
}
