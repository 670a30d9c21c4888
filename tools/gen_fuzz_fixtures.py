#!/usr/bin/env python3
"""Small valid files that tests/fuzz_parsers.rs truncates and mutates (issue 8).

Writes tests/fixtures/fuzz/:
  tiny_bn_net_legacy.pth   the weights of tools/gen_esm.py's TinyBnNet in PyTorch's legacy
                           (pre-1.6, non-zip) torch.save format (the zip format's fixture is
                           tests/fixtures/esm/tiny_bn_net.pth)
  pattern_32x24.jpg        a 32x24 RGB JPEG (quality 90)
  pattern_32x24.png        the same picture as PNG (grey + alpha, to exercise conversion)

Usage: python3 tools/gen_fuzz_fixtures.py   (needs torch, pillow)
"""

import os

import torch
from PIL import Image

from gen_esm import TinyBnNet

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fuzz")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(3)
    sd = TinyBnNet().state_dict()
    torch.save(sd, os.path.join(OUT, "tiny_bn_net_legacy.pth"), _use_new_zipfile_serialization=False)
    img = Image.new("RGB", (32, 24))
    img.putdata([((x * 8) % 256, (y * 10) % 256, ((x + y) * 5) % 256) for y in range(24) for x in range(32)])
    img.save(os.path.join(OUT, "pattern_32x24.jpg"), quality=90)
    img.convert("LA").save(os.path.join(OUT, "pattern_32x24.png"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
