//! `bnnc repl [MODEL.bnn] [--fit DIR]`: inspect a fit interactively. A line that is not a
//! command is an expression in the model's language, evaluated at every draw and summarised
//! as rows of `run`'s table ([`expr`]); commands load a model or a fit, run a method,
//! summarise variables and predict. On a terminal, lines are edited with history and
//! completion ([`line`]); otherwise they are read one per line from standard input and the
//! output is plain text, so a session is a script.

pub mod expr;
mod line;

use crate::diag::{Diagnostics, Format};
use crate::driver::{self, Frontend};
use crate::predict::fit::{self, Fit};
use crate::source::SourceMap;
use crate::summary::stats::{self, Summary};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// What `:run` calls: `bnnc run` with these arguments (the model first), returning its exit
/// code. The command line passes its own, so that the REPL runs exactly what `run` runs.
pub type Runner<'a> = &'a dyn Fn(&[String]) -> i32;

const HELP: &[(&str, &str)] = &[
    (":load MODEL.bnn", "check a model and make it the session's"),
    (":fit DIR", "load the fit `bnnc run --out DIR` wrote"),
    (
        ":run [OPTIONS]",
        "fit the model with `bnnc run`'s options (--method, --chains, --data, --out, ...) and load the fit",
    ),
    (":summary [NAME...]", "summarise variables; `eta` is all of eta's elements, `h.*` a layer's weights"),
    (
        ":predict NEW.json [--ood OOD.json] [--column K] [--out DIR]",
        "predict the observed variables at new data, as `bnnc predict`",
    ),
    (
        ":plot KIND NAME... [--out FILE.svg|.png]",
        "trace, density, rank of scalars, pair of two; predictive, calibration, ood of the last :predict",
    ),
    (":vars", "list the fit's variables with their shapes"),
    (":help [COMMAND]", "this list, or one command's"),
    (":quit", "leave (Ctrl-D too)"),
    ("EXPR", "an expression over the fit's variables, evaluated at every draw: `tau > 5` is P(tau > 5)"),
    ("let NAME = EXPR", "name an expression for later lines"),
];

struct Session<'a> {
    model: Option<PathBuf>,
    fe: Option<Frontend>,
    fit_dir: Option<PathBuf>,
    /// Where the last `:predict` wrote its predictions (`--out`), when not the fit's directory.
    predict_dir: Option<PathBuf>,
    fit: Option<Fit>,
    vars: Vec<expr::Var>,
    data: Option<crate::data::BoundData>,
    lets: Vec<(String, String)>,
    format: Format,
    runner: Runner<'a>,
}

pub fn run(model: Option<PathBuf>, fit: Option<PathBuf>, runner: Runner) -> i32 {
    let tty = std::io::stdin().is_terminal();
    let mut s = Session {
        model: None,
        fe: None,
        fit_dir: None,
        predict_dir: None,
        fit: None,
        vars: Vec::new(),
        data: None,
        lets: Vec::new(),
        format: Format::Human { color: tty && std::io::stderr().is_terminal() },
        runner,
    };
    // Ctrl-C stops a running command (a sampler finishes its iteration), not the session.
    let _ = ctrlc::set_handler(|| crate::infer::run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    if let Some(m) = model {
        s.load(&m);
    }
    if let Some(f) = fit {
        s.load_fit(&f);
    }
    let mut input = line::Input::new(tty);
    while let Some(l) = input.read(&s.completions()) {
        crate::infer::run::STOP.store(false, std::sync::atomic::Ordering::SeqCst);
        if !tty {
            // A script's output shows which line each answer belongs to.
            println!("> {l}");
        }
        if !s.line(l.trim()) {
            break;
        }
    }
    input.save();
    0
}

/// A command's words, with `"..."` quoting for paths with spaces.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

/// Words of a command whose brackets were split at their spaces (`h.W[0,` `0]`) joined
/// again, without the spaces: `h.W[0,0]`, as names are written.
fn bracketed(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = 0i32;
    for w in words {
        match out.last_mut() {
            Some(last) if open > 0 => last.push_str(w),
            _ => out.push(w.clone()),
        }
        open += w.matches('[').count() as i32 - w.matches(']').count() as i32;
    }
    out.iter().map(|w| w.split_whitespace().collect()).collect()
}

impl Session<'_> {
    fn error(&self, msg: impl std::fmt::Display) {
        eprintln!("error: {msg}");
    }

    /// An error with its code, as the command line prints it (a fit that cannot be used is
    /// `predict`'s E0700 here too).
    fn coded(&self, code: crate::diag::Code, msg: impl Into<String>) {
        let mut d = Diagnostics::default();
        d.push(crate::diag::Diagnostic::error_nowhere(code, msg));
        self.diags(&d, &SourceMap::new());
    }

    fn diags(&self, d: &Diagnostics, sources: &SourceMap) {
        eprint!("{}", crate::diag::render(d, sources, self.format));
    }

    fn completions(&self) -> Vec<String> {
        let mut c: Vec<String> = HELP
            .iter()
            .filter(|(k, _)| k.starts_with(':'))
            .map(|(k, _)| k.split(' ').next().unwrap_or("").to_string())
            .collect();
        c.extend(self.vars.iter().map(|v| v.name.clone()));
        c.extend(self.lets.iter().map(|(n, _)| n.clone()));
        c
    }

    /// Handle one line; `false` to leave.
    fn line(&mut self, l: &str) -> bool {
        if l.is_empty() || l.starts_with("//") {
            return true;
        }
        let Some(cmd) = l.strip_prefix(':') else {
            self.expression(l);
            return true;
        };
        let w = words(cmd);
        let args = &w[1.min(w.len())..];
        match w.first().map(String::as_str).unwrap_or("") {
            "q" | "quit" | "exit" => return false,
            "help" | "h" => self.help(args.first().map(String::as_str)),
            "load" => match args {
                [m] => self.load(Path::new(m)),
                _ => self.error("`:load MODEL.bnn` takes one model file"),
            },
            "fit" => match args {
                [d] => self.load_fit(Path::new(d)),
                _ => self.error("`:fit DIR` takes the directory `bnnc run --out DIR` wrote"),
            },
            "run" => self.run(args),
            "summary" | "s" => self.summary(args),
            "predict" => self.predict(args),
            "vars" => self.list_vars(),
            "plot" => self.plot(args),
            other => self.error(format!("no command `:{other}`; `:help` lists them")),
        }
        true
    }

    fn help(&self, which: Option<&str>) {
        let mut shown = 0;
        for (k, v) in HELP {
            let name = k.split(' ').next().unwrap_or("");
            if which.is_none_or(|w| name.trim_start_matches(':') == w.trim_start_matches(':')) {
                println!("  {k:<36} {v}");
                shown += 1;
            }
        }
        if let (0, Some(w)) = (shown, which) {
            self.error(format!("no command `{w}`; `:help` lists them"));
        }
    }

    fn load(&mut self, path: &Path) {
        let fe = driver::frontend_file(path);
        if fe.diags.has_errors() || fe.elaborated.is_none() {
            self.diags(&fe.diags, &fe.sources);
            return;
        }
        let n = fe.elaborated.as_ref().map(|e| e.checked.params.len()).unwrap_or(0);
        println!("loaded {} ({n} parameters)", path.display());
        self.model = Some(path.to_path_buf());
        self.fe = Some(fe);
        self.data = None;
        if let Some(dir) = self.fit_dir.clone() {
            self.load_fit(&dir);
        }
    }

    fn load_fit(&mut self, dir: &Path) {
        let f = match fit::read_fit(dir) {
            Ok(f) => f,
            Err(why) => return self.coded(crate::diag::Code::FitUnusable, why),
        };
        if let (Some(fe), Some(m)) = (&self.fe, &self.model) {
            if !f.made_from(&fe.model_hash()) {
                return self.coded(
                    crate::diag::Code::FitUnusable,
                    format!("{}; `:run` fits this model", f.not_made_from(dir, m)),
                );
            }
        }
        self.vars = expr::variables(&f.columns);
        // The data the fit was made with, for expressions that use data (N, x, ...).
        self.data = None;
        // As the fit recorded it, or else the data file beside the model.
        let recorded = f.data_file.as_ref().map(PathBuf::from).filter(|p| p.exists());
        let beside = self.model.as_ref().and_then(|m| crate::driver::data_path(m, None));
        if let (Some(fe), Some(p)) = (self.fe.as_mut(), recorded.or(beside)) {
            let mut scratch = Diagnostics::new();
            if let Some(el) = fe.elaborated.as_ref() {
                self.data = crate::data::load_data(&p, &el.checked.data, &mut fe.sources, &mut scratch);
            }
        }
        if let (Some(el), Some(data)) = (self.fe.as_ref().and_then(|fe| fe.elaborated.as_ref()), self.data.as_ref()) {
            expr::with_declared_types(&mut self.vars, &el.checked, data);
        }
        println!(
            "fit {}: method {}, {} chain{} of {} draw{}, {} variables",
            dir.display(),
            f.method,
            f.chains.len(),
            if f.chains.len() == 1 { "" } else { "s" },
            f.chains.iter().min().copied().unwrap_or(0),
            if f.chains.iter().min() == Some(&1) { "" } else { "s" },
            self.vars.len()
        );
        self.fit = Some(f);
        self.fit_dir = Some(dir.to_path_buf());
        self.predict_dir = None;
        // Names made with `let` were expressions over the fit before.
        if !self.lets.is_empty() {
            let names: Vec<&str> = self.lets.iter().map(|(n, _)| n.as_str()).collect();
            println!("(names from `let` cleared: {})", names.join(", "));
            self.lets.clear();
        }
    }

    fn plot(&self, args: &[String]) {
        let Some(f) = &self.fit else {
            return self.error("no fit loaded: `:fit DIR` or `:run`");
        };
        let Some(kind) = args.first().and_then(|k| crate::plot::Kind::from_name(k)) else {
            return self
                .error("`:plot trace|density|rank|pair|predictive|calibration NAME... [--out FILE.svg|FILE.png]`");
        };
        let mut names = Vec::new();
        let mut out = None;
        let mut it = args[1..].iter();
        while let Some(a) = it.next() {
            if a == "--out" {
                out = it.next().map(PathBuf::from);
            } else {
                names.push(a.clone());
            }
        }
        let drawn = match (kind, self.predict_dir.as_ref().or(self.fit_dir.as_ref())) {
            (crate::plot::Kind::Predictive | crate::plot::Kind::Calibration | crate::plot::Kind::Ood, Some(dir)) => {
                crate::plot::draw_prediction(dir, kind, names.first().map(String::as_str), out.as_deref())
            }
            _ => crate::plot::draw(f, kind, &names, out.as_deref()),
        };
        match drawn {
            Ok(t) => print!("{t}"),
            Err(crate::plot::PlotError::Fit(why)) => self.coded(crate::diag::Code::FitUnusable, why),
            Err(crate::plot::PlotError::NoVariable(why)) => self.coded(crate::diag::Code::NoSuchVariable, why),
            Err(why) => self.error(why),
        }
    }

    fn list_vars(&self) {
        if self.fit.is_none() {
            return self.error("no fit loaded: `:fit DIR` or `:run`");
        }
        let width = self.vars.iter().map(|v| v.name.len()).max().unwrap_or(0).max(24);
        for v in &self.vars {
            let shape = if v.shape.is_empty() {
                "scalar".to_string()
            } else {
                format!("[{}]", v.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
            };
            println!("  {:<width$} {shape}", v.name);
        }
    }

    fn run(&mut self, args: &[String]) {
        let Some(model) = self.model.clone() else {
            return self.error("no model loaded: `:load MODEL.bnn` first");
        };
        let mut full = vec![model.display().to_string()];
        full.extend(args.iter().cloned());
        // Without --data and no data file beside the model, the data the loaded fit was made
        // with.
        let recorded = self.fit.as_ref().and_then(|f| f.data_file.clone()).filter(|p| Path::new(p).exists());
        if !args.iter().any(|a| a == "--data") && crate::driver::data_path(&model, None).is_none() {
            if let Some(p) = recorded {
                println!("(data: {p}, as the loaded fit was made with)");
                full.extend(["--data".to_string(), p]);
            }
        }
        let code = (self.runner)(&full);
        if code == 1 || code == 2 {
            return;
        }
        let out = match args.iter().position(|a| a == "--out") {
            Some(i) => args.get(i + 1).map(PathBuf::from),
            None => model.file_stem().map(|s| PathBuf::from("bnnc-out").join(s)),
        };
        if let Some(dir) = out {
            self.load_fit(&dir);
        }
    }

    /// A row of the table for `values` (one per draw of `f`): with MCSE, ESS and R-hat for a
    /// sampler's chains; for the other methods' draws, which are no chains, without them, as
    /// `run` prints them.
    fn summarise(&self, f: &Fit, values: &[f64]) -> Summary {
        let mut s = stats::summarise(&self.chains_of(f, values));
        if !matches!(f.method.as_str(), "nuts" | "hmc") {
            (s.mcse, s.ess_bulk, s.ess_tail, s.rhat) = (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
        }
        s
    }

    /// The rows of one chain-split series of draws.
    fn chains_of(&self, f: &Fit, values: &[f64]) -> Vec<Vec<f64>> {
        let n = f.chains.iter().copied().min().unwrap_or(0);
        let mut at = 0;
        let mut out = Vec::new();
        for len in &f.chains {
            out.push(values[at..at + n].to_vec());
            at += len;
        }
        out
    }

    fn summary(&self, pats: &[String]) {
        let Some(f) = &self.fit else {
            return self.error("no fit loaded: `:fit DIR` or `:run`");
        };
        let names: Vec<String> = f.columns.iter().map(|c| crate::api::bnnc_name(c)).collect();
        let mut rows: Vec<(String, Summary)> = Vec::new();
        let mut unmatched = Vec::new();
        let pats = bracketed(pats);
        for pat in pats.iter().map(String::as_str).chain(pats.is_empty().then_some("*")) {
            let before = rows.len();
            // A layer's name stands for its weights (`h` for `h.*`).
            let layer = format!("{pat}.*");
            for (j, name) in names.iter().enumerate() {
                let base = name.split('[').next().unwrap_or(name);
                let hit = glob(pat, name) || glob(pat, base) || (!pat.contains('*') && glob(&layer, name));
                if (f.columns[j].ends_with("__") && pat != f.columns[j]) || !hit {
                    continue;
                }
                let col: Vec<f64> = f.rows.iter().map(|r| r[j]).collect();
                rows.push((name.clone(), self.summarise(f, &col)));
            }
            if rows.len() == before {
                unmatched.push(pat);
            }
        }
        if !unmatched.is_empty() {
            let known: Vec<&str> = self.vars.iter().map(|v| v.name.as_str()).collect();
            let hint = crate::diag::did_you_mean(unmatched[0], known.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            self.error(format!("no variable matches {}{hint}; `:vars` lists them", unmatched.join(", ")));
        }
        if !rows.is_empty() {
            print!("{}", crate::summary::table::table(&rows));
        }
    }

    fn expression(&mut self, l: &str) {
        let Some(f) = &self.fit else {
            return self.error("no fit loaded: `:fit DIR` or `:run` (expressions are evaluated at a fit's draws)");
        };
        let (name, e) = match l.strip_prefix("let ").and_then(|r| r.split_once('=')) {
            Some((n, e)) if !e.starts_with('=') => (Some(n.trim().to_string()), e.trim().to_string()),
            _ => (None, l.to_string()),
        };
        let data_decls = self.data_decls();
        let mut sources = SourceMap::new();
        let mut diags = Diagnostics::new();
        let Some(c) =
            expr::compile(&self.vars, &data_decls, self.data.as_ref(), &self.lets, &e, &mut sources, &mut diags)
        else {
            return self.diags(&diags, &sources);
        };
        // A name is checked, and compiled with the others, before it is kept: a `let` that
        // cannot be compiled would make every later line fail.
        let mut lets = self.lets.clone();
        if let Some(n) = &name {
            if let Err(why) = self.check_let_name(n, &e) {
                return self.error(why);
            }
            lets.retain(|(m, _)| m != n);
            lets.push((n.clone(), e.clone()));
            let (mut sources, mut diags) = (SourceMap::new(), Diagnostics::new());
            if expr::compile(&self.vars, &data_decls, self.data.as_ref(), &lets, n, &mut sources, &mut diags).is_none()
            {
                return self.diags(&diags, &sources);
            }
        }
        let values = match c.evaluate(&f.rows, 1) {
            Ok(v) => v,
            Err(why) => return self.error(format!("cannot evaluate `{e}` {why}")),
        };
        let label = match &name {
            Some(n) => n.clone(),
            // `(mu + tau * eta)[0]`: the element of the whole expression.
            None if c.shape().is_empty() || e.chars().all(|ch| ch.is_alphanumeric() || ch == '_') => e.clone(),
            None => format!("({e})"),
        };
        let shape = c.shape();
        let rows: Vec<(String, Summary)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let lab = if shape.is_empty() { label.clone() } else { format!("{label}{}", index_label(&shape, i)) };
                (lab, self.summarise(f, v))
            })
            .collect();
        print!("{}", crate::summary::table::table(&rows));
        if name.is_some() {
            self.lets = lets;
        }
    }

    /// Why `let name = e` cannot name a value: not an identifier, a name the fit or the data
    /// already has, or `e` reading the name it defines.
    fn check_let_name(&self, name: &str, e: &str) -> Result<(), String> {
        let ident = |w: &str| {
            w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !ident(name) || name.starts_with("__") {
            return Err(format!("`let {name} = ...`: a name is a letter followed by letters, digits and `_`"));
        }
        // A keyword lexes as itself, not as a name.
        let toks = crate::syntax::token::lex_raw(crate::source::FileId(0), name, &mut Diagnostics::new());
        if !matches!(toks.as_slice(), [(_, crate::syntax::token::Tok::Ident(_), _)]) {
            return Err(format!("`{name}` is a keyword of the language; `let` another name"));
        }
        if self.vars.iter().any(|v| v.name == name) {
            return Err(format!("`{name}` is already one of the fit's variables; `let` another name"));
        }
        let data = self
            .fe
            .as_ref()
            .and_then(|fe| fe.elaborated.as_ref())
            .is_some_and(|el| el.checked.data.iter().any(|d| d.name == name));
        if data {
            return Err(format!("`{name}` is already the model's data; `let` another name"));
        }
        let words = e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        if words.into_iter().any(|w| w == name) && self.lets.iter().any(|(m, _)| m == name) {
            return Err(format!(
                "`let {name} = {e}` reads the `{name}` it replaces; `let` the new value another name (`{name}2`)"
            ));
        }
        Ok(())
    }

    fn data_decls(&self) -> String {
        let Some(fe) = &self.fe else { return String::new() };
        fe.elaborated
            .as_ref()
            .map(|el| {
                el.checked
                    .data
                    .iter()
                    .map(|d| format!("  {}: {}", d.name, crate::syntax::print::ty(&d.type_expr)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    fn predict(&mut self, args: &[String]) {
        let (Some(model), Some(dir)) = (&self.model, &self.fit_dir) else {
            return self.error("`:predict` needs a model and a fit: `:load MODEL.bnn`, then `:fit DIR` or `:run`");
        };
        let mut data = None;
        let mut ood = None;
        let mut column = None;
        let mut out = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--out" => match it.next() {
                    Some(p) => out = Some(PathBuf::from(p)),
                    None => return self.error("`--out` takes the directory to write the predictions to"),
                },
                "--ood" => match it.next() {
                    Some(p) => ood = Some(PathBuf::from(p)),
                    None => return self.error("`--ood` takes the file of out-of-distribution inputs"),
                },
                "--column" => match it.next().map(|c| c.parse::<usize>()) {
                    Some(Ok(c)) => column = Some(c),
                    _ => return self.error("`--column` takes a column number (0 is the deepest)"),
                },
                s if !s.starts_with("--") && data.is_none() => data = Some(PathBuf::from(s)),
                other => {
                    return self.error(format!(
                        "`:predict NEW.json [--ood OOD.json] [--column K] [--out DIR]` does not take `{other}`"
                    ))
                }
            }
        }
        let code = crate::predict::command::run(crate::predict::command::Options {
            verbose: false,
            model: model.clone(),
            fit: dir.clone(),
            data,
            ood,
            out: out.clone(),
            seed: 1,
            backend: crate::compiled::Backend::Jit,
            format: self.format,
            column,
        });
        if code == 0 {
            self.predict_dir = out;
        }
    }
}

/// `[i]` or `[i,j]` for flat element `k` of `shape` (0-based, row-major).
fn index_label(shape: &[usize], mut k: usize) -> String {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d].max(1);
        k /= shape[d].max(1);
    }
    format!("[{}]", idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_words() {
        assert!(glob("h.*", "h.W[0,1]") && glob("*", "mu") && glob("eta", "eta") && !glob("h.*", "f.W[0,0]"));
        assert!(glob("*.b*", "f.fractal.1.dense.b[3]"));
        assert_eq!(words(r#"predict "my data.json" --ood x.json"#), vec!["predict", "my data.json", "--ood", "x.json"]);
        assert_eq!(index_label(&[2, 3], 4), "[1,1]");
        let split = |w: &[&str]| bracketed(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(split(&["h.W[0,", "0]", "mu"]), vec!["h.W[0,0]", "mu"]);
        assert_eq!(split(&["eta[1]", "tau"]), vec!["eta[1]", "tau"]);
    }
}
