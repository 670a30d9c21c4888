#!/usr/bin/env python3
"""PyTorch side of xbn's criterion benchmark `benches/resnet.rs`: the same workloads,
under the same names (`group/function`), timed the same way (median of repeated calls).

- resnet20_train_b128/{bn,xbn-p2}: CIFAR ResNet-20 (He et al. §4.2, option-A shortcuts),
  XBN-P2 = GroupNorm(min(64, C)) in the stem and as the first norm of every block; one
  training step = forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4)
  on a batch of 128 random 3×32×32 images.
- resnet20_infer_b256/{bn,xbn-p2}: eval-mode forward of 256 images (torch.inference_mode).
- norm_fwd_bwd_64x64x32x32/{batchnorm_train,groupnorm_g32,groupnorm_g64}: forward and
  backward from a gradient of ones (`y.backward(torch.ones_like(y))`, as Burn's
  `y.backward()`), on a [64, 64, 32, 32] input that requires grad.
- norm_fwd_64x64x32x32/{batchnorm_eval,groupnorm_g32}: forward only, inference mode.

Threads: `--threads` (default: the cores of this machine). glibc malloc is tuned like xbn's
binary and benchmarks (`xbn::malloc`): freed activation buffers are kept for reuse.

Prints one JSON object: {"name": {"ms": median, "min": .., "max": .., "n": ..}, ...,
"_meta": {...}}.

Usage: python3 tools/bench_pytorch.py [--threads 2] [--quick]
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def tune_malloc(limit=1 << 30):
    """M_MMAP_THRESHOLD and M_TRIM_THRESHOLD raised, as xbn::malloc::tune_malloc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, limit)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, limit)  # M_TRIM_THRESHOLD
    except OSError:
        pass


def norm(c, gn):
    return nn.GroupNorm(min(64, c), c) if gn else nn.BatchNorm2d(c)


class Block(nn.Module):
    def __init__(self, inp, planes, stride, xbn):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes, xbn)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes, False)
        self.pad = planes - inp if (stride != 1 or inp != planes) else 0
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.pad:
            sc = x[:, :, ::2, ::2]
            sc = F.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + sc)


class ResNet20(nn.Module):
    def __init__(self, xbn, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = norm(16, xbn)
        layers, inp = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(Block(inp, planes, stride if i == 0 else 1, xbn))
                inp = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def timed(f, warmup, iters, max_s):
    for _ in range(warmup):
        f()
    times = []
    start = time.perf_counter()
    while len(times) < iters and (time.perf_counter() - start < max_s or len(times) < 3):
        t = time.perf_counter()
        f()
        times.append(1e3 * (time.perf_counter() - t))
    return {
        "ms": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "n": len(times),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_malloc()
    torch.manual_seed(0)
    scale = 0.4 if args.quick else 1.0
    out = {}

    def record(name, f, warmup, iters, max_s):
        out[name] = timed(f, warmup, max(3, int(iters * scale)), max_s * scale)
        print(f"{name}: {out[name]['ms']:.2f} ms", file=sys.stderr)

    x = torch.randn(128, 3, 32, 32)
    y = torch.arange(128) % 10
    for plan in ("bn", "xbn-p2"):
        model = ResNet20(plan == "xbn-p2").train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        record(f"resnet20_train_b128/{plan}", step, 3, 20, 20)
    xi = torch.randn(256, 3, 32, 32)
    for plan in ("bn", "xbn-p2"):
        model = ResNet20(plan == "xbn-p2").eval()

        def infer():
            with torch.inference_mode():
                return model(xi).sum().item()

        record(f"resnet20_infer_b256/{plan}", infer, 3, 20, 15)

    shape = (64, 64, 32, 32)
    xn = torch.randn(*shape, requires_grad=True)
    for name, m in (
        ("batchnorm_train", nn.BatchNorm2d(64).train()),
        ("groupnorm_g32", nn.GroupNorm(32, 64)),
        ("groupnorm_g64", nn.GroupNorm(64, 64)),
    ):
        def fwd_bwd(m=m):
            xn.grad = None
            m.zero_grad(set_to_none=True)
            yn = m(xn)
            yn.backward(torch.ones_like(yn))

        record(f"norm_fwd_bwd_64x64x32x32/{name}", fwd_bwd, 5, 60, 8)
    xe = torch.randn(*shape)
    for name, m in (
        ("batchnorm_eval", nn.BatchNorm2d(64).eval()),
        ("groupnorm_g32", nn.GroupNorm(32, 64)),
    ):
        def fwd(m=m):
            with torch.inference_mode():
                return m(xe)

        record(f"norm_fwd_64x64x32x32/{name}", fwd, 5, 60, 6)
    out["_meta"] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
