//! A project that uses xbn as its only dependency (Burn through `xbn::burn`).
use xbn::burn;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use xbn::norm::{Norm, NormConfig};

#[derive(Module, Debug)]
struct Mine {
    norm: Norm,
}

fn main() {
    let device = Device::flex();
    let m = Mine { norm: NormConfig::group(4).init(8, &device).unwrap() };
    let y = m.norm.forward(Tensor::<4>::zeros([2, 8, 4, 4], &device));
    println!("{:?} {}", y.dims(), xbn::models::ModelName::registered().len());
}
