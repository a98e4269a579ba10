//! Tokens (logos) and the layout filter that turns newlines into statement separators.
//!
//! SPEC §2: a statement ends at a newline or `;`, except inside `( )` or `[ ]`, and after a
//! binary operator or a comma. [`lex`] applies that rule once, here, so the grammar only
//! ever sees a single [`Tok::Sep`] between statements and none where a statement continues.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use logos::{FilterResult, Logos};
use std::fmt;

/// Deepest bracket nesting accepted. Deeper input is an error (E0012), never a stack overflow
/// in a later recursive pass.
pub const MAX_NESTING: usize = 200;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum LexError {
    #[default]
    Invalid,
    BadNumber,
    UnterminatedComment,
}

#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Tok {
    #[token("\n")]
    #[regex(r"/\*([^*]|\*+[^*/])*\*+/", block_comment)]
    Newline,
    #[token("/*", unterminated_comment)]
    UnterminatedComment,
    /// `# ...`: not a comment in bnnc; reported (E0003) and skipped to the end of the line.
    #[regex(r"#[^\n]*", allow_greedy = true)]
    HashComment,
    /// A lone `&`: reported (E0003) and read as `&&`.
    #[token("&")]
    Amp,
    /// A top-level `name {` whose name is not a block keyword (made by the layout filter).
    BlockName(String),
    /// `<` opening a bound list, as in `real<lower=0>` (made by the layout filter).
    LtBound,
    /// A statement separator made by the layout filter from newlines and `;`.
    #[token(";")]
    Sep,

    #[token("data")]
    Data,
    #[token("params")]
    Params,
    #[token("model")]
    Model,
    #[token("generated")]
    Generated,
    #[token("fn")]
    Fn,
    #[token("layer")]
    Layer,
    #[token("import")]
    Import,
    #[token("let")]
    Let,
    #[token("var")]
    Var,
    #[token("param")]
    Param,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("return")]
    Return,
    #[token("array")]
    Array,
    #[token("target")]
    Target,

    // Identifiers are ASCII; other letters lex as an identifier too (and are reported,
    // E0003), so one stray `σ` does not derail the parse.
    #[regex(r"[\p{XID_Start}_][\p{XID_Continue}]*", |lex| lex.slice().to_string())]
    Ident(String),
    #[regex(r"[0-9]+", int_literal)]
    Int(i64),
    #[regex(r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?", real_literal)]
    #[regex(r"\.[0-9]+([eE][+-]?[0-9]+)?", real_literal)]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+", real_literal)]
    Real(f64),
    #[regex(r#""[^"\n]*""#, |lex| { let s = lex.slice(); s[1..s.len() - 1].to_string() })]
    Str(String),

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("~")]
    Tilde,
    #[token("=")]
    Assign,
    #[token("+=")]
    PlusAssign,
    #[token("-=")]
    MinusAssign,
    #[token("*=")]
    StarAssign,
    #[token("/=")]
    SlashAssign,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("^")]
    Caret,
    #[token("@")]
    At,
    #[token("!")]
    Bang,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    /// Separates the variate from the parameters in `normal_lpdf(y | mu, sigma)` (Stan's form).
    #[token("|")]
    Bar,
    #[token("?")]
    Question,
    #[token("..")]
    DotDot,
    #[token("->")]
    Arrow,
}

fn block_comment(lex: &mut logos::Lexer<Tok>) -> logos::Filter<()> {
    // A block comment that spans lines ends a statement like the newline it contains.
    if lex.slice().contains('\n') {
        logos::Filter::Emit(())
    } else {
        logos::Filter::Skip
    }
}

fn unterminated_comment(lex: &mut logos::Lexer<Tok>) -> FilterResult<(), LexError> {
    let rest = lex.remainder().len();
    lex.bump(rest);
    FilterResult::Error(LexError::UnterminatedComment)
}

fn int_literal(lex: &mut logos::Lexer<Tok>) -> Result<i64, LexError> {
    lex.slice().parse().map_err(|_| LexError::BadNumber)
}

fn real_literal(lex: &mut logos::Lexer<Tok>) -> Result<f64, LexError> {
    match lex.slice().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(LexError::BadNumber),
    }
}

impl Tok {
    /// After these tokens a newline does not end the statement (SPEC §2).
    fn continues_line(&self) -> bool {
        use Tok::*;
        matches!(
            self,
            LParen
                | LBracket
                | LBrace
                | LtBound
                | Bar
                | Comma
                | Colon
                | Tilde
                | Assign
                | PlusAssign
                | MinusAssign
                | StarAssign
                | SlashAssign
                | EqEq
                | NotEq
                | Lt
                | Le
                | Gt
                | Ge
                | Plus
                | Minus
                | Star
                | Slash
                | Percent
                | Caret
                | At
                | Bang
                | AndAnd
                | OrOr
                | Question
                | DotDot
                | Arrow
                | Sep
        )
    }

    /// How the token is named in "expected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Int(i) => format!("integer `{i}`"),
            Tok::Real(r) => format!("number `{r}`"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Sep => "end of statement".to_string(),
            Tok::Newline => "newline".to_string(),
            other => format!("`{other}`"),
        }
    }
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Tok::*;
        let s = match self {
            Newline => "\\n",
            UnterminatedComment => "/*",
            Sep => ";",
            HashComment => "#",
            Amp => "&",
            BlockName(s) => return f.write_str(s),
            LtBound => "<",
            Data => "data",
            Params => "params",
            Model => "model",
            Generated => "generated",
            Fn => "fn",
            Layer => "layer",
            Import => "import",
            Let => "let",
            Var => "var",
            Param => "param",
            For => "for",
            In => "in",
            If => "if",
            Else => "else",
            Return => "return",
            Array => "array",
            Target => "target",
            Ident(s) => return f.write_str(s),
            Int(i) => return write!(f, "{i}"),
            Real(r) => return write!(f, "{r:?}"),
            Str(s) => return write!(f, "\"{s}\""),
            LBrace => "{",
            RBrace => "}",
            LParen => "(",
            RParen => ")",
            LBracket => "[",
            RBracket => "]",
            Comma => ",",
            Colon => ":",
            Tilde => "~",
            Assign => "=",
            PlusAssign => "+=",
            MinusAssign => "-=",
            StarAssign => "*=",
            SlashAssign => "/=",
            EqEq => "==",
            NotEq => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            Plus => "+",
            Minus => "-",
            Star => "*",
            Slash => "/",
            Percent => "%",
            Caret => "^",
            At => "@",
            Bang => "!",
            AndAnd => "&&",
            OrOr => "||",
            Bar => "|",
            Question => "?",
            DotDot => "..",
            Arrow => "->",
        };
        f.write_str(s)
    }
}

/// A token with its byte range.
pub type Spanned = (usize, Tok, usize);

/// Raw logos tokens, newlines included. Lexical errors are reported; where a likely
/// meaning exists a substitute token is kept (a number for an out-of-range literal, `&&`
/// for `&`, the identifier for a non-ASCII name) so parsing carries on without follow-on
/// errors.
pub fn lex_raw(file: FileId, src: &str, diags: &mut Diagnostics) -> Vec<Spanned> {
    let mut out = Vec::new();
    let mut lexer = Tok::lexer(src);
    while let Some(res) = lexer.next() {
        let r = lexer.span();
        let span = Span::new(file, r.start, r.end);
        let text = &src[r.clone()];
        match res {
            Ok(Tok::HashComment) => diags.push(
                Diagnostic::error(
                    Code::InvalidToken,
                    Span::new(file, r.start, r.start + 1),
                    "`#` does not start a comment",
                )
                .with_label("not a token in bnnc")
                .with_help("comments start with `//` or are enclosed in `/* */`"),
            ),
            Ok(Tok::Amp) => {
                diags.push(
                    Diagnostic::error(Code::InvalidToken, span, "`&` is not an operator")
                        .with_label("read as `&&`")
                        .with_help("logical and is `&&`"),
                );
                out.push((r.start, Tok::AndAnd, r.end));
            }
            Ok(Tok::Ident(name)) if !name.is_ascii() => {
                diags.push(
                    Diagnostic::error(Code::InvalidToken, span, format!("`{name}` is not a valid name"))
                        .with_label("names are ASCII letters, digits and `_`")
                        .with_help("spell Greek letters out: `sigma`, `mu`"),
                );
                out.push((r.start, Tok::Ident(name), r.end));
            }
            Ok(t) => out.push((r.start, t, r.end)),
            Err(LexError::Invalid) => {
                let shown: String = text.chars().take(1).collect();
                let mut d = Diagnostic::error(
                    Code::InvalidToken,
                    span,
                    format!("unexpected character `{}`", shown.escape_debug()),
                )
                .with_label("no token starts with this character");
                if text.starts_with('\'') || text.starts_with('"') {
                    d = d.with_help("strings are written in double quotes on one line, and only `import` takes one");
                }
                // Stan's elementwise `.*` and `./`: kept as `*` and `/`, which are elementwise here.
                let after = src.get(r.end..).and_then(|t| t.chars().next());
                if text == "." && matches!(after, Some('*' | '/')) {
                    let op = if after == Some('*') { "*" } else { "/" };
                    d = d
                        .with_label(format!("`.{op}` is Stan's elementwise operator"))
                        .with_help(format!("`{op}` is elementwise in bnnc (`@` is the matrix product): write `{op}`"));
                }
                diags.push(d);
            }
            Err(LexError::BadNumber) => {
                let is_real = text.contains(['.', 'e', 'E']);
                diags.push(
                    Diagnostic::error(Code::BadNumber, span, format!("number `{text}` is out of range"))
                        .with_label("too large to represent")
                        .with_help(if is_real {
                            "reals must be below about 1.8e308".to_string()
                        } else {
                            "integers must fit in 64 bits (below 9223372036854775808); write large reals with a decimal point or exponent, like `1e20`".to_string()
                        }),
                );
                out.push((r.start, if is_real { Tok::Real(0.0) } else { Tok::Int(0) }, r.end));
            }
            Err(LexError::UnterminatedComment) => diags.push(
                Diagnostic::error(
                    Code::UnterminatedComment,
                    Span::new(file, r.start, r.start + 2),
                    "block comment is never closed",
                )
                .with_label("this `/*` has no matching `*/`")
                .with_help("close the comment with `*/`"),
            ),
        }
    }
    out
}

/// Tokens ready for the parser, and the byte positions already reported as bracket errors
/// (the parser's own errors there are dropped as duplicates).
pub struct Lexed {
    pub tokens: Vec<Spanned>,
    pub reported: Vec<usize>,
    /// An unclosed bracket was reported: an end-of-file parse error adds nothing.
    pub unclosed: bool,
}

fn bracket_name(t: &Tok) -> &'static str {
    match t {
        Tok::LParen => "(",
        Tok::LBracket => "[",
        Tok::LBrace => "{",
        _ => "<",
    }
}

/// Tokens ready for the parser: newlines turned into separators per SPEC §2, runs of
/// separators collapsed, and none left where they could only be noise (after `{`, before
/// `}` or `else`, at the top level between items). Unmatched and unclosed brackets are
/// reported here (E0013), with both ends named. Returns `None` when nesting exceeds
/// [`MAX_NESTING`] (reported as E0012): such input is rejected before parsing.
pub fn lex(file: FileId, src: &str, diags: &mut Diagnostics) -> Option<Lexed> {
    let raw = lex_raw(file, src, diags);
    let mut out: Vec<Spanned> = Vec::with_capacity(raw.len());
    let mut reported = Vec::new();
    // Open brackets: `(`, `[`, `{`, and `<` when it opens a bound list.
    let mut stack: Vec<(Tok, usize, usize)> = Vec::new();
    let mut pending_sep: Option<(usize, usize)> = None;
    // The last token emitted was a `>` closing a bound list, not a comparison.
    let mut closed_bounds = false;
    let next_real = |i: usize| raw[i + 1..].iter().find(|(_, t, _)| !matches!(t, Tok::Newline)).map(|(_, t, _)| t);
    // The second word of a two-word block name, already taken.
    let mut skip = None;
    for (i, (lo, tok, hi)) in raw.iter().cloned().enumerate() {
        if skip == Some(i) {
            continue;
        }
        let mut hi = hi;
        let is_sep = matches!(tok, Tok::Newline | Tok::Sep);
        if is_sep {
            let inside = matches!(stack.last(), Some((Tok::LParen | Tok::LBracket | Tok::Lt, _, _)));
            let at_top = stack.is_empty();
            let continues = !closed_bounds && out.last().is_none_or(|(_, t, _)| t.continues_line());
            // A CRLF line end starts at its `\r`.
            let lo = if lo > 0 && src.as_bytes()[lo - 1] == b'\r' { lo - 1 } else { lo };
            if matches!(tok, Tok::Sep) && inside {
                // An explicit `;` inside brackets is a syntax error the parser should see.
                out.push((lo, Tok::Sep, hi));
            } else if !(inside || at_top || continues) && pending_sep.is_none() {
                pending_sep = Some((lo, hi));
            }
            continue;
        }
        closed_bounds = false;
        let mut tok = tok;
        match &tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => stack.push((tok.clone(), lo, hi)),
            // `<` followed by `name =` can only open a bound list.
            Tok::Lt
                if matches!(raw.get(i + 1), Some((_, Tok::Ident(_), _)))
                    && matches!(raw.get(i + 2), Some((_, Tok::Assign, _))) =>
            {
                stack.push((Tok::Lt, lo, hi));
                tok = Tok::LtBound;
            }
            Tok::Gt if matches!(stack.last(), Some((Tok::Lt, _, _))) => {
                stack.pop();
                closed_bounds = true;
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                let want = match tok {
                    Tok::RParen => Tok::LParen,
                    Tok::RBracket => Tok::LBracket,
                    _ => Tok::LBrace,
                };
                match stack.iter().rposition(|(t, _, _)| *t == want) {
                    Some(pos) if pos + 1 == stack.len() => {
                        stack.pop();
                    }
                    Some(pos) => {
                        // Brackets opened after the one this closes were never closed.
                        let (open, olo, ohi) = stack[pos + 1].clone();
                        diags.push(
                            Diagnostic::error(
                                Code::UnclosedDelimiter,
                                Span::new(file, olo, ohi),
                                format!("`{}` is never closed", bracket_name(&open)),
                            )
                            .with_label("opened here")
                            .with_secondary(
                                Span::new(file, lo, hi),
                                format!("`{tok}` closes an earlier `{}` first", bracket_name(&want)),
                            )
                            .with_help(format!("add the missing `{}`", closer(&open))),
                        );
                        reported.push(lo);
                        stack.truncate(pos);
                    }
                    // The wrong closer for the innermost open `(` or `[`: one mistake, reported
                    // once, and the parser is given the closer that was meant.
                    None if matches!(stack.last(), Some((Tok::LParen | Tok::LBracket, _, _))) => {
                        let (open, olo, ohi) = stack.pop().expect("checked non-empty");
                        let meant = if open == Tok::LParen { Tok::RParen } else { Tok::RBracket };
                        diags.push(
                            Diagnostic::error(
                                Code::UnclosedDelimiter,
                                Span::new(file, lo, hi),
                                format!("`{tok}` does not close `{}`", bracket_name(&open)),
                            )
                            .with_label(format!("expected `{meant}`"))
                            .with_secondary(Span::new(file, olo, ohi), "opened here"),
                        );
                        reported.push(lo);
                        tok = meant;
                    }
                    None => {
                        diags.push(
                            Diagnostic::error(
                                Code::UnclosedDelimiter,
                                Span::new(file, lo, hi),
                                format!("unmatched `{tok}`"),
                            )
                            .with_label("nothing opened here is closed by this")
                            .with_help(format!("remove it, or add the `{}` it closes", bracket_name(&want))),
                        );
                        reported.push(lo);
                        continue;
                    }
                }
            }
            // A top-level `name {` where an item starts (the file's start, or after the
            // previous item's `}` or an import's path) is a block with a name that is not a
            // keyword.
            Tok::Ident(name)
                if stack.is_empty()
                    && matches!(next_real(i), Some(Tok::LBrace))
                    && out.last().is_none_or(|(_, t, _)| matches!(t, Tok::RBrace | Tok::Str(_))) =>
            {
                tok = Tok::BlockName(name.clone());
            }
            // Stan's two-word block names (`transformed data {`, `generated quantities {`):
            // one block name, which the checker explains.
            Tok::Ident(_) | Tok::Generated
                if stack.is_empty()
                    && matches!(raw.get(i + 2), Some((_, Tok::LBrace, _)))
                    && out.last().is_none_or(|(_, t, _)| matches!(t, Tok::RBrace | Tok::Str(_))) =>
            {
                let second = raw.get(i + 1).map(|(_, t, h)| (t.clone(), *h));
                let name = match (&tok, &second) {
                    (Tok::Ident(a), Some((Tok::Data, _))) if a == "transformed" => Some("transformed data"),
                    (Tok::Ident(a), Some((Tok::Ident(b), _))) if a == "transformed" && b == "parameters" => {
                        Some("transformed parameters")
                    }
                    (Tok::Generated, Some((Tok::Ident(b), _))) if b == "quantities" => Some("generated quantities"),
                    _ => None,
                };
                if let (Some(name), Some((_, second_hi))) = (name, second) {
                    tok = Tok::BlockName(name.to_string());
                    hi = second_hi;
                    skip = Some(i + 1);
                }
            }
            _ => {}
        }
        if stack.len() > MAX_NESTING {
            diags.push(
                Diagnostic::error(
                    Code::TooDeep,
                    Span::new(file, lo, hi),
                    format!("brackets nested more than {MAX_NESTING} deep"),
                )
                .with_label("nesting limit reached here")
                .with_help("split the expression with `let` bindings"),
            );
            return None;
        }
        if let Some((slo, shi)) = pending_sep.take() {
            let drop = matches!(tok, Tok::RBrace | Tok::Else | Tok::LBrace);
            if !drop {
                out.push((slo, Tok::Sep, shi));
            }
        }
        out.push((lo, tok, hi));
    }
    let unclosed = stack.iter().any(|(t, _, _)| *t != Tok::Lt);
    if let Some((open, olo, ohi)) = stack.iter().rev().find(|(t, _, _)| *t != Tok::Lt) {
        diags.push(
            Diagnostic::error(
                Code::UnclosedDelimiter,
                Span::new(file, *olo, *ohi),
                format!("`{}` is never closed", bracket_name(open)),
            )
            .with_label("opened here")
            .with_help(format!("the file ends before its `{}`", closer(open))),
        );
    }
    Some(Lexed { tokens: out, reported, unclosed })
}

fn closer(open: &Tok) -> &'static str {
    match open {
        Tok::LParen => ")",
        Tok::LBracket => "]",
        Tok::LBrace => "}",
        _ => ">",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<String> {
        let mut d = Diagnostics::new();
        lex(FileId(0), src, &mut d).unwrap().tokens.into_iter().map(|(_, t, _)| t.to_string()).collect()
    }

    #[test]
    fn newlines_inside_parens_and_after_operators_continue() {
        assert_eq!(
            toks("model {\n y ~ normal(a +\n b,\n c)\n z = 1\n}"),
            vec!["model", "{", "y", "~", "normal", "(", "a", "+", "b", ",", "c", ")", ";", "z", "=", "1", "}"]
        );
    }

    #[test]
    fn reals_and_ranges() {
        assert_eq!(toks("x[1..K] .5 1e-3 2.5E+4"), vec!["x", "[", "1", "..", "K", "]", "0.5", "0.001", "25000.0"]);
    }

    #[test]
    fn a_bound_list_does_not_continue_the_line() {
        assert_eq!(
            toks("data {\n N: int<lower=0>\n y: vector[N]\n}"),
            vec![
                "data", "{", "N", ":", "int", "<", "lower", "=", "0", ">", ";", "y", ":", "vector", "[", "N", "]", "}"
            ]
        );
        assert_eq!(toks("model {\n a = b >\n c\n}"), vec!["model", "{", "a", "=", "b", ">", "c", "}"]);
    }

    #[test]
    fn crlf_is_a_newline() {
        assert_eq!(
            toks("model {\r\n a = 1\r\n b = 2\r\n}"),
            vec!["model", "{", "a", "=", "1", ";", "b", "=", "2", "}"]
        );
    }
}
