#!/usr/bin/env python3
"""PyTorch reference for the running statistics of a model after a few training steps
(issue 8, item 4: exports of a model still in training mode must hold the current
running statistics).

The network is tests/esm.rs's TinyBnNet (two conv-BN-ReLU layers, global average
pooling, Linear-BN1d-ReLU, classifier). It is trained 5 SGD steps (lr 0.1, momentum 0.9,
weight decay 1e-4, PyTorch's defaults otherwise) on fixed batches in train mode; then its
state_dict and its eval-mode logits on a fixed batch are recorded.

Writes tests/fixtures/golden/bn_net_5_steps.init.safetensors (initial state_dict; xbn
module paths = PyTorch names) and tests/fixtures/golden/bn_net_5_steps.data.safetensors
(batches, targets as float32, per-step losses, the state after the steps under
"after.<name>" with num_batches_tracked as float32 [1], the eval input and logits).

Usage: python3 tools/gen_train_steps.py   (needs torch, safetensors)
"""

import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gen_esm import TinyBnNet

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden")
STEPS = 5


def main():
    torch.manual_seed(11)
    model = TinyBnNet()
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    data = {}
    model.train()
    for step in range(STEPS):
        x = torch.randn(16, 3, 8, 8) * 1.5 + 0.2
        y = torch.randint(0, 10, (16,))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        data[f"step{step}.input"] = x
        data[f"step{step}.targets"] = y.to(torch.float32)
        data[f"step{step}.loss"] = loss.detach().reshape(1)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            v = v.to(torch.float32).reshape(1)
        data[f"after.{k}"] = v.detach().to(torch.float32)
    model.eval()
    x = torch.randn(6, 3, 8, 8) * 2.0 - 0.3
    with torch.no_grad():
        data["eval.input"] = x
        data["eval.logits"] = model(x)
    os.makedirs(OUT, exist_ok=True)
    save_file(init, os.path.join(OUT, "bn_net_5_steps.init.safetensors"))
    save_file({k: v.contiguous() for k, v in data.items()},
              os.path.join(OUT, "bn_net_5_steps.data.safetensors"))
    print("losses", [round(data[f"step{s}.loss"].item(), 4) for s in range(STEPS)])
    print("bn1 nbt", data["after.bn1.num_batches_tracked"].item())


if __name__ == "__main__":
    main()
