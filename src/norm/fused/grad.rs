//! The fused norms inside Burn's autodiff graph: each forward records one node whose
//! backward calls the backend's closed-form gradient kernel.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::FusedNormOps;

type Primitive<B> = <B as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// Saved for the backward of a norm: input, γ, mean, variance.
type NormState<B> = (Primitive<B>, Primitive<B>, Primitive<B>, Primitive<B>);

#[derive(Debug)]
struct BatchNormBackward {
    eps: f64,
}

impl<B: FusedNormOps> Backward<B, 3> for BatchNormBackward {
    type State = NormState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w, mean, var) = ops.state;
        let (gx, gw, gb) = B::xbn_batch_norm_train_backward(x, w, mean, var, grad, self.eps);
        for (node, g) in [(node_x, gx), (node_w, gw), (node_b, gb)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

#[derive(Debug)]
struct GroupNormBackward {
    groups: usize,
    eps: f64,
}

impl<B: FusedNormOps> Backward<B, 3> for GroupNormBackward {
    type State = NormState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w, mean, var) = ops.state;
        let (gx, gw, gb) = B::xbn_group_norm_backward(x, w, mean, var, grad, self.groups, self.eps);
        for (node, g) in [(node_x, gx), (node_w, gw), (node_b, gb)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

type Output<B, C> = (
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
);

/// Runs `forward` on the primitives and records `backward` for `y` (the statistics are
/// outputs without gradient).
fn record<B, C, O>(
    op: O,
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
    forward: impl FnOnce(
        Primitive<B>,
        Primitive<B>,
        Primitive<B>,
    ) -> (Primitive<B>, Primitive<B>, Primitive<B>),
) -> Output<B, C>
where
    B: FusedNormOps,
    C: CheckpointStrategy,
    O: Backward<B, 3, State = NormState<B>>,
{
    use burn::backend::AutodiffBackend;
    // Statistics: outputs with no gradient.
    let constant = |t| <Autodiff<B, C> as AutodiffBackend>::from_inner(t);
    let nodes = [x.node(), weight.node(), bias.node()];
    match op.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, w) = (x.into_primitive(), weight.into_primitive());
            let (y, mean, var) = forward(x.clone(), w.clone(), bias.into_primitive());
            let y = prep.finish((x, w, mean.clone(), var.clone()), y);
            (y, constant(mean), constant(var))
        }
        OpsKind::UnTracked(prep) => {
            let (y, mean, var) = forward(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            );
            (prep.finish(y), constant(mean), constant(var))
        }
    }
}

impl<B: FusedNormOps, C: CheckpointStrategy> FusedNormOps for Autodiff<B, C> {
    fn xbn_batch_norm_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        record::<B, C, _>(BatchNormBackward { eps }, x, weight, bias, |x, w, b| {
            B::xbn_batch_norm_train(x, w, b, eps)
        })
    }

    fn xbn_batch_norm_train_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("xbn's norm backward is not differentiated again")
    }

    fn xbn_group_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        record::<B, C, _>(
            GroupNormBackward { groups, eps },
            x,
            weight,
            bias,
            |x, w, b| B::xbn_group_norm(x, w, b, groups, eps),
        )
    }

    fn xbn_group_norm_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: usize,
        _: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("xbn's norm backward is not differentiated again")
    }

    fn xbn_channel_affine(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unreachable!("the fused inference affine is only called outside autodiff")
    }
}
