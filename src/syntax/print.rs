//! Printing the AST back as bnnc source.
//!
//! The output parses to the same tree (the round-trip tests check this on every model);
//! parentheses are printed as the user wrote them and added where precedence needs them.

use crate::syntax::ast::*;
use std::fmt::Write;

pub fn program(p: &Program) -> String {
    let mut out = String::new();
    for (i, item) in p.items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match item {
            Item::Block(b) => {
                let _ = writeln!(out, "{} {{", b.kind.keyword());
                stmts(&mut out, &b.body, 1);
                out.push_str("}\n");
            }
            Item::Func(f) => {
                let kw = match f.kind {
                    FuncKind::Fn => "fn",
                    FuncKind::Layer => "layer",
                };
                let args: Vec<String> = f
                    .args
                    .iter()
                    .map(|a| match &a.default {
                        Some(d) => format!("{}: {} = {}", a.name.name, ty(&a.ty), expr(d)),
                        None => format!("{}: {}", a.name.name, ty(&a.ty)),
                    })
                    .collect();
                let _ = writeln!(out, "{kw} {}({}) -> {} {{", f.name.name, args.join(", "), ty(&f.ret));
                stmts(&mut out, &f.body, 1);
                out.push_str("}\n");
            }
            Item::UnknownBlock { name, body, .. } => {
                let _ = writeln!(out, "{} {{", name.name);
                stmts(&mut out, body, 1);
                out.push_str("}\n");
            }
            Item::Import(imp) => {
                let _ = writeln!(out, "import \"{}\"", imp.path);
            }
            Item::Error(_) => out.push_str("/* error */\n"),
        }
    }
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

pub fn stmts(out: &mut String, body: &[Stmt], level: usize) {
    for s in body {
        stmt(out, s, level);
    }
}

fn block(out: &mut String, body: &[Stmt], level: usize) {
    out.push_str("{\n");
    stmts(out, body, level + 1);
    indent(out, level);
    out.push('}');
}

pub fn stmt(out: &mut String, s: &Stmt, level: usize) {
    indent(out, level);
    match &s.kind {
        StmtKind::Decl { name, ty: t, prior } => {
            let _ = write!(out, "{}: {}", name.name, ty(t));
            if let Some(p) = prior {
                let _ = write!(out, " ~ {}", expr(p));
            }
        }
        StmtKind::DeclInit { name, ty: t, init } => {
            let _ = write!(out, "{}: {} = {}", name.name, ty(t), expr(init));
        }
        StmtKind::Param { name, ty: t, prior } => {
            let _ = write!(out, "param {}: {}", name.name, ty(t));
            if let Some(p) = prior {
                let _ = write!(out, " ~ {}", expr(p));
            }
        }
        StmtKind::Let { name, value } => {
            let _ = write!(out, "let {} = {}", name.name, expr(value));
        }
        StmtKind::Var { name, ty: t, init } => {
            let _ = write!(out, "var {}: {}", name.name, ty(t));
            if let Some(i) = init {
                let _ = write!(out, " = {}", expr(i));
            }
        }
        StmtKind::Assign { lhs, op, rhs } => {
            let _ = write!(out, "{} {} {}", expr(lhs), op.symbol(), expr(rhs));
        }
        StmtKind::Tilde { lhs, dist } => {
            let _ = write!(out, "{} ~ {}", expr(lhs), expr(dist));
        }
        StmtKind::Target { value } => {
            let _ = write!(out, "target += {}", expr(value));
        }
        StmtKind::For { var, lo, hi, body } => {
            let _ = write!(out, "for {} in {}..{} ", var.name, expr(lo), expr(hi));
            block(out, body, level);
        }
        StmtKind::If { .. } => if_stmt(out, s, level),
        StmtKind::Return { value } => {
            let _ = write!(out, "return {}", expr(value));
        }
        StmtKind::Error => out.push_str("/* error */"),
    }
    out.push('\n');
}

fn if_stmt(out: &mut String, s: &Stmt, level: usize) {
    let StmtKind::If { cond, then, else_ } = &s.kind else {
        return;
    };
    let _ = write!(out, "if {} ", expr(cond));
    block(out, then, level);
    if let Some(e) = else_ {
        out.push_str(" else ");
        if let [only] = e.as_slice() {
            if matches!(only.kind, StmtKind::If { .. }) && only.span != s.span {
                if_stmt(out, only, level);
                return;
            }
        }
        block(out, e, level);
    }
}

pub fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Named { name, bounds, dims } => {
            let mut s = name.name.clone();
            if !bounds.is_empty() {
                let b: Vec<String> =
                    bounds.iter().map(|b| format!("{}={}", b.key.name, expr_prec(&b.value, 6))).collect();
                let _ = write!(s, "<{}>", b.join(", "));
            }
            if !dims.is_empty() {
                let d: Vec<String> = dims.iter().map(expr).collect();
                let _ = write!(s, "[{}]", d.join(", "));
            }
            s
        }
        TypeKind::Array { dims, elem } => {
            let d: Vec<String> = dims.iter().map(expr).collect();
            format!("array[{}] {}", d.join(", "), ty(elem))
        }
        TypeKind::Fn => "fn".to_string(),
        TypeKind::Infer => "_".to_string(),
    }
}

pub fn expr(e: &Expr) -> String {
    expr_prec(e, 0)
}

/// Print `e` so that it parses back as one operand at precedence `min`.
fn expr_prec(e: &Expr, min: u8) -> String {
    let (s, prec) = match &e.kind {
        ExprKind::Int(i) => (i.to_string(), 20),
        ExprKind::Real(r) => (real(*r), 20),
        ExprKind::Name(n) => (n.clone(), 20),
        ExprKind::Call { callee, args } => {
            let a: Vec<String> = args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{} = {}", n.name, expr(&a.value)),
                    None => expr(&a.value),
                })
                .collect();
            (format!("{}({})", callee.name, a.join(", ")), 20)
        }
        ExprKind::Index { base, indices } => {
            let i: Vec<String> = indices
                .iter()
                .map(|i| match i {
                    Index::Single(e) => expr(e),
                    Index::All => ":".to_string(),
                    Index::Range(a, b) => format!(
                        "{}..{}",
                        a.as_ref().map(expr).unwrap_or_default(),
                        b.as_ref().map(expr).unwrap_or_default()
                    ),
                })
                .collect();
            (format!("{}[{}]", expr_prec(base, 20), i.join(", ")), 20)
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let p = op.precedence();
            let s = if *op == BinOp::Pow {
                // right-associative; the left operand is a postfix expression
                format!("{} ^ {}", expr_prec(lhs, 20), expr_prec(rhs, 8))
            } else {
                format!("{} {} {}", expr_prec(lhs, p), op.symbol(), expr_prec(rhs, p + 1))
            };
            (s, p)
        }
        ExprKind::Unary { op, operand } => (format!("{}{}", op.symbol(), expr_prec(operand, 8)), 8),
        ExprKind::Cond { cond, then, else_ } => {
            (format!("{} ? {} : {}", expr_prec(cond, 2), expr_prec(then, 0), expr_prec(else_, 0)), 1)
        }
        ExprKind::Paren(inner) => (format!("({})", expr(inner)), 20),
        ExprKind::Error => ("/* error */".to_string(), 20),
    };
    if prec < min {
        format!("({s})")
    } else {
        s
    }
}

/// A real literal that reads back as the same f64 and as a real (never as an int).
pub fn real(r: f64) -> String {
    let s = format!("{r:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}
