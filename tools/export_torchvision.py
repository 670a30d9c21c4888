#!/usr/bin/env python3
"""Write a torchvision model's weights (random init, with non-trivial BN running
statistics) as a PyTorch checkpoint, plus an input batch and its eval-mode logits, for
`cargo run --release --example import_check`. With --check FILE, load an xbn-exported
safetensors file into the same torchvision model and compare its logits instead.

Usage:
  python3 tools/export_torchvision.py --model resnet50 --out DIR
  python3 tools/export_torchvision.py --model resnet50 --out DIR --check DIR/xbn.safetensors
"""

import argparse
import os

import torch
import torchvision
from safetensors.torch import load_file, save_file


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--out", required=True)
    p.add_argument("--check")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)()
    if args.check:
        model.load_state_dict(load_file(args.check))
        model.eval()
        io = load_file(os.path.join(args.out, "io.safetensors"))
        with torch.no_grad():
            logits = model(io["input"])
        print("PyTorch loaded", args.check, "max |diff| =", (logits - io["logits"]).abs().max().item())
        return
    # Non-trivial running statistics: a few training-mode forwards.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 224, 224) * 2 + 0.5)
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = model(x)
    torch.save(model.state_dict(), os.path.join(args.out, "weights.pth"))
    save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(args.out, "io.safetensors"))
    print("wrote", args.out, "logits", tuple(logits.shape), "max |logit|", logits.abs().max().item())


if __name__ == "__main__":
    main()
