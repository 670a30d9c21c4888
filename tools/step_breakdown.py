#!/usr/bin/env python3
"""One ResNet-20 training step (batch 128, 3×32×32, SGD) taken apart, xbn (flex) next to
PyTorch, in milliseconds per step: conv forward, conv backward (data and weight gradients),
norms, element-wise, optimizer, autodiff bookkeeping, allocation and the rest.

- xbn: `perf record` (DWARF call stacks) of `cargo bench --bench step_profile` run on one
  thread, each sample sorted by the innermost operation on its stack; a category's share of
  the samples times the wall time per step (all threads) gives its milliseconds.
- PyTorch: `torch.profiler` over the same step (the network of tools/bench_pytorch.py),
  self CPU time of every aten operator sorted into the same categories.

Needs `perf` (Debian package linux-perf) and a python with torch.

Usage: python3 tools/step_breakdown.py [--plan bn|xbn-p2] [--steps 30] [--python PY]
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CATEGORIES = [
    "conv forward",
    "conv backward",
    "norms",
    "element-wise",
    "optimizer",
    "autodiff",
    "allocation",
    "other",
]

# xbn: the innermost frame of a sample's stack that names an operation decides its category
# (so a GEMM or a zero-fill inside a convolution counts for that convolution).
XBN_OPS = [
    ("norms", r"xbn::norm::fused"),
    ("conv backward", r"conv_transpose|conv2d_weight_backward|conv2d_x_backward|weight_backward"),
    ("conv forward", r"burn_flex::ops::conv::|ModuleOps.*::conv2d"),
    ("optimizer", r"burn_optim::"),
    ("element-wise", r"burn_flex::ops::(binary|unary|activation|pool|reduce|comparison|mask|"
                     r"slice|cat|expand|float|repeat_dim|gather_scatter)|burn_flex::zip|copy_2d"),
]
# Samples outside any operation.
XBN_REST = [
    ("allocation", r"malloc|_int_free|cfree|memset|page_fault|clear_page|mmap|munmap|alloc"),
    ("autodiff", r"burn_autodiff"),
]


def classify_stack(frames):
    """`frames`: function names from the leaf outwards."""
    for frame in frames:
        for category, pattern in XBN_OPS:
            if re.search(pattern, frame):
                return category
    for category, pattern in XBN_REST:
        if any(re.search(pattern, f) for f in frames[:3]) or (
                category == "autodiff" and any(re.search(pattern, f) for f in frames)):
            return category
    return "other"


# PyTorch operators -> category.
TORCH_RULES = [
    ("conv backward", r"convolution_backward"),
    ("conv forward", r"convolution|conv2d|mkldnn_convolution"),
    ("norms", r"batch_norm|group_norm"),
    ("optimizer", r"Optimizer|_foreach|sgd"),
    ("allocation", r"empty|zeros|zero_|resize|fill_"),
    ("autodiff", r"autograd|AccumulateGrad|Backward0|backward$"),
    ("element-wise", r"relu|threshold|add|mul|sub|div|pad|slice|copy|clone|mean|sum|softmax|nll|cross_entropy|adaptive_avg_pool|avg_pool|addmm|mm|t$|view|reshape|expand|cat"),
]


def categorize(name, rules):
    for category, pattern in rules:
        if re.search(pattern, name):
            return category
    return "other"


def xbn_breakdown(plan, steps):
    """Wall time per step with the usual threads; the split from a one-thread profile (so
    every sample's stack reaches the operation that caused it)."""
    built = subprocess.run(["cargo", "bench", "--bench", "step_profile", "--no-run"], cwd=ROOT,
                           check=True, capture_output=True, text=True)
    binary = re.search(r"\((\S*step_profile-[0-9a-f]+)\)", built.stderr).group(1)
    binary = os.path.join(ROOT, binary) if not os.path.isabs(binary) else binary
    run = subprocess.run([binary, plan, str(steps)], capture_output=True, text=True, check=True)
    ms_per_step = float(re.search(r"([0-9.]+) ms per step", run.stdout).group(1))
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-o", data,
                        "--", binary, plan, str(max(3, steps // 5))],
                       capture_output=True, check=True,
                       env={**os.environ, "RAYON_NUM_THREADS": "1"})
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"],
                                capture_output=True, text=True).stdout
    for sample in script.split("\n\n"):
        frames = [l.strip().split(None, 1)[1] for l in sample.splitlines() if len(l.split(None, 1)) == 2]
        if frames:
            counts[classify_stack(frames)] += 1
    total = sum(counts.values())
    return ms_per_step, {k: ms_per_step * v / max(total, 1) for k, v in counts.items()}


def torch_breakdown(python, plan, steps):
    code = f"""
import sys, time, json, torch, torch.nn.functional as F
sys.path.insert(0, {os.path.join(ROOT, 'tools')!r})
from bench_pytorch import ResNet20, tune_malloc
tune_malloc()
torch.set_num_threads({os.cpu_count()})
model = ResNet20({plan == 'xbn-p2'}).train()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
x, y = torch.randn(128, 3, 32, 32), torch.arange(128) % 10
def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()
for _ in range(3): step()
t = time.perf_counter()
for _ in range({steps}): step()
ms = 1e3 * (time.perf_counter() - t) / {steps}
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range({max(3, steps // 4)}): step()
rows = [(e.key, e.self_cpu_time_total / 1e3 / {max(3, steps // 4)}) for e in prof.key_averages()]
print(json.dumps({{"ms": ms, "rows": rows}}))
"""
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    import json
    data = json.loads(out.strip().splitlines()[-1])
    cats = collections.Counter()
    for name, ms in data["rows"]:
        cats[categorize(name, TORCH_RULES)] += ms
    return data["ms"], cats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="bn", choices=["bn", "xbn-p2"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    x_ms, x = xbn_breakdown(args.plan, args.steps)
    t_ms, t = torch_breakdown(args.python, args.plan, args.steps)
    print(f"ResNet-20 {args.plan}, batch 128, one training step (ms)\n")
    print("| part | xbn (flex) | PyTorch |")
    print("|---|---|---|")
    for c in CATEGORIES:
        print(f"| {c} | {x.get(c, 0.0):.1f} | {t.get(c, 0.0):.1f} |")
    print(f"| **step (wall)** | **{x_ms:.1f}** | **{t_ms:.1f}** |")
    print("\nxbn: the shares of a one-thread `perf` profile times the wall time per step with "
          "all threads; PyTorch: self CPU time of the operators on the calling thread "
          "(torch.profiler), which need not add up to the wall time.")


if __name__ == "__main__":
    main()
