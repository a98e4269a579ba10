//! Reading the REPL's lines: on a terminal with rustyline (line editing, history kept in the
//! user's data directory, completion of commands, variable names and file paths), otherwise
//! one line at a time from standard input.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::io::BufRead;
use std::path::PathBuf;

/// Completes the word under the cursor: a path after a command that takes one (or any word
/// with a `/` or `.`), else a command or a name.
struct Complete {
    words: Vec<String>,
    files: FilenameCompleter,
}

impl Completer for Complete {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(|c: char| c.is_whitespace() || "()[],+-*/<>=!&|".contains(c)).map_or(0, |i| i + 1);
        let word = &before[start..];
        let path_command = ["load", "fit", "predict", "run"].iter().any(|c| before.starts_with(&format!(":{c} ")));
        if path_command && (word.contains('/') || word.contains('.') || before[..start].trim_end().contains(' ')) {
            return self.files.complete(line, pos, ctx);
        }
        let found: Vec<Pair> = self
            .words
            .iter()
            .filter(|w| w.starts_with(word) && (start == 0 || !w.starts_with(':')))
            .map(|w| Pair { display: w.clone(), replacement: w.clone() })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for Complete {
    type Hint = String;
}
impl Highlighter for Complete {}
impl Validator for Complete {}
impl Helper for Complete {}

pub struct Input {
    editor: Option<Editor<Complete, DefaultHistory>>,
    history: Option<PathBuf>,
    stdin: std::io::StdinLock<'static>,
}

/// `$XDG_DATA_HOME/bnnc/history`, or `~/.local/share/bnnc/history`.
fn history_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("bnnc").join("history"))
}

impl Input {
    pub fn new(terminal: bool) -> Input {
        let mut editor = None;
        let mut history = None;
        if terminal {
            if let Ok(mut ed) = Editor::<Complete, DefaultHistory>::new() {
                ed.set_helper(Some(Complete { words: Vec::new(), files: FilenameCompleter::new() }));
                history = history_path();
                if let Some(h) = &history {
                    let _ = ed.load_history(h);
                }
                editor = Some(ed);
            }
        }
        Input { editor, history, stdin: std::io::stdin().lock() }
    }

    /// The next line, `None` at the end of input (Ctrl-D). Ctrl-C at the prompt clears the
    /// line. `words` are the completions for commands and names.
    pub fn read(&mut self, words: &[String]) -> Option<String> {
        match &mut self.editor {
            Some(ed) => {
                if let Some(h) = ed.helper_mut() {
                    h.words = words.to_vec();
                }
                loop {
                    match ed.readline("bnnc> ") {
                        Ok(l) => {
                            if !l.trim().is_empty() {
                                let _ = ed.add_history_entry(l.as_str());
                            }
                            return Some(l);
                        }
                        Err(rustyline::error::ReadlineError::Interrupted) => continue,
                        Err(_) => return None,
                    }
                }
            }
            None => {
                let mut l = String::new();
                match self.stdin.read_line(&mut l) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(l.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }

    /// Keep the history for the next session.
    pub fn save(&mut self) {
        if let (Some(ed), Some(h)) = (&mut self.editor, &self.history) {
            if let Some(dir) = h.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = ed.save_history(h);
        }
    }
}
