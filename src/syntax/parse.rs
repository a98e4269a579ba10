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

/// Parse a whole file. Always returns a program (possibly with `Error` nodes); errors go to `diags`.
pub fn parse_program(file: FileId, src: &str, diags: &mut Diagnostics) -> Program {
    let Some(tokens) = lex(file, src, diags) else {
        return Program::default();
    };
    let mut recovered: Vec<ErrorRecovery<usize, Tok, UserError>> = Vec::new();
    let result = grammar::ProgramParser::new().parse(file, &mut recovered, tokens.into_iter().map(Ok::<_, UserError>));
    let eof = src.len();
    for r in recovered {
        diags.push(syntax_error(file, r.error, eof));
    }
    match result {
        Ok(p) => p,
        Err(e) => {
            diags.push(syntax_error(file, e, eof));
            Program::default()
        }
    }
}

/// Parse a single expression (used by the REPL and tests).
pub fn parse_expr(file: FileId, src: &str, diags: &mut Diagnostics) -> Option<Expr> {
    let tokens = lex(file, src, diags)?;
    let mut recovered = Vec::new();
    let result = grammar::ExprParser::new().parse(file, &mut recovered, tokens.into_iter().map(Ok::<_, UserError>));
    for r in recovered {
        diags.push(syntax_error(file, r.error, src.len()));
    }
    match result {
        Ok(e) => Some(e),
        Err(e) => {
            diags.push(syntax_error(file, e, src.len()));
            None
        }
    }
}

const BLOCK_KEYWORDS: &[&str] = &["data", "params", "model", "generated", "fn", "layer", "import"];
const STMT_KEYWORDS: &[&str] = &["let", "var", "for", "if", "return", "target", "param"];

fn syntax_error(file: FileId, e: ParseError<usize, Tok, UserError>, eof: usize) -> Diagnostic {
    match e {
        ParseError::UnrecognizedToken { token: (lo, tok, hi), expected } => {
            let span = Span::new(file, lo, hi);
            let (list, exp) = describe_expected(&expected);
            let mut d = Diagnostic::error(Code::UnexpectedToken, span, format!("unexpected {}", tok.describe()))
                .with_label(if list.is_empty() { "not expected here".to_string() } else { format!("expected {list}") });
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
            format!("expression nested more than {MAX_EXPR_DEPTH} levels deep"),
        )
        .with_label("too deep")
        .with_help("split the expression with `let` bindings"),
        ParseError::User { error: UserError::NotAName { lo, hi } } => {
            Diagnostic::error(Code::UnexpectedToken, Span::new(file, lo, hi), "expected a name")
                .with_label("only a plain name can stand here")
                .with_help("declarations are written `name: type`, named arguments `name = value`")
        }
    }
}

fn hint_for(tok: &Tok, expected: &[String]) -> Option<String> {
    let has = |s: &str| expected.iter().any(|e| e == s);
    match tok {
        Tok::Assign if has("~") => Some("a prior is given with `~`, as in `mu: real ~ normal(0, 1)`".into()),
        Tok::Assign if has("==") => Some("comparison is `==`; `let` binds a name, `=` assigns to a `var`".into()),
        Tok::Colon if has("=") => Some("a mutable local is declared with `var name: type`".into()),
        Tok::Sep if has(")") || has("]") => Some("a bracket opened on this line is not closed".into()),
        Tok::Ident(_) if has(";") => Some("put each statement on its own line or separate them with `;`".into()),
        Tok::Lt if has("[") => Some("bounds come before sizes: `vector<lower=0>[N]`".into()),
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
