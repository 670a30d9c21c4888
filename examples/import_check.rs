//! Checks an imported PyTorch checkpoint: loads it into an xbn zoo model, runs the input
//! saved next to it in inference mode, and prints the largest difference to the logits
//! PyTorch computed (see `tools/export_torchvision.py`).
//!
//! ```sh
//! python3 tools/export_torchvision.py --model resnet50 --out /tmp/r50
//! cargo run --release --example import_check -- resnet50 /tmp/r50/weights.pth /tmp/r50/io.safetensors
//! ```

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use xbn::checkpoint::{HasFamily, LoadOptions, load_weights, save_safetensors};
use xbn::models::ModelName;

fn read_f32(st: &safetensors::SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let view = st.tensor(name).expect("tensor in the io file");
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (data, view.shape().to_vec())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, weights, io, rest @ ..] = args.as_slice() else {
        eprintln!("usage: import_check MODEL WEIGHTS IO.safetensors [EXPORT.safetensors]");
        std::process::exit(2);
    };
    let device = Device::flex();
    let name: ModelName = model.parse()?;
    let model = name.config()?.init(&device)?;
    let options = LoadOptions {
        family: Some(model.family()),
        ..LoadOptions::default()
    };
    let (model, report) = load_weights(model, Path::new(weights), &options)?;
    println!(
        "loaded {} tensors ({:?} naming)",
        report.loaded, report.naming
    );
    let bytes = std::fs::read(io)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (input, shape) = read_f32(&st, "input");
    let (expected, _) = read_f32(&st, "logits");
    let x = Tensor::<4>::from_data(TensorData::new(input, shape), &device);
    let model = model.valid();
    let logits: Vec<f32> = model
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32");
    let max_abs = logits
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("max |xbn - PyTorch| = {max_abs:.3e} (max |logit| = {scale:.3e})");
    if let Some(export) = rest.first() {
        save_safetensors(&model, Path::new(export))?;
        println!("exported {export}");
    }
    Ok(())
}
