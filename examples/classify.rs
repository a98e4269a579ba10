//! The library from Rust: fit the network classifier of `bnn_classification.bnn` with NUTS,
//! then predict held-out wines and wines of a cultivar the network never saw, giving the new
//! inputs as `ndarray` arrays. Run from the repository root:
//!
//! ```console
//! cargo run --release --example classify
//! ```

use bnnc::predict::Row;
use bnnc::{Data, Model, SampleOptions};
use ndarray::Array2;

/// The inputs `x` of one of the example's data files as an array.
fn inputs(path: &str) -> Result<Array2<f64>, Box<dyn std::error::Error>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let rows: Vec<Vec<f64>> = serde_json::from_value(v["x"].clone())?;
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    Ok(Array2::from_shape_vec((n, d), rows.into_iter().flatten().collect())?)
}

/// The mean mutual information between label and weights over the rows: the epistemic part
/// of the predictive entropy.
fn mean_mi(rows: &[Row]) -> f64 {
    let mi: Vec<f64> = rows
        .iter()
        .filter_map(|r| if let Row::Class { mutual_information, .. } = r { Some(*mutual_information) } else { None })
        .collect();
    mi.iter().sum::<f64>() / mi.len() as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = Model::from_file("examples/bnn_classification.bnn")?;
    println!("parameters: {}", model.parameters().join(", "));
    let opts = SampleOptions { chains: 2, warmup: 500, draws: 500, ..Default::default() };
    let fit = model.sample(&Data::from_file("examples/bnn_classification.json"), &opts)?;
    println!("{} draws of {} values", fit.draws.nrows(), fit.draws.ncols());

    for (what, path) in [
        ("held-out wines", "examples/bnn_classification_test.json"),
        ("unseen cultivar", "examples/bnn_classification_ood.json"),
    ] {
        let x = inputs(path)?;
        let new = Data::new().int("N", x.nrows() as i64).int("D", x.ncols() as i64).int("K", 2).array("x", &x);
        let pred = model.predict(&fit, &new, 1)?;
        let y = &pred[0];
        println!(
            "{what}: {} rows, mean P(class 1) {:.3}, mean mutual information {:.4} nats",
            y.rows.len(),
            y.means().mean().unwrap_or(f64::NAN),
            mean_mi(&y.rows)
        );
    }
    Ok(())
}
