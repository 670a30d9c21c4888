#!/usr/bin/env python3
"""One ResNet-20 training step (batch 128, 3×32×32, SGD) taken apart, xbn (flex) next to
PyTorch, in milliseconds per step: conv forward, conv backward (data and weight gradients),
norms, element-wise, optimizer, autodiff bookkeeping, allocation and the rest.

- xbn: `perf record` of `cargo bench --bench step_profile` (CPU samples of every thread),
  each sample's function sorted into a category by its name; a category's share of the
  samples times the measured wall time per step gives its milliseconds.
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

# xbn symbols (demangled Rust) -> category, first match wins.
XBN_RULES = [
    ("norms", r"xbn::norm::fused|batch_norm|group_norm"),
    ("conv backward", r"conv_transpose|conv2d_weight|weight_grad|conv2d_x_backward|backward_data|col2im"),
    ("conv forward", r"conv2d|im2col|gemm|matmul|conv_common"),
    ("optimizer", r"burn_optim|sgd|Sgd|momentum|weight_decay"),
    ("autodiff", r"burn_autodiff|Gradients|NodeRef|graph"),
    ("allocation", r"malloc|free|memset|memcpy|mmap|munmap|alloc|page_fault|clear_page|__memset"),
    ("element-wise", r"binary|unary|zip|scalar|relu|add|mul|sub|div|mask|copy_2d|pad|slice|pool|cast|expand|sum|mean|reduce"),
]

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
    bench = ["cargo", "bench", "--bench", "step_profile"]
    subprocess.run(bench + ["--no-run"], cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        run = subprocess.run(
            ["perf", "record", "-F", "499", "-o", data, "--"] + bench + ["--", plan, str(steps)],
            cwd=ROOT, capture_output=True, text=True, check=True)
        line = [l for l in run.stdout.splitlines() if "ms per step" in l][-1]
        ms_per_step = float(re.search(r"([0-9.]+) ms per step", line).group(1))
        report = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "--comm", "step_profile-*",
             "--sort", "symbol", "--stdio", "-F", "overhead,sym"],
            capture_output=True, text=True).stdout
        if "%" not in report:  # the comm filter takes no wildcard on some perf versions
            report = subprocess.run(
                ["perf", "report", "-i", data, "--no-children", "--sort", "comm,symbol",
                 "--stdio", "-F", "overhead,comm,sym"], capture_output=True, text=True).stdout
            report = "\n".join(l for l in report.splitlines() if "step_profile" in l)
    shares = collections.Counter()
    total = 0.0
    for line in report.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(?:\S+\s+)?\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        pct, sym = float(m.group(1)), m.group(2)
        shares[categorize(sym, XBN_RULES)] += pct
        total += pct
    return ms_per_step, {k: ms_per_step * v / max(total, 1e-9) for k, v in shares.items()}


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
    print("\nxbn: shares of CPU samples (both threads) times the wall time per step; PyTorch: "
          "self CPU time of the operators on the calling thread (profiled steps), which "
          "need not add up to the wall time.")


if __name__ == "__main__":
    main()
