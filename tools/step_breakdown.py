#!/usr/bin/env python3
"""One ResNet-20 training step (batch 128, 3×32×32, option-A shortcuts, SGD) taken apart,
xbn (flex) next to PyTorch, in milliseconds per step, both measured the same way: each kind
of operation timed on the step's own shapes (median of repeats), in one window:

- conv forward (19 convolutions), conv backward for the data (18: the stem's input needs no
  gradient) and for the weights (19);
- norms: forward and backward of the 19 norm layers;
- element-wise: ReLU (19), residual additions (9), the two option-A shortcuts, the head
  (average pool, linear, cross-entropy), forward and backward;
- optimizer: the optimizer's step, timed within each whole step;
- autodiff and the rest: the step's forward and backward minus the parts above (graph
  bookkeeping, allocation, layout copies; negative where the isolated timings, each with
  cold caches, add up to more than the same operations inside the step).

xbn: `cargo bench --bench step_breakdown -- PLAN REPEATS` (benches/step_breakdown.rs).
PyTorch: the same list below, with `torch.ops.aten.convolution_backward` for the two conv
gradients (what autograd calls).

Usage: python3 tools/step_breakdown.py [--plan bn|xbn-p2] [--repeats 10] [--threads 2]
       [--python PY] [--backend flex|tch] [--features F]   (PY: a python with torch; default this one)
"""

import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ["conv forward", "conv backward (data)", "conv backward (weight)", "norms",
         "element-wise", "optimizer", "autodiff and the rest"]

TORCH_CODE = r"""
import json, statistics, sys, time, torch, torch.nn.functional as F
sys.path.insert(0, TOOLS)
from bench_pytorch import ResNet20, tune_malloc
tune_malloc()
torch.set_num_threads(THREADS)
N = 128
xbn = PLAN == "xbn-p2"

def t(f):
    f()
    times = []
    for _ in range(REPEATS):
        s = time.perf_counter(); f(); times.append(1e3 * (time.perf_counter() - s))
    return statistics.median(times)

convs = [(3, 16, 32, 1)] + [(16, 16, 32, 1)] * 6 + [(16, 32, 32, 2)] + [(32, 32, 16, 1)] * 5 \
    + [(32, 64, 16, 2)] + [(64, 64, 8, 1)] * 5
r = dict.fromkeys(["conv forward", "conv backward (data)", "conv backward (weight)", "norms",
                   "element-wise"], 0.0)
for i, (cin, cout, size, stride) in enumerate(convs):
    out = size // stride
    x, w, g = torch.randn(N, cin, size, size), torch.randn(cout, cin, 3, 3), torch.randn(N, cout, out, out)
    with torch.no_grad():
        r["conv forward"] += t(lambda: F.conv2d(x, w, None, stride, 1))
        cb = lambda mask: torch.ops.aten.convolution_backward(
            g, x, w, None, [stride] * 2, [1, 1], [1, 1], False, [0, 0], 1, mask)
        r["conv backward (weight)"] += t(lambda: cb([False, True, False]))
        if i > 0:
            r["conv backward (data)"] += t(lambda: cb([True, False, False]))
    gn = xbn and (i == 0 or i % 2 == 1)
    mod = torch.nn.GroupNorm(min(64, cout), cout) if gn else torch.nn.BatchNorm2d(cout)
    xn = torch.randn(N, cout, out, out)
    def norm_step():
        xr = xn.detach().requires_grad_()
        y = mod(xr); y.backward(torch.ones_like(y))
    r["norms"] += t(norm_step)
    def relu_step():
        xr = xn.detach().requires_grad_()
        y = F.relu(xr); y.backward(torch.ones_like(y))
    r["element-wise"] += t(relu_step)
for c, size in [(16, 32), (32, 16), (64, 8)]:
    a, b = torch.randn(N, c, size, size), torch.randn(N, c, size, size)
    def add_step():
        ar, br = a.detach().requires_grad_(), b.detach().requires_grad_()
        y = ar + br; y.backward(torch.ones_like(y))
    r["element-wise"] += 3 * t(add_step)
for c, size in [(16, 32), (32, 16)]:
    x = torch.randn(N, c, size, size)
    def shortcut():
        xr = x.detach().requires_grad_()
        y = F.pad(xr[:, :, ::2, ::2], (0, 0, 0, 0, c // 2, c // 2)); y.backward(torch.ones_like(y))
    r["element-wise"] += t(shortcut)
fc = torch.nn.Linear(64, 10)
labels = torch.arange(N) % 10
xh = torch.randn(N, 64, 8, 8)
def head():
    xr = xh.detach().requires_grad_()
    F.cross_entropy(fc(xr.mean((2, 3))), labels).backward()
r["element-wise"] += t(head)
model = ResNet20(xbn).train()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
images = torch.randn(N, 3, 32, 32)
fb, op, st = [], [], []
for i in range(REPEATS + 1):
    s0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels); loss.backward(); loss.item()
    s1 = time.perf_counter()
    opt.step()
    s2 = time.perf_counter()
    if i > 0:
        fb.append(1e3 * (s1 - s0)); op.append(1e3 * (s2 - s1)); st.append(1e3 * (s2 - s0))
without = statistics.median(fb)
r["optimizer"] = statistics.median(op)
r["step"] = statistics.median(st)
r["autodiff and the rest"] = without - sum(r[k] for k in ["conv forward", "conv backward (data)",
    "conv backward (weight)", "norms", "element-wise"])
print(json.dumps(r))
"""


def xbn_side(plan, repeats, backend, features):
    cmd = ["cargo", "bench", "--quiet", "--bench", "step_breakdown"]
    features = " ".join(f for f in [features, "" if backend == "flex" else backend] if f)
    if features:
        cmd += ["--features", features]
    cmd += ["--", plan, str(repeats), backend]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(re.search(r"^\{.*\}$", out, re.M).group(0))


def torch_side(python, plan, repeats, threads):
    code = (TORCH_CODE.replace("TOOLS", repr(os.path.join(ROOT, "tools")))
            .replace("THREADS", str(threads)).replace("PLAN", repr(plan))
            .replace("REPEATS", str(repeats)))
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="bn", choices=["bn", "xbn-p2"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--backend", default="flex", choices=["flex", "tch"],
                    help="xbn's backend (tch: run with the environment of tools/backend_tests.sh)")
    ap.add_argument("--features", default="",
                    help="more cargo features for the xbn side (e.g. ndarray, to reuse the "
                         "test command's build)")
    args = ap.parse_args()
    x = xbn_side(args.plan, args.repeats, args.backend, args.features)
    t = torch_side(args.python, args.plan, args.repeats, args.threads)
    print(f"ResNet-20 {args.plan}, batch 128, one training step, ms ({args.threads} threads)\n")
    print(f"| part | xbn ({args.backend}) | PyTorch | xbn / PyTorch |")
    print("|---|---|---|---|")
    for p in PARTS + ["step"]:
        name = f"**{p} (wall)**" if p == "step" else p
        ratio = x[p] / t[p] if t[p] > 0.05 else float("nan")
        print(f"| {name} | {x[p]:.1f} | {t[p]:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
