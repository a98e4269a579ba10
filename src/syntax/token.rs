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

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
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

/// Raw logos tokens, newlines included; errors reported and skipped.
pub fn lex_raw(file: FileId, src: &str, diags: &mut Diagnostics) -> Vec<Spanned> {
    let mut out = Vec::new();
    let mut lexer = Tok::lexer(src);
    while let Some(res) = lexer.next() {
        let r = lexer.span();
        let span = Span::new(file, r.start, r.end);
        match res {
            Ok(t) => out.push((r.start, t, r.end)),
            Err(LexError::Invalid) => {
                let text = &src[r.clone()];
                let shown: String = text.chars().take(1).collect();
                let mut d = Diagnostic::error(
                    Code::InvalidToken,
                    span,
                    format!("unexpected character `{}`", shown.escape_debug()),
                )
                .with_label("no token starts with this character");
                if text.starts_with('\'') || text.starts_with('"') {
                    d = d.with_help("strings are written in double quotes on one line, and only `import` takes one");
                } else if text.starts_with('&') {
                    d = d.with_help("logical operators are `&&` and `||`");
                } else if text.starts_with('#') {
                    d = d.with_help("comments start with `//` or are enclosed in `/* */`");
                }
                diags.push(d);
            }
            Err(LexError::BadNumber) => diags.push(
                Diagnostic::error(Code::BadNumber, span, format!("number `{}` is out of range", &src[r.clone()]))
                    .with_label("too large to represent")
                    .with_help("integers must fit in 64 bits; write large reals with an exponent, like `1e20`"),
            ),
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

/// Tokens ready for the parser: newlines turned into separators per SPEC §2, runs of
/// separators collapsed, and none left where they could only be noise (after `{`, before
/// `}` or `else`, at the top level between items). Returns `None` when nesting exceeds
/// [`MAX_NESTING`] (reported as E0012): such input is rejected before parsing.
pub fn lex(file: FileId, src: &str, diags: &mut Diagnostics) -> Option<Vec<Spanned>> {
    let raw = lex_raw(file, src, diags);
    let mut out: Vec<Spanned> = Vec::with_capacity(raw.len());
    // Open brackets: `(`, `[`, `{`, and `<` when it opens a bound list (`real<lower=0>`).
    let mut stack: Vec<Tok> = Vec::new();
    let mut pending_sep: Option<(usize, usize)> = None;
    // The last token emitted was a `>` closing a bound list, not a comparison.
    let mut closed_bounds = false;
    for (i, (lo, tok, hi)) in raw.iter().cloned().enumerate() {
        let is_sep = matches!(tok, Tok::Newline | Tok::Sep);
        if is_sep {
            let inside = matches!(stack.last(), Some(Tok::LParen | Tok::LBracket | Tok::Lt));
            let at_top = stack.is_empty();
            let continues = !closed_bounds && out.last().is_none_or(|(_, t, _)| t.continues_line());
            if matches!(tok, Tok::Sep) && inside {
                // An explicit `;` inside brackets is a syntax error the parser should see.
                out.push((lo, Tok::Sep, hi));
            } else if !(inside || at_top || continues) && pending_sep.is_none() {
                pending_sep = Some((lo, hi));
            }
            continue;
        }
        closed_bounds = false;
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => stack.push(tok.clone()),
            // `<` followed by `name =` can only open a bound list.
            Tok::Lt
                if matches!(raw.get(i + 1), Some((_, Tok::Ident(_), _)))
                    && matches!(raw.get(i + 2), Some((_, Tok::Assign, _))) =>
            {
                stack.push(Tok::Lt)
            }
            Tok::Gt if stack.last() == Some(&Tok::Lt) => {
                stack.pop();
                closed_bounds = true;
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                let want = match tok {
                    Tok::RParen => Tok::LParen,
                    Tok::RBracket => Tok::LBracket,
                    _ => Tok::LBrace,
                };
                // Pop to the matching opener; the parser reports any mismatch.
                if let Some(pos) = stack.iter().rposition(|t| *t == want) {
                    stack.truncate(pos);
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
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<String> {
        let mut d = Diagnostics::new();
        lex(FileId(0), src, &mut d).unwrap().into_iter().map(|(_, t, _)| t.to_string()).collect()
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
