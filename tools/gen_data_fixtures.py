#!/usr/bin/env python3
"""Write tiny CIFAR-10 / CIFAR-100 binary files and MNIST-style IDX files in the real formats.

The Rust readers are tested against these files, written here independently of the Rust
code from the published format descriptions:

- CIFAR-10 binary (https://www.cs.toronto.edu/~kriz/cifar.html): each record is 1 label
  byte then 3072 bytes, the 1024 red, 1024 green and 1024 blue values of a 32x32 image
  in row-major order. Files data_batch_1..5.bin and test_batch.bin.
- CIFAR-100 binary: 1 coarse label byte, 1 fine label byte, then the 3072 pixel bytes.
  Files train.bin and test.bin.
- IDX (http://yann.lecun.com/exdb/mnist/): big-endian magic 0x00000803 (images) or
  0x00000801 (labels), then the dimension sizes as big-endian uint32, then the bytes.

Outputs go to tests/fixtures/{cifar10,cifar100,fashion-mnist}/ with expected.json holding
the labels and, for each image, the pixel at (channel, row, col) = (c, r, k) for a few
probes. Usage: python3 tools/gen_data_fixtures.py (standard library only).
"""

import gzip
import json
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def pixel(seed, c, r, k):
    """Deterministic pixel value of image `seed` at channel c, row r, column k."""
    return (seed * 31 + c * 101 + r * 7 + k * 3 + (r * k) % 13) % 256


def image(seed, channels, size):
    return bytes(pixel(seed, c, r, k) for c in range(channels) for r in range(size) for k in range(size))


PROBES = [(0, 0, 0), (0, 31, 31), (1, 5, 7), (2, 16, 3)]


def cifar10():
    out = os.path.join(ROOT, "cifar10")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(10)
    expected = {}
    seed = 0
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records, labels, probes = [], [], []
        for _ in range(2):
            label = rng.randrange(10)
            records.append(bytes([label]) + image(seed, 3, 32))
            labels.append(label)
            probes.append([pixel(seed, c, r, k) for c, r, k in PROBES])
            seed += 1
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(records))
        expected[name] = {"labels": labels, "probes": probes}
    expected["probe_positions"] = PROBES
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


def cifar100():
    out = os.path.join(ROOT, "cifar100")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(100)
    expected = {}
    seed = 1000
    for name in ("train.bin", "test.bin"):
        records, fine, probes = [], [], []
        for _ in range(3):
            coarse, label = rng.randrange(20), rng.randrange(100)
            records.append(bytes([coarse, label]) + image(seed, 3, 32))
            fine.append(label)
            probes.append([pixel(seed, c, r, k) for c, r, k in PROBES])
            seed += 1
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(records))
        expected[name] = {"labels": fine, "probes": probes}
    expected["probe_positions"] = PROBES
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


def idx():
    """A tiny Fashion-MNIST-shaped set: train gzip-compressed, test raw."""
    out = os.path.join(ROOT, "fashion-mnist")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(28)
    expected = {}
    seed = 2000
    for prefix, n, compress in (("train", 5, True), ("t10k", 3, False)):
        imgs, labels, probes = [], [], []
        for _ in range(n):
            imgs.append(image(seed, 1, 28))
            labels.append(rng.randrange(10))
            probes.append([pixel(seed, 0, r, k) for r, k in ((0, 0), (27, 27), (13, 5))])
            seed += 1
        img_bytes = struct.pack(">IIII", 0x00000803, n, 28, 28) + b"".join(imgs)
        lab_bytes = struct.pack(">II", 0x00000801, n) + bytes(labels)
        for base, data in ((f"{prefix}-images-idx3-ubyte", img_bytes), (f"{prefix}-labels-idx1-ubyte", lab_bytes)):
            if compress:
                with gzip.open(os.path.join(out, base + ".gz"), "wb") as f:
                    f.write(data)
            else:
                with open(os.path.join(out, base), "wb") as f:
                    f.write(data)
        expected[prefix] = {"labels": labels, "probes": probes}
    expected["probe_positions"] = [[0, 0], [27, 27], [13, 5]]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    cifar10()
    cifar100()
    idx()
    print("wrote", ROOT)
