#!/usr/bin/env python3
"""xbn against PyTorch, side by side on this machine: runs `cargo bench --bench resnet`
(criterion, xbn) and `tools/bench_pytorch.py` (PyTorch, the same workloads and names)
alternately for a few rounds, so both see the same machine, and prints for every workload
xbn's time, PyTorch's, the ratio and how busy the machine was meanwhile.

The machine is shared: "other procs" is the number of cores that processes other than the
benchmarks kept busy while each side ran (from /proc/stat, minus the benchmark's own CPU
time); figures taken while it is well above 0 are not comparable. The ratio column is
PyTorch time / xbn time (≥ 1 means xbn is at least as fast), each side's median over its
rounds.

Usage (from the repository root, with PyTorch installed for `python3`):
    python3 tools/side_by_side.py [--rounds 2] [--python PY] [--features F] [--json OUT]
"""

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def busy_jiffies():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle


def run(cmd, **kw):
    """Runs `cmd`; returns (stdout, wall seconds, other processes' cores)."""
    hz = os.sysconf("SC_CLK_TCK")
    b0, r0, t0 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    b1, r1, t1 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    other = max(0.0, (b1 - b0) / hz - own) / max(t1 - t0, 1e-9)
    return proc.stdout, t1 - t0, other


def criterion_results(target):
    """{"group/function": ms} from criterion's estimates of the last run."""
    out = {}
    for path in glob.glob(os.path.join(target, "criterion", "*", "*", "new", "estimates.json")):
        parts = path.split(os.sep)
        group, function = parts[-4], parts[-3]
        with open(path) as f:
            out[f"{group}/{function}"] = json.load(f)["median"]["point_estimate"] / 1e6
    return out


IMAGES = {"resnet20_train_b128": 128, "resnet20_infer_b256": 256}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--python", default=sys.executable, help="a python with torch")
    ap.add_argument("--features", default="", help="cargo features for the xbn side")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "side_by_side.json"))
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    cargo = ["cargo", "bench", "--bench", "resnet"]
    if args.features:
        cargo += ["--features", args.features]
    print("building the benchmarks...", file=sys.stderr)
    run(cargo + ["--no-run"], cwd=ROOT)
    xbn, torch, load = {}, {}, {"xbn": [], "pytorch": []}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: PyTorch", file=sys.stderr)
        out, _, other = run(
            [args.python, os.path.join(ROOT, "tools", "bench_pytorch.py"), "--threads",
             str(args.threads)], cwd=ROOT)
        load["pytorch"].append(other)
        for k, v in json.loads(out).items():
            if not k.startswith("_"):
                torch.setdefault(k, []).append(v["ms"])
        print(f"round {r + 1}/{args.rounds}: xbn", file=sys.stderr)
        # Only this run's estimates are read.
        shutil.rmtree(os.path.join(target, "criterion"), ignore_errors=True)
        _, _, other = run(cargo + ["--", "--noplot"], cwd=ROOT,
                          env={**os.environ, "RAYON_NUM_THREADS": str(args.threads)})
        load["xbn"].append(other)
        for k, v in criterion_results(target).items():
            xbn.setdefault(k, []).append(v)
    rows = []
    print(f"\n| benchmark | xbn | PyTorch | PyTorch time / xbn time |")
    print("|---|---|---|---|")
    for name in sorted(set(xbn) & set(torch)):
        a, b = statistics.median(xbn[name]), statistics.median(torch[name])
        group = name.split("/")[0]
        if group in IMAGES:
            unit = lambda ms: f"{IMAGES[group] / ms * 1e3:.1f} img/s"
        else:
            unit = lambda ms: f"{ms:.2f} ms"
        print(f"| {name} | {unit(a)} | {unit(b)} | {b / a:.2f} |")
        rows.append({"name": name, "xbn_ms": xbn[name], "pytorch_ms": torch[name],
                     "ratio": b / a})
    fmt = lambda v: ", ".join(f"{x:.2f}" for x in v)
    print(f"\nother processes (cores) while xbn ran: {fmt(load['xbn'])}; "
          f"while PyTorch ran: {fmt(load['pytorch'])}; {args.threads} threads each; "
          f"{os.cpu_count()} cores")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"rows": rows, "other_procs": load, "threads": args.threads,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S")}, f, indent=1)
    print(f"(raw figures in {args.json})")


if __name__ == "__main__":
    main()
