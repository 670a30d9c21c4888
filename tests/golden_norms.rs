//! Norms and blocks against PyTorch golden values (tools/gen_golden.py).
//!
//! Every test runs on each CPU backend of the build (flex, and ndarray with
//! `--features ndarray`).

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::{Golden, assert_close, devices, load_module, to_vec};
use xbn::blocks::{BasicBlock, NormPlan, Placement, ShortcutKind};
use xbn::norm::{BatchNorm, BatchNormConfig, GroupNormConfig, Norm, NormConfig};

fn bn_for(golden: &Golden, momentum: Option<f64>, device: &Device) -> BatchNorm {
    let c = golden.values("after3.running_mean").len();
    let bn = BatchNormConfig::new(c)
        .with_momentum(momentum)
        .init(device)
        .unwrap();
    load_module(bn, &golden.case)
}

fn check_batch_norm<const D: usize>(case: &str, momentum: Option<f64>) {
    let golden = Golden::load(case);
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let bn = bn_for(&golden, momentum, &ad);

        // Step 0: training forward and gradients of sum(y * g).
        let x = golden.tensor::<D>("train0.input", &ad).require_grad();
        let y = bn.forward(x.clone());
        let g = golden.tensor::<D>("train0.grad_output", &ad);
        let grads = y.clone().mul(g).sum().backward();
        let tag = |s: &str| format!("{case}/{name}/{s}");
        assert_close(
            &to_vec(y),
            golden.values("train0.output"),
            &tag("train0.output"),
        );
        assert_close(
            &to_vec(x.grad(&grads).unwrap()),
            golden.values("train0.grad_input"),
            &tag("grad_input"),
        );
        let w = bn.weight.as_ref().unwrap().grad(&grads).unwrap();
        let b = bn.bias.as_ref().unwrap().grad(&grads).unwrap();
        assert_close(
            &to_vec(w),
            golden.values("train0.grad_weight"),
            &tag("grad_weight"),
        );
        assert_close(
            &to_vec(b),
            golden.values("train0.grad_bias"),
            &tag("grad_bias"),
        );

        // Steps 1 and 2: outputs use batch statistics.
        for step in 1..3 {
            let x = golden.tensor::<D>(&format!("train{step}.input"), &ad);
            let y = bn.forward(x);
            let key = format!("train{step}.output");
            assert_close(&to_vec(y), golden.values(&key), &tag(&key));
        }

        // Running statistics after three steps (unbiased variance, momentum or CMA).
        let bn = bn.valid();
        let rm = bn.running_mean.as_ref().unwrap().value();
        let rv = bn.running_var.as_ref().unwrap().value();
        let nbt = bn.num_batches_tracked.as_ref().unwrap().value();
        assert_close(
            &to_vec(rm),
            golden.values("after3.running_mean"),
            &tag("running_mean"),
        );
        assert_close(
            &to_vec(rv),
            golden.values("after3.running_var"),
            &tag("running_var"),
        );
        assert_eq!(to_vec(nbt), golden.values("after3.num_batches_tracked"));

        // Inference forward with the running estimates, on the plain device.
        let x = golden.tensor::<D>("eval.input", &device);
        assert_close(
            &to_vec(bn.forward(x)),
            golden.values("eval.output"),
            &tag("eval.output"),
        );
    }
}

#[test]
fn batch_norm_2d_momentum_matches_pytorch() {
    check_batch_norm::<4>("bn2d_momentum", Some(0.1));
}

#[test]
fn batch_norm_2d_cumulative_average_matches_pytorch() {
    check_batch_norm::<4>("bn2d_cumulative", None);
}

#[test]
fn batch_norm_1d_momentum_matches_pytorch() {
    check_batch_norm::<2>("bn1d_momentum", Some(0.1));
}

#[test]
fn batch_norm_1d_cumulative_average_matches_pytorch() {
    check_batch_norm::<2>("bn1d_cumulative", None);
}

fn check_group_norm(case: &str, requested_groups: usize, expected_groups: usize) {
    let golden = Golden::load(case);
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let channels = golden.values("grad_weight").len();
        let gn = GroupNormConfig::new(requested_groups, channels)
            .init(&ad)
            .unwrap();
        assert_eq!(gn.num_groups, expected_groups);
        let gn = load_module(gn, case);
        let x = golden.tensor::<4>("input", &ad).require_grad();
        let y = gn.forward(x.clone());
        let grads = y
            .clone()
            .mul(golden.tensor::<4>("grad_output", &ad))
            .sum()
            .backward();
        let tag = |s: &str| format!("{case}/{name}/{s}");
        assert_close(&to_vec(y), golden.values("output"), &tag("output"));
        assert_close(
            &to_vec(x.grad(&grads).unwrap()),
            golden.values("grad_input"),
            &tag("grad_input"),
        );
        let w = gn.weight.as_ref().unwrap().grad(&grads).unwrap();
        let b = gn.bias.as_ref().unwrap().grad(&grads).unwrap();
        assert_close(
            &to_vec(w),
            golden.values("grad_weight"),
            &tag("grad_weight"),
        );
        assert_close(&to_vec(b), golden.values("grad_bias"), &tag("grad_bias"));

        // Batch-free: the same output in inference mode.
        let gn = gn.valid();
        let y = gn.forward(golden.tensor::<4>("input", &device));
        assert_close(&to_vec(y), golden.values("output"), &tag("eval.output"));
    }
}

#[test]
fn group_norm_matches_pytorch() {
    check_group_norm("gn_g3_c6", 3, 3);
}

#[test]
fn group_norm_with_clamped_groups_matches_pytorch() {
    // 29 groups requested on 24 channels: the authors' factory clamps to 24.
    check_group_norm("gn_clamped_g29_c24", 29, 24);
}

#[test]
fn basic_block_p2_matches_pytorch() {
    let case = "basic_block_p2";
    let golden = Golden::load(case);
    let plan = NormPlan::new(Placement::XbnP2, NormConfig::group(4));
    for (name, device) in devices() {
        let tag = |s: &str| format!("{case}/{name}/{s}");
        let build = |d: &Device| {
            let block = BasicBlock::new(8, 16, 2, ShortcutKind::B, &plan, d).unwrap();
            assert!(matches!(block.bn1, Norm::Group(_)));
            assert!(matches!(block.bn2, Norm::Batch(_)));
            load_module(block, case)
        };

        // Inference mode: BN uses the fixture's running statistics.
        let block = build(&device);
        let x = golden.tensor::<4>("input", &device);
        let y = block.try_forward(x).unwrap();
        assert_eq!(y.dims(), [4, 16, 3, 3]);
        assert_close(
            &to_vec(y),
            golden.values("eval.output"),
            &tag("eval.output"),
        );

        // Training mode on the autodiff device: batch statistics and running updates.
        let ad = device.clone().autodiff();
        let block = build(&ad);
        let y = block.try_forward(golden.tensor::<4>("input", &ad)).unwrap();
        assert_close(
            &to_vec(y),
            golden.values("train.output"),
            &tag("train.output"),
        );
        let block = block.valid();
        let Norm::Batch(bn2) = &block.bn2 else {
            unreachable!()
        };
        let rm: Tensor<1> = bn2.running_mean.as_ref().unwrap().value();
        let rv: Tensor<1> = bn2.running_var.as_ref().unwrap().value();
        assert_close(
            &to_vec(rm),
            golden.values("train.bn2.running_mean"),
            &tag("bn2.running_mean"),
        );
        assert_close(
            &to_vec(rv),
            golden.values("train.bn2.running_var"),
            &tag("bn2.running_var"),
        );
    }
}

#[test]
fn batch_norm_without_affine_matches_pytorch() {
    let golden = Golden::load("bn2d_noaffine");
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let bn = BatchNormConfig::new(3)
            .with_affine(false)
            .init(&ad)
            .unwrap();
        let bn = load_module(bn, "bn2d_noaffine");
        let x = golden.tensor::<4>("train0.input", &ad).require_grad();
        let y = bn.forward(x.clone());
        let grads = y
            .clone()
            .mul(golden.tensor::<4>("train0.grad_output", &ad))
            .sum()
            .backward();
        let tag = |s: &str| format!("bn2d_noaffine/{name}/{s}");
        assert_close(&to_vec(y), golden.values("train0.output"), &tag("output"));
        assert_close(
            &to_vec(x.grad(&grads).unwrap()),
            golden.values("train0.grad_input"),
            &tag("grad_input"),
        );
        let bn = bn.valid();
        let rv = bn.running_var.as_ref().unwrap().value();
        assert_close(
            &to_vec(rv),
            golden.values("after1.running_var"),
            &tag("running_var"),
        );
        let y = bn.forward(golden.tensor::<4>("eval.input", &device));
        assert_close(
            &to_vec(y),
            golden.values("eval.output"),
            &tag("eval.output"),
        );
    }
}

#[test]
fn batch_norm_without_running_stats_matches_pytorch() {
    // track_running_stats=False: batch statistics in training and in inference.
    let golden = Golden::load("bn2d_untracked");
    for (name, device) in devices() {
        let bn = BatchNormConfig::new(3)
            .with_track_running_stats(false)
            .init(&device)
            .unwrap();
        let bn = load_module(bn, "bn2d_untracked");
        let y = bn.forward(golden.tensor::<4>("eval.input", &device));
        assert_close(
            &to_vec(y),
            golden.values("eval.output"),
            &format!("bn2d_untracked/{name}/eval.output"),
        );
    }
}
