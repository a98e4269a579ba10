//! The command line (clap): parses arguments and calls the driver.

use crate::diag::Format;
use crate::driver;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "bnnc", version, about = "Compile and run Bayesian models and Bayesian neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check a model; print diagnostics (exit 1 on error).
    Check {
        /// The model file (.bnn).
        model: PathBuf,
        /// Data file (CmdStan JSON, or CSV with a header) to check against the `data` block.
        /// Default: MODEL.json beside the model, when there is one.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Also list data names the model does not use.
        #[arg(long, short)]
        verbose: bool,
        /// Print a stage of the front end.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
        /// Colour diagnostics (default: when stderr is a terminal).
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// Tokens after the layout rule (newlines turned into statement ends).
    Tokens,
    /// The syntax tree, printed back as source.
    Ast,
    /// Layers inlined, fractal recursion expanded, parameters named by path.
    Elab,
}

#[derive(Clone, Copy, ValueEnum)]
enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check { model, data, verbose, emit, message_format, color } => {
            let mut fe = driver::frontend_file(&model);
            if !fe.diags.has_errors() {
                if let Some(path) = driver::data_path(&model, data.as_deref()) {
                    if let Some(bound) = fe.bind_data(&path) {
                        if verbose {
                            eprintln!("data: {} ({} variables)", path.display(), bound.vars.len());
                            if !bound.ignored.is_empty() {
                                eprintln!("data: ignored, not declared by the model: {}", bound.ignored.join(", "));
                            }
                        }
                    }
                }
            }
            let format = match message_format {
                MessageFormat::Json => Format::Json,
                MessageFormat::Human => Format::Human {
                    color: match color {
                        ColorChoice::Always => true,
                        ColorChoice::Never => false,
                        ColorChoice::Auto => std::io::stderr().is_terminal(),
                    },
                },
            };
            if let Some(emit) = emit {
                let printed = match emit {
                    Emit::Tokens => Some(driver::emit_tokens(&fe)),
                    Emit::Ast if fe.user_file.is_some() => Some(crate::syntax::print::program(&fe.program)),
                    Emit::Elab => fe.elaborated.as_ref().map(driver::emit_elab),
                    _ => None,
                };
                if let Some(p) = printed {
                    print!("{p}");
                }
            }
            eprint!("{}", driver::render_diags(&fe, format));
            if fe.diags.has_errors() {
                1
            } else {
                0
            }
        }
    }
}
