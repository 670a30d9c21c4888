use burn::tensor::{Device, Distribution, Tensor};
use xbn::norm::NormConfig;
fn ms(f: &mut dyn FnMut(), iters: usize) -> f64 {
    for _ in 0..3 {
        f();
    }
    let t = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    1e3 * t.elapsed().as_secs_f64() / iters as f64
}
fn main() {
    xbn::malloc::tune_malloc();
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let n = 64 * 64 * 32 * 32;
    let v: Vec<f32> = (0..n).map(|i| (i % 97) as f32).collect();
    let read = ms(
        &mut || {
            let s: f32 = v.iter().sum();
            std::hint::black_box(s);
        },
        50,
    );
    let copy = ms(
        &mut || {
            let c = v.clone();
            std::hint::black_box(c);
        },
        50,
    );
    println!("baseline: sequential sum of 16 MB {read:.2} ms (1 thread), clone {copy:.2} ms");
    for which in ["bn", "gn32"] {
        let cfg = if which == "bn" {
            NormConfig::batch()
        } else {
            NormConfig::group(32)
        };
        let norm_p = cfg.init(64, &plain).unwrap();
        let norm = cfg.init(64, &ad).unwrap();
        let xp = Tensor::<4>::random([64, 64, 32, 32], Distribution::Normal(0.0, 1.0), &plain);
        let x = xp.clone().autodiff().require_grad();
        let fwd_plain = ms(
            &mut || {
                let y = norm_p.forward(xp.clone());
                std::hint::black_box(y);
            },
            100,
        );
        let fwd = ms(
            &mut || {
                let y = norm.forward(x.clone());
                std::hint::black_box(y);
            },
            100,
        );
        let fb = ms(
            &mut || {
                let g = norm.forward(x.clone()).backward();
                let _ = x.grad(&g).unwrap();
            },
            100,
        );
        let ones = ms(
            &mut || {
                let o = Tensor::<4>::ones([64, 64, 32, 32], &plain);
                std::hint::black_box(o);
            },
            100,
        );
        println!(
            "{which}: forward (plain) {fwd_plain:.2} ms, forward (autodiff) {fwd:.2} ms, forward+backward {fb:.2} ms (of which ones() {ones:.2} ms)"
        );
    }
}
