#!/usr/bin/env python3
"""bench/gpu.sh's table: kiln-bench-gpu's reports (one per workload) and
bench/peers/torch_gpu.py's (one per workload and system) side by side.

  gpu_table.py --kiln K1.json ... --peers P1.json ... [--workloads=mlp-gpu,gpt2-gpu]
               [--systems=torch-eager,torch-compile] [--steps=N] [--warmup=N] [--json=OUT]

TFLOP/s and % of the sgemm rate use Kiln's FLOP count for every system (the
math is the same); the sgemm rate is the best of the kiln-bench-gpu runs'
medians. Kiln / peer is the ratio of the median step times (below 1: Kiln is
faster). A peer's losses of steps 1 and 2 must agree with Kiln's to 1e-3
(relative) when it started from Kiln's exported values. Exits 1 when a loss
check fails or a run is missing or failed."""
import argparse
import json
import sys

TOLERANCE = 1e-3


def rel_err(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def load(path):
    """The JSON object of a report: the whole file, else its last line (a
    peer's stdout may hold other lines before it)."""
    try:
        with open(path) as f:
            text = f.read().strip()
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.splitlines()[-1])
    except (OSError, ValueError, IndexError) as e:
        return {"error": f"{path}: {e}"}


def mb(value):
    return f"{value / 1048576:.0f}" if value is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", nargs="*", default=[])
    ap.add_argument("--peers", nargs="*", default=[])
    ap.add_argument("--workloads", default="mlp-gpu,gpt2-gpu")
    ap.add_argument("--systems", default="torch-eager,torch-compile")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--json", help="write everything to this file")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    systems = [s for s in args.systems.split(",") if s]

    failed = False
    kiln = {}
    device = sgemm = date = None
    rates, checks = [], []
    for path in args.kiln:
        report = load(path)
        if "error" in report:
            continue
        device, date = report["device"], report["date"]
        sgemm = report["sgemm"]
        rates.append(report["sgemm"]["tflops"])
        checks.append(report["sgemm"]["check_rel_err"])
        if not report["sgemm"].get("check_ok", True):
            failed = True
        for w in report["workloads"]:
            kiln[w["name"]] = w
    peers = {}
    for path in args.peers:
        report = load(path)
        if "system" in report and "workload" in report:
            peers[(report["workload"], report["system"])] = report
    peak = max(rates) * 1e12 if rates else None
    lines = []
    if device:
        lines.append(f"GPU: {device['name']} ({device['arch']}, {device['multiprocessors']} SMs, "
                     f"{device['memory_bytes'] / 2**30:.0f} GiB, driver {device['driver']}); {date}")
        lines.append(f"peak sgemm: {sgemm['n']}^3 f32 matmul ({sgemm['library']}), median of "
                     f"{sgemm['reps']} per run: {max(rates):.2f} TFLOP/s (runs: "
                     f"{', '.join(f'{r:.2f}' for r in rates)}); product checked against the host: "
                     f"rel err {max(checks):.1e} "
                     f"({'ok' if not failed else 'NOT exact f32 in some run: TF32?'})")
    else:
        lines.append("GPU: unknown (no kiln-bench-gpu report)")
    versions = next((p.get("versions") for p in peers.values() if p.get("versions")), {})
    if versions:
        lines.append(f"torch {versions.get('torch')} (CUDA {versions.get('cuda')}), TF32 off "
                     "(allow_tf32 False, float32 matmul precision 'highest')")
    lines.append(f"steps: {args.steps} timed, each by CUDA events, after {args.warmup} warm-up; "
                 "every system from Kiln's initial weights and one input batch")
    if any(k.get("tiny") for k in kiln.values()) or any(p.get("tiny") for p in peers.values()):
        lines.append("--tiny: the models at the CPU workloads' sizes: a check of the run, NOT the benchmark")
    lines.append("")
    lines.append("| workload | system | median ms | min ms | Kiln / system | TFLOP/s | % sgemm | "
                 "peak device MB | compile s | losses 1, 2 vs Kiln |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for w in workloads:
        k = kiln.get(w)
        flops = k["flops"] if k else None

        def figures(median):
            if flops is None or median is None:
                return "-", "-"
            tflops = flops / (median * 1e-3) / 1e12
            return f"{tflops:.2f}", (f"{100 * flops / peak * 1e3 / median:.1f}%" if peak else "-")

        if k:
            tf, eff = figures(k["median_ms"])
            lines.append(f"| {w} | kiln | {k['median_ms']:.2f} | {k['min_ms']:.2f} | 1.00 | {tf} | {eff} | "
                         f"{mb(k['peak_device_bytes'])} | cold {k['compile_cold_s']:.2f}, warm "
                         f"{k['compile_warm_s']:.2f} | {k['losses'][0]:.6f}, {k['losses'][1]:.6f} |")
        else:
            failed = True
            lines.append(f"| {w} | kiln | failed | | | | | | | |")
        for s in systems:
            p = peers.get((w, s))
            if not p or "error" in p or "median_ms" not in p:
                failed = True
                why = p.get("error", "no report") if p else "no report"
                lines.append(f"| {w} | {s} | failed ({why}) | | | | | | | |")
                continue
            tf, eff = figures(p["median_ms"])
            ratio = f"{k['median_ms'] / p['median_ms']:.2f}" if k else "-"
            if not k or p.get("init") != "kiln":
                check = "not compared (no Kiln export)"
                failed = True
            else:
                err = max(rel_err(a, b) for a, b in zip(k["losses"], p["losses"]))
                ok = err <= TOLERANCE and len(p["losses"]) >= 2
                failed |= not ok
                check = f"{'ok' if ok else 'DIFFER'} (rel {err:.1e})"
            lines.append(f"| {w} | {s} | {p['median_ms']:.2f} | {p['min_ms']:.2f} | {ratio} | {tf} | {eff} | "
                         f"{mb(p.get('peak_device_bytes'))} | first step {p['first_step_s']:.2f} | {check} |")
    lines.append("")
    lines.append("TFLOP/s and % sgemm: Kiln's FLOP count of the step (matmul 2*M*N*K, gradients included; "
                 "elementwise not counted) over the median step, and over the peak sgemm rate; "
                 "Kiln / system: Kiln's median over the system's (below 1: Kiln is faster); "
                 "peak device MB: Kiln's allocations (arena, params and optimizer state, cuBLASLt workspace), "
                 "torch.cuda.max_memory_allocated for PyTorch (neither counts the CUDA context); "
                 "compile: Kiln's cold (empty kernel cache) and warm compile, the peers' first step "
                 "(torch.compile compiles there); losses: steps 1 and 2 agree with Kiln's to "
                 f"{TOLERANCE:g} relative (ok) or not (DIFFER).")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "sgemm": sgemm, "sgemm_tflops_runs": rates, "date": date,
                       "steps": args.steps, "warmup": args.warmup, "kiln": kiln,
                       "peers": {f"{s}.{w}": p for (w, s), p in peers.items()}, "table": lines,
                       "failed": failed}, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
