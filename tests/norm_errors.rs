//! Typed errors of the norm layers and the norm factory, and the batch-free invariants.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::to_vec;
use xbn::norm::{BatchNormConfig, GroupNormConfig, Norm, NormConfig, NormError};

#[test]
fn group_norm_clamps_groups_and_rejects_non_divisors() {
    let device = Device::flex();
    // The authors' clamping: 29 groups on 24 channels → 24 groups.
    let gn = GroupNormConfig::new(29, 24).init(&device).unwrap();
    assert_eq!(gn.num_groups, 24);
    assert_eq!(
        GroupNormConfig::new(29, 58)
            .init(&device)
            .unwrap()
            .num_groups,
        29
    );
    let e = GroupNormConfig::new(32, 48).init(&device).unwrap_err();
    assert_eq!(
        e,
        NormError::GroupsDoNotDivide {
            requested: 32,
            groups: 32,
            channels: 48,
            nearest: 24
        }
    );
    assert!(e.to_string().contains("e.g. 24"), "{e}");
    assert_eq!(
        GroupNormConfig::new(0, 8).init(&device).unwrap_err(),
        NormError::ZeroGroups
    );
    assert_eq!(
        GroupNormConfig::new(2, 0).init(&device).unwrap_err(),
        NormError::ZeroFeatures
    );
    assert!(matches!(
        GroupNormConfig::new(2, 4).with_eps(0.0).init(&device),
        Err(NormError::InvalidEps(_))
    ));
}

#[test]
fn batch_norm_config_errors() {
    let device = Device::flex();
    assert_eq!(
        BatchNormConfig::new(0).init(&device).unwrap_err(),
        NormError::ZeroFeatures
    );
    assert!(matches!(
        BatchNormConfig::new(4).with_momentum(Some(1.5)).init(&device),
        Err(NormError::InvalidMomentum(m)) if m == 1.5
    ));
    assert!(matches!(
        BatchNormConfig::new(4).with_eps(-1.0).init(&device),
        Err(NormError::InvalidEps(_))
    ));
    assert!(matches!(
        BatchNormConfig::new(4).with_eps(f64::NAN).init(&device),
        Err(NormError::InvalidEps(_))
    ));
}

#[test]
fn batch_norm_input_errors() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let bn = BatchNormConfig::new(3).init(&ad).unwrap();
    // One value per channel in training: refused, as PyTorch does.
    let e = bn.try_forward(Tensor::<2>::ones([1, 3], &ad)).unwrap_err();
    assert_eq!(e, NormError::SingleValuePerChannel { shape: vec![1, 3] });
    assert!(e.to_string().contains("more than 1 value per channel"));
    let e = bn
        .try_forward(Tensor::<4>::ones([1, 3, 1, 1], &ad))
        .unwrap_err();
    assert!(matches!(e, NormError::SingleValuePerChannel { .. }));
    // ... but fine in inference, and with one sample of several pixels in training.
    assert!(
        bn.valid()
            .try_forward(Tensor::<2>::ones([1, 3], &device))
            .is_ok()
    );
    assert!(bn.try_forward(Tensor::<4>::ones([1, 3, 2, 1], &ad)).is_ok());
    // Wrong channel count / rank.
    let e = bn
        .try_forward(Tensor::<4>::ones([2, 4, 2, 2], &ad))
        .unwrap_err();
    assert!(
        matches!(e, NormError::ChannelMismatch { expected: 3, .. }),
        "{e}"
    );
    let e = bn.try_forward(Tensor::<1>::ones([3], &ad)).unwrap_err();
    assert!(matches!(e, NormError::InvalidRank { .. }), "{e}");
    // Without running statistics, batch statistics are needed in inference too.
    let untracked = BatchNormConfig::new(3)
        .with_track_running_stats(false)
        .init(&device)
        .unwrap();
    assert!(matches!(
        untracked.try_forward(Tensor::<2>::ones([1, 3], &device)),
        Err(NormError::SingleValuePerChannel { .. })
    ));
    let gn = GroupNormConfig::new(2, 4).init(&device).unwrap();
    assert!(matches!(
        gn.try_forward(Tensor::<4>::ones([2, 3, 2, 2], &device)),
        Err(NormError::ChannelMismatch { .. })
    ));
}

#[test]
fn batch_norm_options_behave_as_pytorch() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let x = Tensor::<4>::random([4, 2, 3, 3], Distribution::Normal(2.0, 3.0), &ad);
    // affine=false: no parameters, output standardised.
    let bn = BatchNormConfig::new(2)
        .with_affine(false)
        .init(&ad)
        .unwrap();
    assert!(bn.weight.is_none() && bn.bias.is_none());
    let y = to_vec(bn.forward(x.clone()));
    let mean: f32 = y.iter().sum::<f32>() / y.len() as f32;
    assert!(mean.abs() < 1e-5);
    // track_running_stats=false: no buffers; inference uses batch statistics.
    let bn = BatchNormConfig::new(2)
        .with_track_running_stats(false)
        .init(&device)
        .unwrap();
    assert!(bn.running_mean.is_none() && bn.num_batches_tracked.is_none());
    let y = to_vec(bn.forward(x.clone().inner()));
    let mean: f32 = y.iter().sum::<f32>() / y.len() as f32;
    assert!(mean.abs() < 1e-5);
    // Momentum convention (paper.md §6.1 invariant 9): one step from a fresh state gives
    // running_mean = 0.1·mean(B), running_var = 0.9 + 0.1·unbiased_var(B).
    let bn = BatchNormConfig::new(1).init(&ad).unwrap();
    let b = Tensor::<2>::from_floats([[2.0], [6.0]], &ad);
    let _ = bn.forward(b);
    let bn = bn.valid();
    assert!((to_vec(bn.running_mean.as_ref().unwrap().value())[0] - 0.4).abs() < 1e-6);
    assert!((to_vec(bn.running_var.as_ref().unwrap().value())[0] - (0.9 + 0.1 * 8.0)).abs() < 1e-6);
    // momentum 0 freezes the estimates; the training flag off means inference mode.
    let frozen = BatchNormConfig::new(2)
        .with_momentum(Some(0.0))
        .init(&ad)
        .unwrap();
    let _ = frozen.forward(x.clone());
    assert_eq!(
        to_vec(frozen.valid().running_mean.unwrap().value()),
        [0.0, 0.0]
    );
}

#[test]
fn norm_factory_parses_builds_and_serialises() {
    let device = Device::flex();
    for (s, cfg) in [
        ("bn", NormConfig::batch()),
        ("gn", NormConfig::group(32)),
        ("gn:8", NormConfig::group(8)),
        ("GN16", NormConfig::group(16)),
        ("ln", NormConfig::layer()),
        ("in", NormConfig::instance()),
        ("none", NormConfig::identity()),
    ] {
        let parsed: NormConfig = s.parse().unwrap();
        assert_eq!(parsed, cfg, "{s}");
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<NormConfig>(&json).unwrap(), cfg);
        assert_eq!(cfg.to_string().parse::<NormConfig>().unwrap(), cfg);
    }
    assert!(matches!(
        "gn:x".parse::<NormConfig>(),
        Err(NormError::Parse(_))
    ));
    assert!(matches!(
        "gn:0".parse::<NormConfig>(),
        Err(NormError::ZeroGroups)
    ));
    assert!(matches!(
        "batchy".parse::<NormConfig>(),
        Err(NormError::Parse(_))
    ));
    let json: NormConfig = serde_json::from_str(r#"{"kind":"gn","num_groups":4}"#).unwrap();
    assert_eq!(json, NormConfig::group(4));

    let Norm::Group(ln) = NormConfig::layer().init(12, &device).unwrap() else {
        panic!()
    };
    assert_eq!(ln.num_groups, 1);
    let Norm::Group(inorm) = NormConfig::instance().init(12, &device).unwrap() else {
        panic!()
    };
    assert_eq!(inorm.num_groups, 12);
    assert!(matches!(
        NormConfig::identity().init(12, &device).unwrap(),
        Norm::Identity(_)
    ));
    assert!(matches!(
        NormConfig::group(5).init(12, &device),
        Err(NormError::GroupsDoNotDivide { .. })
    ));
    assert!(matches!(
        NormConfig::identity().init(0, &device),
        Err(NormError::ZeroFeatures)
    ));
}

#[test]
fn batch_free_norms_do_not_depend_on_the_batch_or_the_mode() {
    // paper.md §6.1 invariant 8: GN is identical in train and eval mode and independent of
    // the other samples; GN with groups == channels is an affine instance norm.
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let x = Tensor::<4>::random([5, 6, 4, 4], Distribution::Normal(1.0, 2.0), &device);
    for cfg in [
        NormConfig::group(3),
        NormConfig::layer(),
        NormConfig::instance(),
    ] {
        let norm = cfg.init(6, &ad).unwrap();
        let train = to_vec(norm.forward(Tensor::<4>::from_data(x.to_data(), &ad)));
        let eval = to_vec(norm.valid().forward(x.clone()));
        assert_eq!(train, eval, "{cfg}");
        let single = to_vec(norm.valid().forward(x.clone().narrow(0, 2, 1)));
        assert_eq!(single, eval[2 * 96..3 * 96].to_vec(), "{cfg}");
    }
    let gn = to_vec(
        NormConfig::group(6)
            .init(6, &device)
            .unwrap()
            .forward(x.clone()),
    );
    let inst = to_vec(
        NormConfig::instance()
            .init(6, &device)
            .unwrap()
            .forward(x.clone()),
    );
    assert_eq!(gn, inst);
    // Every (sample, channel) plane of the instance norm has mean 0 and variance ≈ 1.
    for plane in inst.chunks(16) {
        let m = plane.iter().sum::<f32>() / 16.0;
        let v = plane.iter().map(|p| (p - m) * (p - m)).sum::<f32>() / 16.0;
        assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-3, "{m} {v}");
    }
}

#[test]
fn group_norm_on_feature_vectors() {
    // [N, C] input (an MLP's features): each sample normalised within each group of C.
    let device = Device::flex();
    let gn = GroupNormConfig::new(2, 4).init(&device).unwrap();
    let y = to_vec(gn.forward(Tensor::<2>::from_floats([[1.0, 3.0, 10.0, 30.0]], &device)));
    let expected = [-1.0, 1.0, -1.0, 1.0];
    for (a, e) in y.iter().zip(expected) {
        assert!((a - e).abs() < 1e-4, "{y:?}");
    }
}
