//! The command line (clap): parses arguments and calls the driver.

use crate::compiled::{Backend, CompiledModel};
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum MethodArg {
    Nuts,
    Hmc,
    Map,
    Advi,
    Bbb,
    McDropout,
    Ensemble,
    Swag,
    Laplace,
    Sgmcmc,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum SamplerArg {
    Sgld,
    Sghmc,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum ScheduleArg {
    Constant,
    Cosine,
    Cyclical,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum HessianArg {
    Full,
    Diag,
    LastLayer,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum MetricArg {
    Diag,
    Dense,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum AlgorithmArg {
    Meanfield,
    Fullrank,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
struct RunArgs {
    model: PathBuf,
    /// Data file (default: MODEL.json beside the model).
    #[arg(long)]
    data: Option<PathBuf>,
    /// nuts, hmc: samplers; map: the posterior mode; advi: a Gaussian approximation (Stan's ADVI);
    /// bbb: Bayes by Backprop on minibatches; mc-dropout: a network trained with its dropout;
    /// ensemble: deep ensembles of posterior modes; swag: SWA-Gaussian around a mode; laplace: a
    /// Gaussian at a mode from the curvature; sgmcmc: cyclical stochastic-gradient MCMC.
    #[arg(long, value_enum, default_value = "nuts")]
    method: MethodArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (default: ./bnnc-out/MODEL-NAME/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Initial values: constrained, by name, in the same JSON form as data.
    #[arg(long)]
    init: Option<PathBuf>,
    /// How the log density is evaluated.
    #[arg(long, value_enum, default_value = "jit")]
    backend: Backend,
    /// Print every row of the summary, each weight of a network's layers included.
    #[arg(long)]
    all: bool,
    /// List the names in the data file that the model does not declare (they are ignored).
    #[arg(long)]
    verbose: bool,
    #[arg(long, value_enum, default_value = "human")]
    message_format: MessageFormat,

    /// [nuts, hmc] Chains (default 4).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    chains: Option<usize>,
    /// [nuts, hmc] Warmup iterations per chain (default 1000).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    warmup: Option<usize>,
    /// [nuts, hmc] Draws per chain after warmup (default 1000).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    draws: Option<usize>,
    /// [nuts, hmc, ensemble, advi, bbb] Threads for the chains or members, or for scoring a
    /// variational fit's output draws on all rows (default: the number of cores).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    threads: Option<usize>,
    /// [nuts] Maximum tree depth (default 10).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    max_depth: Option<usize>,
    /// [nuts, hmc] Target acceptance statistic of step-size adaptation (default 0.8).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    adapt_delta: Option<f64>,
    /// [nuts, hmc] Mass matrix (default diag).
    #[arg(long, value_enum, help_heading = "Sampling (nuts, hmc)")]
    metric: Option<MetricArg>,
    /// [hmc] Leapfrog steps per transition (default 16).
    #[arg(long, help_heading = "Sampling (nuts, hmc)")]
    steps: Option<usize>,

    /// [advi] Mean-field (independent) or full-rank Gaussian (default meanfield).
    #[arg(long, value_enum, help_heading = "Variational (advi)")]
    algorithm: Option<AlgorithmArg>,
    /// [advi] The most iterations (default 10000).
    #[arg(long, help_heading = "Variational (advi)")]
    iter: Option<usize>,
    /// [advi] Draws from q per gradient (default 1).
    #[arg(long, help_heading = "Variational (advi)")]
    grad_samples: Option<usize>,
    /// [advi] Draws from q per ELBO estimate (default 100).
    #[arg(long, help_heading = "Variational (advi)")]
    elbo_samples: Option<usize>,
    /// [advi] Step size (default: chosen from 100, 10, 1, 0.1, 0.01 as Stan does).
    #[arg(long, help_heading = "Variational (advi)")]
    eta: Option<f64>,
    /// [advi] Converged when the relative ELBO change falls below this (default 0.01).
    #[arg(long, help_heading = "Variational (advi)")]
    tol_rel_obj: Option<f64>,
    /// [advi, bbb, swag] Draws written and summarised (default 1000).
    #[arg(long, help_heading = "Variational (advi)")]
    output_draws: Option<usize>,

    /// [mc-dropout] Passes with fresh dropout masks that `predict` averages (default 100).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    mc_samples: Option<usize>,
    /// [swag] Epochs of SGD after the mode, one iterate collected per epoch (default 50).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    swag_epochs: Option<usize>,
    /// [swag] SGD's learning rate per training row in those epochs (default: the rate matched
    /// to the gradient noise at the mode, or the first of its √10-fold reductions whose iterates
    /// stay in the posterior's bulk and predict held-out rows as well as the mode).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    swag_lr: Option<f64>,
    /// [swag] Deviations kept for the low-rank part of the covariance (default 20).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    swag_rank: Option<usize>,
    /// [sgmcmc] Langevin dynamics, or Hamiltonian with friction (default sghmc).
    #[arg(
        long,
        value_enum,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    sampler: Option<SamplerArg>,
    /// [sgmcmc] Cycles of the cosine step size; 5 draws at the end of each (default 20). With
    /// --lr-schedule cyclical: the learning rate's cycles (default 4).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    cycles: Option<usize>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] The learning rate over the training
    /// epochs: constant, a cosine decay to 0, or cyclical (the cosine decay restarted --cycles
    /// times) (default constant).
    #[arg(
        long,
        value_enum,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    lr_schedule: Option<ScheduleArg>,
    /// [ensemble, swag] Members: posterior modes from independent starts and batch orders (default:
    /// ensemble 5; swag 1, more make MultiSWAG).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    members: Option<usize>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] Passes over the training rows (default: enough for 20,000 steps, 10 to 10,000).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    epochs: Option<usize>,
    /// [map, bbb, mc-dropout, ensemble, swag, laplace, sgmcmc] Observation rows per step (map: trains on minibatches when given) (default 128, or all rows when fewer; swag: fewer still so that an epoch has at least ten batches).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    batch_size: Option<usize>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] Learning rate (default 0.01; for --optimizer sgd, per training row, as on a mean loss).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    lr: Option<f64>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] The optimiser (default adam).
    #[arg(
        long,
        value_enum,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    optimizer: Option<OptimizerArg>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] Momentum of --optimizer sgd (default 0.9).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    momentum: Option<f64>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] Fraction of rows held out: training stops when their log-likelihood stops improving (default: bbb 0; the others 0.1 for a network, 0 for a model without layers).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    val_frac: Option<f64>,
    /// [bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size] FractalNet's drop-path for networks
    /// with `join`: LOCAL drops each input of each join with that probability (keeping one),
    /// GLOBAL is the fraction of steps that keep one column of the whole network (default 0).
    #[arg(
        long,
        value_name = "LOCAL[,GLOBAL]",
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    drop_path: Option<String>,
    /// [bbb] Epochs over which the KL term's weight rises from 0 to 1 (default 0: always 1).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    kl_anneal: Option<usize>,
    /// [bbb] The likelihood is weighted by 1/T (default 1).
    #[arg(
        long,
        help_heading = "Minibatch training (bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, map --batch-size)"
    )]
    temperature: Option<f64>,

    /// [laplace] The curvature: for a network, the log-likelihood's Hessian over every coordinate
    /// (full), over the last layer and the model's own parameters (last-layer), or the empirical
    /// Fisher's diagonal (diag); for a model without layers, the log density's Hessian (full) or
    /// its diagonal (diag) (default: last-layer for a network, full otherwise).
    #[arg(long, value_enum, help_heading = "Laplace (laplace)")]
    hessian: Option<HessianArg>,
    /// [laplace] For a network, the precision of the isotropic Gaussian prior added to the
    /// curvature (default: the one maximising the marginal likelihood).
    #[arg(long, help_heading = "Laplace (laplace)")]
    prior_precision: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum OptimizerArg {
    Adam,
    Sgd,
}

impl RunArgs {
    /// The first option given that `--method laplace` takes only for a network (a model with
    /// layers, whose mode is trained on minibatches under a prior precision it tunes).
    fn network_laplace_option(&self) -> Option<&'static str> {
        [
            ("--epochs", self.epochs.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--optimizer", self.optimizer.is_some()),
            ("--val-frac", self.val_frac.is_some()),
            ("--drop-path", self.drop_path.is_some()),
            ("--lr-schedule", self.lr_schedule.is_some()),
            ("--prior-precision", self.prior_precision.is_some()),
            ("--hessian last-layer", self.hessian == Some(HessianArg::LastLayer)),
        ]
        .into_iter()
        .find_map(|(f, given)| given.then_some(f))
    }

    /// The first option given that `method` does not take, with the methods that do.
    fn misapplied(&self, method: MethodArg) -> Option<(&'static str, &'static str)> {
        use MethodArg::*;
        const MINIBATCH: &[MethodArg] = &[Bbb, McDropout, Ensemble, Swag, Laplace, Sgmcmc];
        const MINIBATCH_NAMES: &str = "bbb, mc-dropout, ensemble, swag, laplace, sgmcmc, and map with --batch-size";
        let options: [(&str, bool, &[MethodArg], &str); 35] = [
            ("--chains", self.chains.is_some(), &[Nuts, Hmc], "nuts, hmc"),
            ("--warmup", self.warmup.is_some(), &[Nuts, Hmc], "nuts, hmc"),
            ("--draws", self.draws.is_some(), &[Nuts, Hmc], "nuts, hmc"),
            ("--threads", self.threads.is_some(), &[Nuts, Hmc, Ensemble, Advi, Bbb], "nuts, hmc, ensemble, advi, bbb"),
            ("--max-depth", self.max_depth.is_some(), &[Nuts], "nuts"),
            ("--adapt-delta", self.adapt_delta.is_some(), &[Nuts, Hmc], "nuts, hmc"),
            ("--metric", self.metric.is_some(), &[Nuts, Hmc], "nuts, hmc"),
            ("--steps", self.steps.is_some(), &[Hmc], "hmc"),
            ("--algorithm", self.algorithm.is_some(), &[Advi], "advi"),
            ("--iter", self.iter.is_some(), &[Advi], "advi"),
            ("--grad-samples", self.grad_samples.is_some(), &[Advi], "advi"),
            ("--elbo-samples", self.elbo_samples.is_some(), &[Advi], "advi"),
            ("--eta", self.eta.is_some(), &[Advi], "advi"),
            ("--tol-rel-obj", self.tol_rel_obj.is_some(), &[Advi], "advi"),
            ("--output-draws", self.output_draws.is_some(), &[Advi, Bbb, Swag, Laplace], "advi, bbb, swag, laplace"),
            (
                "--epochs",
                self.epochs.is_some() && !(method == Map && self.batch_size.is_some()),
                MINIBATCH,
                MINIBATCH_NAMES,
            ),
            (
                "--batch-size",
                self.batch_size.is_some(),
                &[Map, Bbb, McDropout, Ensemble, Swag, Laplace, Sgmcmc],
                "map, bbb, mc-dropout, ensemble, swag, laplace, sgmcmc",
            ),
            ("--lr", self.lr.is_some() && !(method == Map && self.batch_size.is_some()), MINIBATCH, MINIBATCH_NAMES),
            (
                "--optimizer",
                self.optimizer.is_some() && !(method == Map && self.batch_size.is_some()),
                MINIBATCH,
                MINIBATCH_NAMES,
            ),
            (
                "--momentum",
                self.momentum.is_some() && self.optimizer != Some(OptimizerArg::Sgd),
                &[],
                "--optimizer sgd",
            ),
            (
                "--val-frac",
                self.val_frac.is_some() && !(method == Map && self.batch_size.is_some()),
                MINIBATCH,
                MINIBATCH_NAMES,
            ),
            (
                "--drop-path",
                self.drop_path.is_some() && !(method == Map && self.batch_size.is_some()),
                MINIBATCH,
                MINIBATCH_NAMES,
            ),
            ("--kl-anneal", self.kl_anneal.is_some(), &[Bbb], "bbb"),
            ("--temperature", self.temperature.is_some(), &[Bbb], "bbb"),
            ("--members", self.members.is_some(), &[Ensemble, Swag], "ensemble, swag"),
            ("--mc-samples", self.mc_samples.is_some(), &[McDropout], "mc-dropout"),
            ("--swag-epochs", self.swag_epochs.is_some(), &[Swag], "swag"),
            ("--swag-lr", self.swag_lr.is_some(), &[Swag], "swag"),
            ("--swag-rank", self.swag_rank.is_some(), &[Swag], "swag"),
            ("--sampler", self.sampler.is_some(), &[Sgmcmc], "sgmcmc"),
            (
                "--cycles",
                self.cycles.is_some() && self.lr_schedule != Some(ScheduleArg::Cyclical),
                &[Sgmcmc],
                "sgmcmc, and --lr-schedule cyclical",
            ),
            (
                "--lr-schedule",
                self.lr_schedule.is_some() && !(method == Map && self.batch_size.is_some()),
                MINIBATCH,
                MINIBATCH_NAMES,
            ),
            ("--hessian", self.hessian.is_some(), &[Laplace], "laplace"),
            // An ensemble's members must start apart.
            (
                "--init",
                self.init.is_some(),
                &[Nuts, Hmc, Map, Advi, Laplace, Bbb, McDropout, Swag, Sgmcmc],
                "every method but ensemble",
            ),
            ("--prior-precision", self.prior_precision.is_some(), &[Laplace], "laplace"),
        ];
        options.into_iter().find(|(_, given, takes, _)| *given && !takes.contains(&method)).map(|(f, _, _, m)| (f, m))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Sample the posterior (NUTS by default) and print a summary.
    Run(RunArgs),
    /// Predict the observed variables on new data from a fit, with the uncertainty split.
    Predict {
        model: PathBuf,
        /// The fit's directory (what `bnnc run --out DIR` wrote).
        #[arg(long)]
        fit: PathBuf,
        /// New inputs, with or without the observed variables (default: MODEL.json beside
        /// the model, the data it was fitted to).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Inputs from elsewhere: how well the uncertainty tells them from --data's.
        #[arg(long)]
        ood: Option<PathBuf>,
        /// Where predictive.json and predictive.csv go (default: the fit's directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed of the predictive draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Predict with one column of a fractal network alone (0 is the deepest; FractalNet's
        /// single-column networks); every column, joined, by default.
        #[arg(long)]
        column: Option<usize>,
        /// List the names in the data files that the model does not declare (they are ignored).
        #[arg(long)]
        verbose: bool,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
    },
    /// Plot a fit's draws: in the terminal, or to an SVG file with --out.
    Plot {
        /// The fit's directory (what `bnnc run --out DIR` wrote).
        fit: PathBuf,
        #[arg(value_enum)]
        kind: crate::plot::Kind,
        /// Scalars to plot (`mu`, `theta[0]`); `pair` takes two; `predictive` and
        /// `calibration` take the observed variable (default: the first) of the predictions
        /// `bnnc predict` wrote into FIT_DIR; `ood` the score (entropy, mutual_information,
        /// sd or sd_epistemic; default entropy for classes, sd otherwise).
        names: Vec<String>,
        /// Write the plot to FILE.svg or FILE.png instead of the terminal.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Inspect a fit interactively: expressions over draws, summaries, runs and predictions.
    Repl {
        /// The model to load.
        model: Option<PathBuf>,
        /// A fit's directory to load (what `bnnc run --out DIR` wrote).
        #[arg(long)]
        fit: Option<PathBuf>,
    },
    /// Time compiling the model and evaluating its gradient; print JSON.
    Bench {
        model: PathBuf,
        /// Data file (default: MODEL.json beside the model).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// Seconds of repeated gradient evaluations to take the median over (at least 1).
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
    /// Evaluate the log density and its gradient at one point; print JSON.
    Logp {
        model: PathBuf,
        /// Data file (default: MODEL.json beside the model).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Constrained parameter values, by name, in the same JSON form as data.
        #[arg(long, conflicts_with = "unconstrained", required_unless_present = "unconstrained")]
        params: Option<PathBuf>,
        /// A point of the unconstrained space: a JSON array in the order `logp` prints it.
        #[arg(long)]
        unconstrained: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
    },
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
    /// The IR, once data is bound (sizes are numbers, data-only values computed).
    Ir,
    /// The adjoint sweep of the IR, as the backends run it for the gradient.
    IrAd,
    /// The forward entry's IR: from a draw to each observed variable's distribution
    /// (`observe` lines), as `predict` runs it.
    IrForward,
    /// The draws program's IR: a draw's constrained values and generated quantities, as
    /// samplers run it once per kept draw.
    IrDraws,
    /// What minibatches are made of: the observation rows the compiler found (the row
    /// count and the data read per row), and what Bayes by Backprop does with each
    /// parameter.
    Rows,
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

fn format_of(m: MessageFormat, color: ColorChoice) -> Format {
    match m {
        MessageFormat::Json => Format::Json,
        MessageFormat::Human => Format::Human {
            color: match color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => std::io::stderr().is_terminal(),
            },
        },
    }
}

fn read_json(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))
}

fn logp(
    model: PathBuf,
    data: Option<PathBuf>,
    params: Option<PathBuf>,
    unconstrained: Option<PathBuf>,
    backend: Backend,
    format: Format,
) -> i32 {
    use crate::diag::{Code, Diagnostic};
    let mut fe = driver::frontend_file(&model);
    let program = if fe.diags.has_errors() { None } else { fe.program(&model, data.as_deref()) };
    let Some(program) = program else {
        eprint!("{}", driver::render_diags(&fe, format));
        return 1;
    };
    let point = match (params, unconstrained) {
        (Some(p), _) => read_json(&p).and_then(|v| match v {
            serde_json::Value::Object(m) => {
                crate::ir::point::unconstrain(&program, &m).and_then(|i| match i.missing.first() {
                    Some(name) => Err(format!("parameter `{name}` is missing")),
                    None => Ok(i.theta),
                })
            }
            _ => Err(format!("`{}` must hold one JSON object, a key per parameter", p.display())),
        }),
        (None, Some(u)) => read_json(&u).and_then(|v| {
            let arr = v.as_array().ok_or_else(|| format!("`{}` must hold a JSON array of numbers", u.display()))?;
            let theta: Option<Vec<f64>> = arr.iter().map(|x| x.as_f64()).collect();
            let theta = theta.ok_or_else(|| format!("`{}` must hold only numbers", u.display()))?;
            if theta.len() != program.dim() {
                return Err(format!(
                    "`{}` has {} values; this model's unconstrained space has {}",
                    u.display(),
                    theta.len(),
                    program.dim()
                ));
            }
            Ok(theta)
        }),
        (None, None) => Err("give --params or --unconstrained".into()),
    };
    let theta = match point {
        Ok(t) => t,
        Err(why) => {
            fe.diags.push(Diagnostic::error_nowhere(Code::BadPoint, why).with_help("constrained values go in --params P.json as {\"name\": value, ...}; an unconstrained point as a JSON array"));
            eprint!("{}", driver::render_diags(&fe, format));
            return 1;
        }
    };
    let mut grad = vec![0.0; program.dim()];
    let res = match CompiledModel::new(&program, backend) {
        Ok(mut model) => model.eval_grad(&theta, &mut grad),
        Err(e) => {
            eprintln!(
                "error: internal compiler error: {e} (`--backend interp` evaluates the model without compiling it)"
            );
            return 2;
        }
    };
    match res {
        Ok(e) => {
            let out = serde_json::json!({
                "logp": e.logp,
                "logp_jacobian": e.logp + e.jacobian,
                "unconstrained": theta,
                "grad": grad,
            });
            println!("{out}");
            0
        }
        Err(err) => {
            // Where the density stops being finite at this point, when an operation does.
            let at = crate::ir::interp::Interp::new(&program).first_not_finite_span(&theta);
            let message = format!("cannot evaluate the log density at this point: {err}");
            let d = match at {
                Some((span, label)) => Diagnostic::error(Code::NotFinite, span, message).with_label(label),
                None => Diagnostic::error_nowhere(Code::NotFinite, message),
            };
            fe.diags.push(d.with_help("check the parameter values against their supports and the model's arithmetic (a log of a negative number, a Cholesky factor of a matrix that is not positive definite, say)"));
            eprint!("{}", driver::render_diags(&fe, format));
            1
        }
    }
}

/// A network's data with a column mean or sd beyond this is warned about (pixel values up
/// to 255 are not).
const OFF_SCALE: f64 = 300.0;

fn run_command(a: RunArgs) -> i32 {
    let network_laplace = a.network_laplace_option();
    let verbose = a.verbose;
    if let Some((flag, takes)) = a.misapplied(a.method) {
        eprintln!(
            "error: {flag} does not apply to --method {}; it is an option of {takes}",
            a.method.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
        );
        return 2;
    }
    let chains = a.chains.unwrap_or(4);
    let warmup = a.warmup.unwrap_or(1000);
    let draws = a.draws.unwrap_or(1000);
    let max_depth = a.max_depth.unwrap_or(10);
    let adapt_delta = a.adapt_delta.unwrap_or(0.8);
    let RunArgs { model, data, method, seed, out, threads, metric, steps, init, backend, all, message_format, .. } = a;
    let format = format_of(message_format, ColorChoice::Auto);
    use crate::diag::{Code, Diagnostic};
    use crate::infer::run::{self, Config, Method};
    let sampler = match method {
        MethodArg::Hmc => Method::Hmc,
        _ => Method::Nuts,
    };
    if chains == 0
        || draws == 0
        || !(adapt_delta > 0.0 && adapt_delta < 1.0)
        || max_depth == 0
        || steps == Some(0)
        || threads == Some(0)
    {
        eprintln!("error: --chains, --draws, --max-depth, --steps and --threads must be at least 1, and --adapt-delta in (0, 1)");
        return 2;
    }
    let advi = crate::infer::vi::advi::Settings {
        full_rank: a.algorithm == Some(AlgorithmArg::Fullrank),
        iter: a.iter.unwrap_or(10_000),
        grad_samples: a.grad_samples.unwrap_or(1),
        elbo_samples: a.elbo_samples.unwrap_or(100),
        eta: a.eta,
        tol_rel_obj: a.tol_rel_obj.unwrap_or(0.01),
        ..Default::default()
    };
    let output_draws = a.output_draws.unwrap_or(1000);
    let drop_path = match a.drop_path.as_deref().map(parse_drop_path).transpose() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("error: --drop-path {why}");
            return 2;
        }
    };
    let schedule = match a.lr_schedule {
        None | Some(ScheduleArg::Constant) => crate::infer::minibatch::Schedule::Constant,
        Some(ScheduleArg::Cosine) => crate::infer::minibatch::Schedule::Cosine,
        Some(ScheduleArg::Cyclical) => crate::infer::minibatch::Schedule::Cyclical { cycles: a.cycles.unwrap_or(4) },
    };
    let bbb = crate::methods::bbb::Options {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr.unwrap_or(0.01),
        sgd_momentum: (a.optimizer == Some(OptimizerArg::Sgd)).then_some(a.momentum.unwrap_or(0.9)),
        kl_anneal: a.kl_anneal.unwrap_or(0),
        temperature: a.temperature.unwrap_or(1.0),
        val_frac: a.val_frac.unwrap_or(0.0),
        output_draws,
        drop_path,
        schedule,
    };
    let bad: Vec<&str> = [
        (bbb.epochs == Some(0), "--epochs must be at least 1"),
        (bbb.batch_size == Some(0), "--batch-size must be at least 1"),
        (!(bbb.lr > 0.0 && bbb.lr.is_finite()), "--lr must be a positive number"),
        (bbb.sgd_momentum.is_some_and(|m| !(0.0..1.0).contains(&m)), "--momentum must be in [0, 1)"),
        (!(bbb.temperature > 0.0 && bbb.temperature.is_finite()), "--temperature must be a positive number"),
        (!(0.0..1.0).contains(&bbb.val_frac), "--val-frac must be in [0, 1)"),
    ]
    .into_iter()
    .filter_map(|(wrong, why)| wrong.then_some(why))
    .collect();
    if !bad.is_empty() {
        eprintln!("error: {}", bad.join("; "));
        return 2;
    }
    if output_draws == 0 {
        eprintln!("error: --output-draws must be at least 1");
        return 2;
    }
    if advi.iter == 0
        || advi.grad_samples == 0
        || advi.elbo_samples == 0
        || advi.eta.is_some_and(|e| !(e > 0.0 && e.is_finite()))
        || advi.tol_rel_obj.is_nan()
        || advi.tol_rel_obj <= 0.0
    {
        eprintln!(
            "error: --iter, --grad-samples and --elbo-samples must be at least 1, --eta and --tol-rel-obj positive"
        );
        return 2;
    }
    let mut fe = driver::frontend_file(&model);
    fe.verbose = verbose;
    let lowered = if fe.diags.has_errors() {
        None
    } else {
        fe.elaborated_with_data(&model, data.as_deref()).and_then(|(el, bound)| {
            let p = crate::ir::lower::lower_for(&el, &bound, crate::ir::lower::Purpose::Density, &mut fe.diags)?;
            Some((p, bound))
        })
    };
    let Some((program, bound)) = lowered else {
        eprint!("{}", driver::render_diags(&fe, format));
        return 1;
    };
    // Warnings (a parameter nothing reads) before the run.
    if !fe.diags.is_empty() {
        eprint!("{}", driver::render_diags(&fe, format));
    }
    // A network's priors (normal(0, 1) on the weights) and its optimisers' rates assume
    // inputs and targets of about unit scale; far from it, training fails without an error.
    if crate::summary::network::has_layers(&program) {
        for (name, mean, sd) in bound.off_scale(OFF_SCALE) {
            eprintln!(
                "warning: data `{name}` is far from unit scale (|mean| up to {mean:.1}, sd up to {sd:.1}): a network's weight priors and learning rates assume inputs and targets of about 1; standardise it (subtract the mean, divide by the sd), or scale it in the model"
            );
        }
    }
    drop(bound);
    let init = match init {
        None => None,
        Some(path) => match read_json(&path).and_then(|v| match v {
            serde_json::Value::Object(m) => {
                // A misspelt name would otherwise leave its parameter to a random start unseen.
                for k in m.keys().filter(|k| !program.params.iter().any(|p| &p.name == *k)) {
                    eprintln!(
                        "warning: `{}` names `{k}`, which is not a parameter of the model (ignored)",
                        path.display()
                    );
                }
                crate::ir::point::unconstrain(&program, &m)
            }
            _ => Err(format!("`{}` must hold one JSON object, a key per parameter", path.display())),
        }) {
            Ok(t) => Some(t),
            Err(why) => {
                fe.diags.push(Diagnostic::error_nowhere(Code::BadPoint, why));
                eprint!("{}", driver::render_diags(&fe, format));
                return 1;
            }
        },
    };
    let name = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let out_dir = out.unwrap_or_else(|| PathBuf::from("bnnc-out").join(&name));
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create `{}`: {e}", out_dir.display());
        return 2;
    }
    // Draws from an earlier run with more chains would be mistaken for this run's.
    if let Ok(entries) = std::fs::read_dir(&out_dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("draws-") && n.ends_with(".csv") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let data_file = driver::data_path(&model, data.as_deref()).map(|p| p.display().to_string()).unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cfg = Config {
        method: sampler,
        chains,
        warmup,
        draws,
        seed,
        threads: threads.unwrap_or(cores).max(1),
        max_depth,
        adapt_delta,
        dense: metric == Some(MetricArg::Dense),
        hmc_steps: steps.unwrap_or(16).max(1),
        init,
        out_dir: Some(out_dir.clone()),
        model_name: name,
        model_hash: fe.model_hash(),
        data_file,
        backend,
    };
    // The minibatch methods built on one mode (map --batch-size, mc-dropout, swag, sgmcmc)
    // train it alike; an ensemble trains several.
    let one_mode = crate::methods::modes::Options {
        members: 1,
        epochs: bbb.epochs,
        batch_size: bbb.batch_size,
        min_batches: 1,
        lr: bbb.lr,
        sgd_momentum: bbb.sgd_momentum,
        // Held-out rows stop a network before it overfits; a model without layers is trained
        // to its mode, which stopping early would leave short of.
        val_frac: a.val_frac.unwrap_or(if crate::summary::network::has_layers(&program) { 0.1 } else { 0.0 }),
        threads: 1,
        drop_path,
        schedule,
    };
    if matches!(method, MethodArg::Ensemble | MethodArg::Swag | MethodArg::Sgmcmc)
        && !crate::summary::network::has_layers(&program)
    {
        eprintln!(
            "warning: the model has no layers: this method's spread is that of modes and of SGD around them, not the posterior's (on a linear regression from a fifth of NUTS's sd); for the posterior of a model like this run --method nuts, laplace or advi"
        );
    }
    match method {
        MethodArg::Map if a.batch_size.is_some() => {
            let o = one_mode;
            return crate::methods::modes::single(
                &mut fe,
                &model,
                data.as_deref(),
                &program,
                &cfg,
                &o,
                crate::methods::modes::Single::Map,
                all,
                format,
            );
        }
        MethodArg::Map => return crate::methods::map::run(&program, &cfg, all, format, &fe.sources),
        MethodArg::Advi => {
            return crate::methods::advi::run(&program, &cfg, &advi, output_draws, all, format, &fe.sources)
        }
        MethodArg::Bbb => {
            return crate::methods::bbb::run(&mut fe, &model, data.as_deref(), &program, &cfg, &bbb, all, format)
        }
        MethodArg::McDropout => {
            let o = one_mode;
            let samples = a.mc_samples.unwrap_or(100);
            if samples == 0 {
                eprintln!("error: --mc-samples must be at least 1");
                return 2;
            }
            return crate::methods::modes::single(
                &mut fe,
                &model,
                data.as_deref(),
                &program,
                &cfg,
                &o,
                crate::methods::modes::Single::McDropout { samples },
                all,
                format,
            );
        }
        MethodArg::Swag => {
            let o = crate::methods::swag::Options {
                // SWAG's spread is SGD's noise: an epoch of one batch has none.
                modes: crate::methods::modes::Options { members: a.members.unwrap_or(1), min_batches: 10, ..one_mode },
                swag_epochs: a.swag_epochs.unwrap_or(50),
                swag_lr: a.swag_lr,
                rank: a.swag_rank.unwrap_or(20),
                output_draws,
            };
            if o.swag_epochs < 2
                || o.modes.members == 0
                || o.rank == 0
                || o.swag_lr.is_some_and(|lr| !(lr > 0.0 && lr.is_finite()))
            {
                eprintln!(
                    "error: --swag-epochs must be at least 2, --swag-rank and --members at least 1, --swag-lr positive"
                );
                return 2;
            }
            return crate::methods::swag::run(&mut fe, &model, data.as_deref(), &program, &cfg, &o, all, format);
        }
        MethodArg::Laplace if !crate::summary::network::has_layers(&program) => {
            if let Some(flag) = network_laplace {
                eprintln!(
                    "error: {flag} applies to laplace on a network (a model with layers); this model has none, so its Laplace approximation is at the posterior mode found on all the data, under its own priors"
                );
                return 2;
            }
            let diagonal = a.hessian == Some(HessianArg::Diag);
            return crate::methods::laplace::run_posterior(
                &program,
                &cfg,
                diagonal,
                output_draws,
                all,
                format,
                &fe.sources,
            );
        }
        MethodArg::Laplace => {
            use crate::methods::laplace::Hessian;
            let o = crate::methods::laplace::Options {
                modes: one_mode,
                hessian: a.hessian.map(|h| match h {
                    HessianArg::Full => Hessian::Full,
                    HessianArg::Diag => Hessian::Diag,
                    HessianArg::LastLayer => Hessian::LastLayer,
                }),
                prior_precision: a.prior_precision,
                output_draws,
            };
            if o.prior_precision.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
                eprintln!("error: --prior-precision must be positive");
                return 2;
            }
            return crate::methods::laplace::run(&mut fe, &model, data.as_deref(), &program, &cfg, &o, all, format);
        }
        MethodArg::Sgmcmc => {
            let o = crate::methods::sgmcmc::Options {
                modes: one_mode,
                sampler: match a.sampler {
                    Some(SamplerArg::Sgld) => crate::infer::sgmcmc::Sampler::Sgld,
                    _ => crate::infer::sgmcmc::Sampler::Sghmc,
                },
                cycles: a.cycles.unwrap_or(20),
            };
            if o.cycles == 0 || o.cycles > 2000 {
                eprintln!("error: --cycles must be from 1 to 2000");
                return 2;
            }
            return crate::methods::sgmcmc::run(&mut fe, &model, data.as_deref(), &program, &cfg, &o, all, format);
        }
        MethodArg::Ensemble => {
            let o =
                crate::methods::modes::Options { members: a.members.unwrap_or(5), threads: cfg.threads, ..one_mode };
            if o.members == 0 {
                eprintln!("error: --members must be at least 1");
                return 2;
            }
            return crate::methods::modes::run(&mut fe, &model, data.as_deref(), &program, &cfg, &o, all, format);
        }
        MethodArg::Nuts | MethodArg::Hmc => {}
    }
    let _ = ctrlc::set_handler(|| run::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    // A progress bar per chain on a terminal; nothing when stderr is not one.
    let interactive = std::io::stderr().is_terminal();
    let total = (warmup + draws) as u64;
    let multi = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("chain {prefix} {bar:30} {pos}/{len} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bars: Vec<indicatif::ProgressBar> = (0..chains)
        .map(|c| {
            let b = if interactive {
                multi.add(indicatif::ProgressBar::new(total))
            } else {
                indicatif::ProgressBar::hidden()
            };
            b.set_style(style.clone());
            b.set_prefix(format!("{}", c + 1));
            b.set_message("warmup");
            b
        })
        .collect();
    let progress = |c: usize, it: usize| {
        if let Some(b) = bars.get(c) {
            b.set_position(it as u64 + 1);
            if it + 1 >= warmup {
                b.set_message("sampling");
            }
        }
    };
    let results = run::run(&program, &cfg, &progress);
    for b in &bars {
        b.finish_and_clear();
    }
    // A network's summary shows the predictions' convergence, from the forward entry.
    let forward = if crate::summary::network::has_layers(&program) {
        fe.program_for(&model, data.as_deref(), crate::ir::lower::Purpose::Forward)
    } else {
        None
    };
    let view = crate::summary::View { forward: forward.as_ref(), all, format, sources: &fe.sources };
    crate::summary::report(&program, &cfg, &results, &out_dir, &view)
}

/// `bench`: compile time (source text to a callable density, data included) and the median
/// gradient time over at least `seconds` of repeated evaluations at one random point.
fn bench(model: PathBuf, data: Option<PathBuf>, backend: Backend, seconds: f64) -> i32 {
    if !(seconds >= 1.0 && seconds.is_finite()) {
        eprintln!("error: --seconds must be at least 1");
        return 2;
    }
    use crate::density::LogDensity;
    use rand::{RngExt, SeedableRng};
    let t0 = std::time::Instant::now();
    let mut fe = driver::frontend_file(&model);
    let program = if fe.diags.has_errors() { None } else { fe.program(&model, data.as_deref()) };
    let Some(program) = program else {
        eprint!("{}", driver::render_diags(&fe, format_of(MessageFormat::Human, ColorChoice::Auto)));
        return 1;
    };
    let mut density = match CompiledModel::new(&program, backend) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: internal compiler error: {e}");
            return 2;
        }
    };
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let dim = program.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut grad = vec![0.0; dim];
    // A point where the density is finite, as a sampler's initialisation finds one.
    let mut theta = vec![0.0; dim];
    let mut found = false;
    for _ in 0..100 {
        theta = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
        if density.logp_grad(&theta, &mut grad).is_ok() {
            found = true;
            break;
        }
    }
    if !found {
        eprintln!("error: no point with a finite log density was found to time the gradient at");
        return 3;
    }
    let mut times = Vec::new();
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 10 {
        let t = std::time::Instant::now();
        let _ = density.logp_grad(&theta, &mut grad);
        times.push(t.elapsed().as_secs_f64());
    }
    // The mean counts the machine's interruptions, as a sampler's wall time does; the median
    // leaves them out.
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let out = serde_json::json!({
        "backend": backend.name(),
        "dim": dim,
        "compile_ms": compile_ms,
        "grad_us_median": median * 1e6,
        "grad_us_mean": mean * 1e6,
        "grad_evals_per_s": 1.0 / median,
    });
    println!("{out}");
    0
}

/// `LOCAL[,GLOBAL]`: drop-path's probabilities, LOCAL below 1 and GLOBAL at most 1.
fn parse_drop_path(s: &str) -> Result<(f64, f64), String> {
    let mut parts = s.split(',').map(|p| p.trim().parse::<f64>());
    let (local, global) = match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(l)), None, None) => (l, 0.0),
        (Some(Ok(l)), Some(Ok(g)), None) => (l, g),
        _ => return Err(format!("takes LOCAL or LOCAL,GLOBAL (numbers), not `{s}`")),
    };
    if !(0.0..1.0).contains(&local) || !(0.0..=1.0).contains(&global) {
        return Err(format!("probabilities must have LOCAL from 0 up to 1 and GLOBAL from 0 to 1, not `{s}`"));
    }
    Ok((local, global))
}

/// Entry of the `bnnc` binary: runs the CLI on a thread with a large stack (deeply nested
/// input is bounded by the parser, but elaborated programs can be big).
pub fn main() -> i32 {
    // Output piped into a reader that stops early (`bnnc run ... | head`) ends the process
    // quietly, as other command-line tools do, instead of a failed print's panic. Every
    // command writes its files before it prints.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    main_with(std::env::args_os().collect())
}

/// The CLI on the given arguments (the first is the program's name), as the `bnnc` binary
/// runs it: for programs that drive `bnnc` in-process, such as the UCI benchmark runner.
pub fn main_with(args: Vec<std::ffi::OsString>) -> i32 {
    let handle = std::thread::Builder::new().stack_size(256 << 20).spawn(move || run(args));
    match handle.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("error: internal compiler error (please report this with the model that caused it)");
            101
        }
    }
}

fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Plot { fit, kind, names, out } => {
            // What the command line asks for that no fit could give: usage errors.
            let svg_or_png = |p: &std::path::Path| {
                matches!(
                    p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).as_deref(),
                    Some("svg" | "png")
                )
            };
            if let Some(p) = out.as_deref().filter(|p| !svg_or_png(p)) {
                eprintln!("error: `{}`: plots are written as FILE.svg or FILE.png", p.display());
                return 2;
            }
            if kind == crate::plot::Kind::Pair && names.len() != 2 {
                eprintln!("error: `pair` plots two variables: `bnnc plot DIR pair A B`");
                return 2;
            }
            use crate::plot::PlotError;
            let drawn = match kind {
                crate::plot::Kind::Predictive | crate::plot::Kind::Calibration | crate::plot::Kind::Ood => {
                    crate::plot::draw_prediction(&fit, kind, names.first().map(String::as_str), out.as_deref())
                }
                _ => crate::predict::fit::read_fit(&fit)
                    .map_err(PlotError::Fit)
                    .and_then(|f| crate::plot::draw(&f, kind, &names, out.as_deref())),
            };
            // What the fit does not hold is a coded error, as predict reports it.
            let coded = |code, why: String, help: &str| {
                let mut d = crate::diag::Diagnostics::default();
                d.push(crate::diag::Diagnostic::error_nowhere(code, why).with_help(help));
                eprint!("{}", crate::diag::render(&d, &crate::source::SourceMap::new(), Default::default()));
                1
            };
            match drawn {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(PlotError::Usage(why)) => {
                    eprintln!("error: {why}");
                    2
                }
                Err(PlotError::Fit(why)) => coded(
                    crate::diag::Code::FitUnusable,
                    why,
                    "plot reads the directory `bnnc run --out DIR` wrote (and `bnnc predict` added predictive.csv to)",
                ),
                Err(PlotError::NoVariable(why)) => coded(
                    crate::diag::Code::NoSuchVariable,
                    why,
                    "name a scalar of the fit as the summary prints it: `mu`, `theta[0]`, `h.W[1,2]`",
                ),
                Err(PlotError::Output(why)) => {
                    eprintln!("error: {why}");
                    1
                }
            }
        }
        Command::Repl { model, fit } => crate::repl::run(model, fit, &|args: &[String]| {
            let mut full = vec!["bnnc".to_string(), "run".to_string()];
            full.extend(args.iter().cloned());
            match Cli::try_parse_from(&full) {
                Ok(Cli { command: Command::Run(a) }) => run_command(a),
                Ok(_) => 2,
                Err(e) => {
                    let _ = e.print();
                    2
                }
            }
        }),
        Command::Predict { model, fit, data, ood, out, seed, column, verbose, backend, message_format } => {
            crate::predict::command::run(crate::predict::command::Options {
                verbose,
                model,
                fit,
                data,
                ood,
                out,
                seed,
                backend,
                format: format_of(message_format, ColorChoice::Auto),
                column,
            })
        }
        Command::Bench { model, data, backend, seconds } => bench(model, data, backend, seconds),
        Command::Logp { model, data, params, unconstrained, backend, message_format } => {
            logp(model, data, params, unconstrained, backend, format_of(message_format, ColorChoice::Auto))
        }
        Command::Check { model, data, verbose, emit, message_format, color } => {
            let mut fe = driver::frontend_file(&model);
            // With data at hand, go on to lowering, so size and index errors that only the
            // numbers reveal are reported now rather than when the model is run.
            if !fe.diags.has_errors() && !matches!(emit, Some(Emit::Ir | Emit::IrAd | Emit::IrForward | Emit::IrDraws))
            {
                let no_data = fe.checked.as_ref().is_some_and(|c| c.data.is_empty()) && data.is_none();
                if no_data {
                    // Nothing to read: lowered as it will run.
                    if let Some(el) = fe.elaborated.clone() {
                        let _ = crate::ir::lower::lower(&el, &crate::data::BoundData::default(), &mut fe.diags);
                    }
                } else if let Some(path) = driver::data_path(&model, data.as_deref()) {
                    if let Some(bound) = fe.bind_data(&path) {
                        if verbose {
                            eprintln!("data: {} ({} variables)", path.display(), bound.vars.len());
                            if !bound.ignored.is_empty() {
                                eprintln!("data: ignored, not declared by the model: {}", bound.ignored.join(", "));
                            }
                        }
                        if let Some(el) = fe.elaborated.clone() {
                            let _ = crate::ir::lower::lower(&el, &bound, &mut fe.diags);
                        }
                    }
                }
            }
            let format = format_of(message_format, color);
            if let Some(emit) = emit {
                let printed = match emit {
                    Emit::Tokens => Some(driver::emit_tokens(&fe)),
                    Emit::Ast if fe.user_file.is_some() => Some(crate::syntax::print::program(&fe.program)),
                    Emit::Elab => fe.elaborated.as_ref().map(driver::emit_elab),
                    Emit::Ir if !fe.diags.has_errors() => {
                        fe.program(&model, data.as_deref()).map(|p| crate::ir::print::program(&p))
                    }
                    Emit::IrAd if !fe.diags.has_errors() => {
                        fe.program(&model, data.as_deref()).map(|p| crate::ir::print::adjoint(&p))
                    }
                    Emit::IrDraws if !fe.diags.has_errors() => fe
                        .program(&model, data.as_deref())
                        .and_then(|p| p.draws.as_deref().map(crate::ir::print::program)),
                    Emit::Rows if !fe.diags.has_errors() => fe.elaborated.as_ref().map(driver::emit_rows),
                    Emit::IrForward if !fe.diags.has_errors() => fe
                        .program_for(&model, data.as_deref(), crate::ir::lower::Purpose::Forward)
                        .map(|p| crate::ir::print::program(&p)),
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
