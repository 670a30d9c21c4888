#!/usr/bin/env python3
"""PyTorch reference for xbn's estimation shift measurement (issue 4).

Builds a small BatchNorm network (two conv-BN-ReLU layers, global average pooling, a
Linear-BN1d-ReLU layer, a classifier), trains it a few SGD steps on one distribution, then
computes on a shifted "test set", in eval mode and with forward pre-hooks, the expected
statistics of every BN input (mean and population variance per channel, float64) and the
estimation shift magnitudes

    esm_mean = || running_mean - E[x] ||_2,   esm_var = || running_var - Var[x] ||_2

as defined in Huang et al. (CVPR 2022) §4.1.

Writes tests/fixtures/esm/tiny_bn_net.pth (weights; the module names are xbn's paths),
tests/fixtures/esm/tiny_bn_net.data.safetensors (test images) and
tests/fixtures/esm/tiny_bn_net.esm.json (expected statistics and ESM per layer).

Usage: python3 tools/gen_esm.py   (needs torch, safetensors)
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "esm")


class TinyBnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16, 12)
        self.bn3 = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = x.mean((2, 3))
        x = F.relu(self.bn3(self.fc1(x)))
        return self.fc2(x)


def main():
    torch.manual_seed(4)
    model = TinyBnNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(6):
        x = torch.randn(16, 3, 8, 8) * 1.5 + 0.2
        y = torch.randint(0, 10, (16,))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    # The test set comes from a shifted distribution.
    test = torch.randn(100, 3, 8, 8) * 2.0 - 0.3
    inputs = {}

    def hook(name):
        def f(module, args):
            inputs.setdefault(name, []).append(args[0].detach().double())
        return f

    for name in ("bn1", "bn2", "bn3"):
        getattr(model, name).register_forward_pre_hook(hook(name))
    with torch.no_grad():
        for batch in test.split(25):
            model(batch)
    layers = []
    for depth, name in enumerate(("bn1", "bn2", "bn3"), 1):
        x = torch.cat(inputs[name])
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        bn = getattr(model, name)
        rm, rv = bn.running_mean.double(), bn.running_var.double()
        layers.append({
            "depth": depth, "path": name, "channels": mean.numel(),
            "esm_mean": (rm - mean).norm().item(), "esm_var": (rv - var).norm().item(),
            "expected_mean": mean.tolist(), "expected_var": var.tolist(),
        })
    os.makedirs(OUT, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(OUT, "tiny_bn_net.pth"))
    save_file({"images": test.contiguous()}, os.path.join(OUT, "tiny_bn_net.data.safetensors"))
    with open(os.path.join(OUT, "tiny_bn_net.esm.json"), "w") as f:
        json.dump({"layers": layers}, f, indent=1)
    for l in layers:
        print(l["path"], l["esm_mean"], l["esm_var"])


if __name__ == "__main__":
    main()
