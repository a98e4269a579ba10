//! The one place that does file IO: source files, the standard library and imports in;
//! diagnostics and printed stages out.

use crate::diag::{render, Code, Diagnostic, Diagnostics, Format};
use crate::sema::check::{check_program, Checked};
use crate::sema::elaborate::{elaborate, Elaborated};
use crate::source::{decode_utf8, FileId, SourceMap, Span};
use crate::syntax::ast::{Item, Program};
use crate::syntax::parse::parse_program;
use std::path::{Path, PathBuf};

/// The standard library, compiled into the binary so it is found wherever bnnc runs.
pub const STDLIB: &[(&str, &str)] = &[("<stdlib>/layers.bnn", include_str!("../stdlib/layers.bnn"))];

/// Everything known about one model after the front end.
pub struct Frontend {
    pub sources: SourceMap,
    pub diags: Diagnostics,
    pub program: Program,
    pub checked: Option<Checked>,
    pub elaborated: Option<Elaborated>,
    pub user_file: Option<FileId>,
    /// Report what binding the data ignored (names the model does not declare).
    pub verbose: bool,
}

/// Read a model file: bytes → UTF-8 text, with E0001/E0002 on failure.
pub fn read_source(path: &Path, sources: &mut SourceMap, diags: &mut Diagnostics) -> Option<FileId> {
    let shown = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            diags.push(
                Diagnostic::error_nowhere(Code::FileUnreadable, format!("cannot read `{shown}`: {}", io_reason(&e)))
                    .with_help("check the path; model files usually end in `.bnn`"),
            );
            return None;
        }
    };
    match decode_utf8(bytes) {
        Ok(text) => Some(sources.add(shown, text)),
        Err((text, bad)) => {
            let id = sources.add(shown.clone(), text);
            diags.push(
                Diagnostic::error(
                    Code::NotUtf8,
                    Span::new(id, bad.start, bad.end),
                    format!("`{shown}` is not valid UTF-8"),
                )
                .with_label("invalid byte sequence here")
                .with_help("save the file as UTF-8"),
            );
            None
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Parse, check and elaborate a model given as text (the file name is for diagnostics).
pub fn frontend_text(name: &str, text: &str, base_dir: Option<&Path>) -> Frontend {
    let mut sources = SourceMap::new();
    let id = sources.add(name, text);
    frontend_loaded(sources, Diagnostics::new(), Some(id), base_dir)
}

/// Parse, check and elaborate the model at `path`.
pub fn frontend_file(path: &Path) -> Frontend {
    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new();
    let id = read_source(path, &mut sources, &mut diags);
    let dir = path.parent().map(Path::to_path_buf);
    frontend_loaded(sources, diags, id, dir.as_deref())
}

fn frontend_loaded(
    mut sources: SourceMap,
    mut diags: Diagnostics,
    id: Option<FileId>,
    base_dir: Option<&Path>,
) -> Frontend {
    let Some(id) = id else {
        return Frontend::unparsed(sources, diags, None);
    };
    let text = sources.get(id).text.clone();
    let Some(program) = crate::syntax::parse::parse_program_checked(id, &text, &mut diags) else {
        // Rejected before parsing (nested too deep): nothing more to say about it.
        return Frontend::unparsed(sources, diags, Some(id));
    };
    let mut lib_items: Vec<Item> = Vec::new();
    for (name, src) in STDLIB {
        let lid = sources.add(*name, *src);
        let p = parse_program(lid, src, &mut diags);
        lib_items.extend(p.items);
    }
    load_imports(&program, base_dir.map(Path::to_path_buf), &mut sources, &mut diags, &mut lib_items);
    // Where a missing `model` block is reported: just after the last thing in the file.
    let end = text.trim_end().len();
    let eof = Span::new(id, end, end);
    let syntax_ok = !diags.has_errors();
    let before = diags.len();
    let checked = check_program(&program.items, &lib_items, eof, &mut diags);
    // A statement the parser could not read declared nothing: the names it would have
    // declared are not news as unknown names.
    if !syntax_ok {
        diags.drop_after(before, Code::UnknownName);
    }
    let elaborated = if syntax_ok && !diags.has_errors() { elaborate(&checked, &mut diags) } else { None };
    Frontend { sources, diags, program, checked: Some(checked), elaborated, user_file: Some(id), verbose: false }
}

/// Load `import "path"` items (relative to the importing file), transitively, once each.
fn load_imports(
    program: &Program,
    dir: Option<PathBuf>,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
    lib: &mut Vec<Item>,
) {
    for item in &program.items {
        let Item::Import(imp) = item else { continue };
        let path = match &dir {
            Some(d) => d.join(&imp.path),
            None => PathBuf::from(&imp.path),
        };
        let shown = path.display().to_string();
        if sources.find(&shown).is_some() {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        Code::ImportFailed,
                        imp.span,
                        format!("cannot import `{}`: {}", imp.path, io_reason(&e)),
                    )
                    .with_label(format!("looked for {shown}"))
                    .with_help("import paths are relative to the file that imports them"),
                );
                continue;
            }
        };
        let text = match decode_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                diags.push(
                    Diagnostic::error(
                        Code::ImportFailed,
                        imp.span,
                        format!("cannot import `{}`: not valid UTF-8", imp.path),
                    )
                    .with_label("this file"),
                );
                continue;
            }
        };
        let id = sources.add(shown, text.clone());
        let p = parse_program(id, &text, diags);
        for it in &p.items {
            match it {
                Item::Block(b) => diags.push(
                    Diagnostic::error(
                        Code::MisplacedStmt,
                        b.kw_span,
                        format!("an imported file cannot have a `{}` block", b.kind.keyword()),
                    )
                    .with_label("only `fn`, `layer` and `import` items are taken from imports")
                    .with_secondary(imp.span, "imported here"),
                ),
                Item::Func(_) => lib.push(it.clone()),
                _ => {}
            }
        }
        load_imports(&p, path.parent().map(Path::to_path_buf), sources, diags, lib);
    }
}

/// The data file for a model: the one given, or `MODEL.json` beside the model if it exists
/// (SPEC §8), else `MODEL.npz` (images and other large arrays).
pub fn data_path(model: &Path, given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => ["json", "npz"].iter().map(|ext| model.with_extension(ext)).find(|p| p.exists()),
    }
}

/// The fingerprint of a model's tokens: its text without comments, indentation or spacing
/// (runs of line ends count as one, as they separate statements), so a fit stays usable
/// after the model's comments or layout are edited, and not after a change to the model.
pub fn model_fingerprint(text: &str) -> String {
    use crate::syntax::token::Tok;
    let mut scratch = Diagnostics::new();
    let mut canonical = String::new();
    let mut line_end = false;
    for (_, tok, _) in crate::syntax::token::lex_raw(FileId::default(), text, &mut scratch) {
        if tok == Tok::Newline {
            line_end = true;
            continue;
        }
        if std::mem::take(&mut line_end) && !canonical.is_empty() {
            canonical.push('\n');
        }
        canonical.push_str(&tok.to_string());
        canonical.push(' ');
    }
    crate::source::fingerprint(&canonical)
}

impl Frontend {
    /// The fingerprint of the model file's tokens ([`model_fingerprint`]).
    pub fn model_hash(&self) -> String {
        self.user_file.map(|id| model_fingerprint(&self.sources.get(id).text)).unwrap_or_default()
    }

    /// A model that could not be read or parsed: only its diagnostics.
    fn unparsed(sources: SourceMap, diags: Diagnostics, user_file: Option<FileId>) -> Frontend {
        Frontend {
            sources,
            diags,
            program: Program::default(),
            checked: None,
            elaborated: None,
            user_file,
            verbose: false,
        }
    }

    /// Read and check the data file against the model's `data` block.
    pub fn bind_data(&mut self, path: &Path) -> Option<crate::data::BoundData> {
        let decls = self.elaborated.as_ref()?.checked.data.clone();
        let bound = crate::data::load_data(path, &decls, &mut self.sources, &mut self.diags)?;
        if self.verbose && !bound.ignored.is_empty() {
            eprintln!("data: {}: ignored, not declared by the model: {}", path.display(), bound.ignored.join(", "));
        }
        Some(bound)
    }
}

impl Frontend {
    /// Bind the data (the file given, the one beside the model, or none when the model has
    /// no `data` block) and lower to the IR. Errors are in `self.diags`.
    pub fn program(&mut self, model: &Path, data: Option<&Path>) -> Option<crate::ir::Program> {
        self.program_for(model, data, crate::ir::lower::Purpose::Density)
    }

    /// As [`Frontend::program`], for the given purpose.
    pub fn program_for(
        &mut self,
        model: &Path,
        data: Option<&Path>,
        purpose: crate::ir::lower::Purpose,
    ) -> Option<crate::ir::Program> {
        let (el, bound) = self.elaborated_with_data(model, data)?;
        crate::ir::lower::lower_for(&el, &bound, purpose, &mut self.diags)
    }

    /// The elaborated model and its data bound (the file given, the one beside the model, or
    /// none when the model has no `data` block), for lowering programs of several kinds.
    pub fn elaborated_with_data(
        &mut self,
        model: &Path,
        data: Option<&Path>,
    ) -> Option<(Elaborated, crate::data::BoundData)> {
        let el = self.elaborated.clone()?;
        // A model without data reads no file beside it (one given is still read and checked).
        let path = if el.checked.data.is_empty() && data.is_none() { None } else { data_path(model, data) };
        let bound = match path {
            Some(path) => self.bind_data(&path)?,
            None if el.checked.data.is_empty() => crate::data::BoundData::default(),
            None => {
                let beside = model.with_extension("json");
                self.diags.push(
                    Diagnostic::error_nowhere(
                        Code::NoDataFile,
                        format!("`{}` declares data but no data file was given", model.display()),
                    )
                    .with_help(format!(
                        "give one with `--data FILE.json`, or put it beside the model as `{}` (or `.npz`)",
                        beside.display()
                    )),
                );
                return None;
            }
        };
        Some((el, bound))
    }
}

/// The printed form of `--emit tokens`.
pub fn emit_tokens(fe: &Frontend) -> String {
    let Some(id) = fe.user_file else {
        return String::new();
    };
    let text = &fe.sources.get(id).text;
    let mut scratch = Diagnostics::new();
    let toks = crate::syntax::token::lex(id, text, &mut scratch).map(|l| l.tokens).unwrap_or_default();
    let mut out = String::new();
    for (lo, t, hi) in toks {
        let (l, c) = fe.sources.line_col(id, lo as u32);
        let shown = match &t {
            crate::syntax::token::Tok::Sep => "<end of statement>".to_string(),
            other => format!("{other:?}"),
        };
        out.push_str(&format!("{l}:{c}\t{lo}..{hi}\t{shown}\n"));
    }
    out
}

/// The printed form of `--emit elab`: the flat program, parameters with their shapes first.
pub fn emit_elab(e: &Elaborated) -> String {
    let mut out = String::from("// parameters, by path, with their shapes in terms of data sizes:\n");
    for p in &e.checked.params {
        let c = p.decl.constraint.keyword().map(|k| format!(" ({k})")).unwrap_or_default();
        out.push_str(&format!("//   {:<28} {}{c}\n", p.name, p.decl.ty));
    }
    out.push('\n');
    out.push_str(&crate::syntax::print::program(&Program { items: e.items.clone() }));
    out
}

/// The printed form of `--emit rows`: the observation rows minibatches are drawn from, and
/// how Bayes by Backprop treats each parameter ([`crate::ir::variational::plan`]).
pub fn emit_rows(e: &Elaborated) -> String {
    use crate::ir::lower::{mixture_observed, observed_names, row_size, row_variables};
    let mut out = String::new();
    let mut observed = observed_names(e);
    for m in mixture_observed(e) {
        if !observed.contains(&m) {
            observed.push(format!("{m} (in a mixture: not predicted)"));
        }
    }
    out.push_str(&format!(
        "observed:         {}\n",
        if observed.is_empty() { "(none)".into() } else { observed.join(", ") }
    ));
    match row_size(e) {
        Some(n) => {
            out.push_str(&format!("row count:        {n}\n"));
            out.push_str(&format!("read per row:     {}\n", row_variables(e).join(", ")));
        }
        None => out.push_str("row count:        (none found: the model cannot be minibatched)\n"),
    }
    let plan = crate::ir::variational::plan(e);
    let size = row_size(e);
    out.push_str("\nBayes by Backprop, parameter by parameter:\n");
    for p in &e.checked.params {
        let (dims, _) = crate::data::type_dims(&p.type_expr);
        let per_row = size.as_deref().is_some_and(|n| dims.iter().any(|d| d.as_name() == Some(n)));
        let how = match plan.gaussian.iter().find(|(n, ..)| *n == p.name) {
            _ if per_row => "one value per row: a minibatch cannot update it (E0611)".to_string(),
            Some((_, loc, scale)) if plan.local.contains(&p.name) => {
                format!("exact KL to normal({loc}, {scale}); local reparameterisation")
            }
            Some((_, loc, scale)) => format!("exact KL to normal({loc}, {scale})"),
            None => "sampled; KL estimated from the draw".to_string(),
        };
        out.push_str(&format!("  {:<28} {how}\n", p.name));
    }
    out
}

/// Render diagnostics for the terminal or as JSON lines.
pub fn render_diags(fe: &Frontend, format: Format) -> String {
    render(&fe.diags, &fe.sources, format)
}
