use std::time::Instant;
use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use xbn::blocks::{NormPlan, Placement};
use xbn::models::ResNetConfig;
use xbn::norm::NormConfig;
use xbn::train::classification_output;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let plan = if args.get(1).map(|s| s.as_str()) == Some("xbn") { Placement::XbnP2 } else { Placement::Bn };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let d = burn::tensor::Device::flex();
    let ad = d.clone().autodiff();
    let model = ResNetConfig::cifar(20).unwrap().with_norm_plan(NormPlan::new(plan, NormConfig::group(64))).init(&ad).unwrap();
    let x = Tensor::<4>::random([n, 3, 32, 32], Distribution::Default, &ad);
    let y = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new((0..n as i64).map(|i| i % 10).collect::<Vec<_>>(), [n]), &ad);
    for i in 0..6 {
        let t = Instant::now();
        let out = classification_output(&model, x.clone(), y.clone());
        let t1 = t.elapsed();
        let g = out.loss.backward();
        let l: f32 = out.loss.into_scalar();
        drop(g);
        ad.sync().unwrap();
        println!("train step {i}: fwd {:.3}s total {:.3}s -> {:.0} img/s (loss {l})", t1.as_secs_f64(), t.elapsed().as_secs_f64(), n as f64 / t.elapsed().as_secs_f64());
    }
    let m = model.valid();
    let x = Tensor::<4>::random([256, 3, 32, 32], Distribution::Default, &d);
    for i in 0..3 {
        let t = Instant::now();
        let o = m.forward(x.clone());
        let _v: f32 = o.sum().into_scalar();
        println!("infer {i}: {:.0} img/s", 256.0 / t.elapsed().as_secs_f64());
    }
}
