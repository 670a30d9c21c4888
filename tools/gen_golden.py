#!/usr/bin/env python3
"""Generate PyTorch golden values for xbn's norm and block tests.

Writes small safetensors files to tests/fixtures/golden/:

  <case>.data.safetensors    inputs, upstream gradients and expected values
  <case>.module.safetensors  the layer's parameters and buffers, named as xbn's
                             module paths (PyTorch state_dict names, with
                             `num_batches_tracked` stored as float32 of shape [1])

Inputs are float32; every reference value is computed in float64 by PyTorch
(`torch.nn.BatchNorm1d/2d`, `torch.nn.GroupNorm`, `torch.nn.Conv2d` in double
precision) and then stored as float32, so the golden values are the exact
results of PyTorch's semantics, not of one float32 kernel.

Usage: python3 tools/gen_golden.py   (needs `pip install torch torchvision safetensors`)
The Rust tests never run Python: they read the committed fixtures.
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden")


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def rand(gen, *shape, scale=1.0, shift=0.0):
    """float32-representable random values, returned as float64."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float32) * scale + shift
    return x.to(torch.float64)


def module_state(prefix, module):
    out = {}
    for k, v in module.state_dict().items():
        if k.endswith("num_batches_tracked"):
            v = v.to(torch.float32).reshape(1)
        out[prefix + k] = f32(v)
    return out


def save(case, data, params):
    os.makedirs(OUT, exist_ok=True)
    save_file({k: f32(v) for k, v in data.items()}, os.path.join(OUT, f"{case}.data.safetensors"))
    save_file(params, os.path.join(OUT, f"{case}.module.safetensors"))
    print(f"{case}: {len(data)} data tensors, {len(params)} module tensors")


def batch_norm_case(case, dim, shape, momentum, seed):
    """Three training steps, gradients of the first, then inference."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    bn = (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(rand(gen, c, scale=0.5, shift=1.0))
        bn.bias.copy_(rand(gen, c, scale=0.5))
    initial = module_state("", bn)
    data = {}
    bn.train()
    for step in range(3):
        x = rand(gen, *shape, scale=2.0, shift=0.5).requires_grad_(step == 0)
        y = bn(x)
        data[f"train{step}.input"] = x
        data[f"train{step}.output"] = y
        if step == 0:
            g = rand(gen, *shape)
            (y * g).sum().backward()
            data["train0.grad_output"] = g
            data["train0.grad_input"] = x.grad
            data["train0.grad_weight"] = bn.weight.grad
            data["train0.grad_bias"] = bn.bias.grad
    data["after3.running_mean"] = bn.running_mean
    data["after3.running_var"] = bn.running_var
    data["after3.num_batches_tracked"] = bn.num_batches_tracked.to(torch.float64).reshape(1)
    bn.eval()
    x = rand(gen, *shape, scale=2.0, shift=0.5)
    data["eval.input"] = x
    data["eval.output"] = bn(x)
    save(case, data, initial)


def batch_norm_option_cases(seed):
    """affine=False (one training step with gradients, then inference) and
    track_running_stats=False (inference uses the batch statistics)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (4, 3, 5, 5)
    bn = nn.BatchNorm2d(3, affine=False).double()
    initial = module_state("", bn)
    x = rand(gen, *shape, scale=2.0, shift=0.5).requires_grad_(True)
    bn.train()
    y = bn(x)
    g = rand(gen, *shape)
    (y * g).sum().backward()
    data = {"train0.input": x, "train0.output": y, "train0.grad_output": g,
            "train0.grad_input": x.grad, "after1.running_var": bn.running_var}
    bn.eval()
    xe = rand(gen, *shape, scale=2.0, shift=0.5)
    data["eval.input"] = xe
    data["eval.output"] = bn(xe)
    save("bn2d_noaffine", data, initial)

    bn = nn.BatchNorm2d(3, track_running_stats=False).double()
    with torch.no_grad():
        bn.weight.copy_(rand(gen, 3, scale=0.5, shift=1.0))
        bn.bias.copy_(rand(gen, 3, scale=0.5))
    bn.eval()
    xe = rand(gen, *shape, scale=2.0, shift=0.5)
    save("bn2d_untracked", {"eval.input": xe, "eval.output": bn(xe)}, module_state("", bn))


def group_norm_case(case, groups, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    gn = nn.GroupNorm(min(groups, c), c, eps=1e-5).double()  # the authors' clamping
    with torch.no_grad():
        gn.weight.copy_(rand(gen, c, scale=0.5, shift=1.0))
        gn.bias.copy_(rand(gen, c, scale=0.5))
    x = rand(gen, *shape, scale=2.0, shift=0.5).requires_grad_(True)
    y = gn(x)
    g = rand(gen, *shape)
    (y * g).sum().backward()
    data = {
        "input": x,
        "output": y,
        "grad_output": g,
        "grad_input": x.grad,
        "grad_weight": gn.weight.grad,
        "grad_bias": gn.bias.grad,
    }
    save(case, data, module_state("", gn))


class BasicBlockP2(nn.Module):
    """The authors' XBNBlock-P2 BasicBlock (models/resnet_XBNBlock_P2.py):
    conv3x3(stride) -> GN -> ReLU -> conv3x3 -> BN, + downsample (1x1 conv, BN), ReLU."""

    def __init__(self, inp, planes, stride, groups):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.GroupNorm(min(groups, planes), planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential(
            nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


def basic_block_case(case, seed):
    gen = torch.Generator().manual_seed(seed)
    block = BasicBlockP2(8, 16, 2, 4).double()
    with torch.no_grad():
        for name, p in block.named_parameters():
            scale = 0.2 if p.dim() == 4 else 0.3
            shift = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
            p.copy_(rand(gen, *p.shape, scale=scale, shift=shift))
        for bn in (block.bn2, block.downsample[1]):
            bn.running_mean.copy_(rand(gen, 16, scale=0.3))
            bn.running_var.copy_(rand(gen, 16, scale=0.2).abs() + 0.5)
            bn.num_batches_tracked.fill_(7)
    params = module_state("", block)
    # xbn names the projection `downsample.conv` / `downsample.bn`.
    params = {k.replace("downsample.0.", "downsample.conv.").replace("downsample.1.", "downsample.bn."): v
              for k, v in params.items()}
    x = rand(gen, 4, 8, 6, 6)
    block.eval()
    data = {"input": x, "eval.output": block(x)}
    block.train()
    data["train.output"] = block(x)
    data["train.bn2.running_mean"] = block.bn2.running_mean
    data["train.bn2.running_var"] = block.bn2.running_var
    save(case, data, params)


def main():
    torch.manual_seed(0)
    batch_norm_case("bn2d_momentum", 2, (4, 3, 5, 5), 0.1, seed=1)
    batch_norm_case("bn2d_cumulative", 2, (4, 3, 5, 5), None, seed=2)
    batch_norm_case("bn1d_momentum", 1, (6, 4), 0.1, seed=3)
    batch_norm_case("bn1d_cumulative", 1, (6, 4), None, seed=4)
    batch_norm_option_cases(seed=8)
    group_norm_case("gn_g3_c6", 3, (2, 6, 4, 4), seed=5)
    group_norm_case("gn_clamped_g29_c24", 29, (2, 24, 3, 3), seed=6)
    basic_block_case("basic_block_p2", seed=7)
    param_counts()


# --------------------------------------------------------------------------
# Parameter counts (tests/fixtures/param_counts.json)
# --------------------------------------------------------------------------

def cifar_resnet(depth, shortcut, num_classes=10, in_ch=3):
    """He et al. 2016 §4.2 CIFAR ResNet (3x3 stem, 16/32/64 channels, n blocks per stage)."""
    n = (depth - 2) // 6

    class Block(nn.Module):
        def __init__(self, inp, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.proj = None
            if (stride != 1 or inp != planes) and shortcut == "B":
                self.proj = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    layers = [nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)]
    inp = 16
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            layers.append(Block(inp, planes, stride if i == 0 else 1))
            inp = planes
    layers.append(nn.Linear(64, num_classes))
    return nn.Sequential(*layers)


def torchvision_cifar(name, num_classes=10):
    import torchvision
    m = getattr(torchvision.models, name)(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def count(m):
    return sum(p.numel() for p in m.parameters())


def param_counts():
    import json
    counts = {}
    for depth in (20, 32, 44, 56, 110):
        for sc in ("A", "B"):
            counts[f"resnet{depth}-{sc}"] = count(cifar_resnet(depth, sc))
    counts["resnet20-A-mnist"] = count(cifar_resnet(20, "A", in_ch=1))
    for name in ("resnet18", "resnet34", "resnet50"):
        counts[f"{name}-cifar"] = count(torchvision_cifar(name))
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "param_counts.json")
    with open(path, "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
    print("param counts:", counts)


if __name__ == "__main__":
    main()
