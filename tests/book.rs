//! The book cannot drift from the compiler:
//! - every diagnostic code has its section in book/src/errors.md, titled as the compiler
//!   titles it, listed in the chapter's contents, and no section names a code that is gone;
//! - every code block of the book and the README marked ```` ```bnnc,model ```` is a model that
//!   `bnnc check` accepts, and every block marked ```` ```bnnc,fails=E0xxx ```` is one it
//!   rejects with exactly that code. Blocks marked only ```` ```bnnc ```` are fragments (a
//!   statement, a `model` block without its declarations) and are not checked.

use bnnc::diag::Code;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Markdown anchor mdBook makes from a heading: lower case, spaces to dashes, punctuation
/// other than dashes and underscores dropped.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_diagnostic_code_has_its_section_in_the_error_index() {
    let text = read("book/src/errors.md");
    let sections: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("## ")).collect();
    let mut problems = Vec::new();
    for code in Code::ALL {
        let heading = format!("{}: {}", code.as_str(), code.title());
        if !sections.contains(&heading.as_str()) {
            problems.push(format!("no section `## {heading}`"));
        }
        let link = format!("[{heading}](#{})", anchor(&heading));
        if !text.contains(&link) {
            problems.push(format!("the contents do not list {link}"));
        }
    }
    let known: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    for s in &sections {
        let code = s.split(':').next().unwrap_or("");
        if code.starts_with('E') && !known.contains(code) {
            problems.push(format!("section `## {s}` names no code the compiler has"));
        }
    }
    assert!(problems.is_empty(), "book/src/errors.md:\n{}", problems.join("\n"));
}

/// A fenced block of a Markdown file: where it starts, its info string, its text.
struct Block {
    place: String,
    info: String,
    text: String,
}

fn bnnc_blocks(rel: &str) -> Vec<Block> {
    let text = read(rel);
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else { continue };
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if info == "bnnc" || info.starts_with("bnnc,") {
            blocks.push(Block { place: format!("{rel}:{}", i + 1), info: info.to_string(), text: body });
        }
    }
    blocks
}

fn markdown_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("book/src"))
        .expect("book/src")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| format!("book/src/{}", p.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    files.sort();
    files.push("README.md".into());
    files
}

/// Exit code and the set of codes printed by `bnnc check` on the block's text.
fn check(block: &Block, dir: &Path, n: usize) -> (Option<i32>, BTreeSet<String>) {
    let path: PathBuf = dir.join(format!("block{n}.bnn"));
    std::fs::write(&path, &block.text).expect("temporary model");
    let out = Command::new(env!("CARGO_BIN_EXE_bnnc"))
        .args(["check", &path.to_string_lossy(), "--color", "never"])
        .output()
        .expect("the bnnc binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let codes = stderr
        .match_indices("[E")
        .filter_map(|(i, _)| stderr.get(i + 1..i + 6))
        .filter(|c| c[1..].bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    (out.status.code(), codes)
}

#[test]
fn the_books_marked_models_check_and_its_failing_examples_fail_as_documented() {
    let dir = std::env::temp_dir().join(format!("bnnc-book-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut problems = Vec::new();
    let (mut models, mut failing) = (0, 0);
    for (n, block) in markdown_files().iter().flat_map(|f| bnnc_blocks(f)).enumerate() {
        let attrs: Vec<&str> = block.info.split(',').skip(1).collect();
        match attrs.as_slice() {
            [] => {}
            ["model"] => {
                models += 1;
                let (code, codes) = check(&block, &dir, n);
                if code != Some(0) {
                    problems.push(format!(
                        "{}: marked `model`, but `bnnc check` exits {code:?} with {codes:?}",
                        block.place
                    ));
                }
            }
            [f] if f.starts_with("fails=") => {
                failing += 1;
                let want = &f["fails=".len()..];
                let (code, codes) = check(&block, &dir, n);
                if code != Some(1) || codes.len() != 1 || !codes.contains(want) {
                    problems.push(format!(
                        "{}: marked to fail with {want}, but `bnnc check` exits {code:?} with {codes:?}",
                        block.place
                    ));
                }
            }
            other => problems.push(format!("{}: unknown marks {other:?} (model, fails=E0xxx)", block.place)),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The marks are what this test reads: losing them would make it pass vacuously.
    assert!(models >= 10 && failing >= 30, "only {models} marked models and {failing} failing examples");
}
