#!/usr/bin/env python3
"""ctest bench-gpu-smoke: what of the GPU benchmark runs without a GPU.

  gpu_smoke_test.py --build=BUILD --source=SOURCE

1. bash -n bench/gpu.sh;
2. kiln-bench-gpu (when built, i.e. with KILN_ENABLE_CUDA): --compile-only
   compiles mlp-gpu at full size and gpt2-gpu at --tiny size with NVRTC and
   counts the FLOPs of the hand formulas; a short --tiny run either runs (on a
   GPU) or fails with the one line "kiln-bench-gpu: error: no CUDA ...";
3. when .venv has torch and kiln-bench (the CPU backend) is built:
   bench/gpu.sh itself, on the CPU: a stand-in kiln-bench-gpu runs kiln-bench
   at the CPU workloads' sizes (the --tiny sizes) and writes its report in
   kiln-bench-gpu's format, PYTHON runs torch_gpu.py with --device=cpu --tiny;
   the table must show every row and the losses must agree.
Exits 77 (skipped) when none of these could run."""
import argparse
import json
import os
import re
import stat
import subprocess
import sys
import tempfile


def fail(message):
    print(f"bench-gpu-smoke: FAILED: {message}")
    sys.exit(1)


def gpt_flops(batch, seq, vocab, d, heads, layers):
    """A training step's matmul FLOPs: 3x the forward (each matmul's two
    gradients do as many; the embedding gathers count nothing)."""
    n = batch * seq
    linear = 2 * n * 12 * d * d * layers + 2 * n * d * vocab
    attention = 2 * 2 * batch * heads * seq * seq * (d // heads) * layers
    return 3 * (linear + attention)


def mlp_flops(batch, inputs, hidden, classes):
    forward = 2 * batch * (inputs * hidden + hidden * hidden + hidden * classes)
    return 2 * forward + 2 * batch * (hidden * hidden + hidden * classes)  # no gradient of x


def check_kiln_bench_gpu(bench):
    out = subprocess.run([bench, "--compile-only", "--json", "--workloads=mlp-gpu"],
                         stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        fail(f"kiln-bench-gpu --compile-only exited with {out.returncode}")
    w = json.loads(out.stdout)["workloads"][0]
    if w["flops"] != mlp_flops(4096, 4096, 4096, 1000) or w["flops"] != 787858063360:
        fail(f"mlp-gpu: {w['flops']} FLOPs")
    if not (0 < w["max_live_bytes"] <= w["arena_bytes"] and w["compile_cold_s"] > 0):
        fail(f"mlp-gpu: {w}")
    out = subprocess.run([bench, "--compile-only", "--json", "--workloads=gpt2-gpu", "--tiny"],
                         stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        fail(f"kiln-bench-gpu --compile-only --tiny exited with {out.returncode}")
    w = json.loads(out.stdout)["workloads"][0]
    if w["flops"] != gpt_flops(8, 128, 512, 256, 4, 2) or w["flops"] != 11274289152:
        fail(f"gpt2-gpu --tiny: {w['flops']} FLOPs")
    print("bench-gpu-smoke: kiln-bench-gpu --compile-only ok (FLOPs as the hand counts)")

    out = subprocess.run([bench, "--workloads=mlp-gpu", "--tiny", "--steps=2", "--warmup=2",
                          "--sgemm-size=256", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if out.returncode == 0:
        w = json.loads(out.stdout)["workloads"][0]
        if not (w["graph_replay"] and w["losses"][1] < w["losses"][0] and w["peak_device_bytes"] > 0):
            fail(f"kiln-bench-gpu on the GPU: {w}")
        print("bench-gpu-smoke: kiln-bench-gpu ran on the GPU")
    else:
        lines = out.stderr.strip().splitlines()
        if out.returncode != 1 or len(lines) != 1 or not re.match(
                r"kiln-bench-gpu: error: no CUDA (driver|device)", lines[0]):
            fail(f"kiln-bench-gpu without a GPU: exit {out.returncode}, {out.stderr!r}")
        print(f"bench-gpu-smoke: without a GPU: {lines[0]}")


# The stand-in for kiln-bench-gpu: kiln-bench (CPU) at the --tiny sizes, its
# report and exports renamed to kiln-bench-gpu's.
STAND_IN = r'''#!/usr/bin/env python3
import json, os, subprocess, sys, tempfile
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
workload = args["workloads"]
model = {"mlp-gpu": "mlp", "gpt2-gpu": "gpt"}[workload]
export = tempfile.mkdtemp()
out = subprocess.run([KILN_BENCH, "--json", "--workloads=" + model, "--steps=" + args["steps"],
                      "--warmup=" + args["warmup"], "--threads=1", "--sgemm-size=256",
                      "--export-dir=" + export], stdout=subprocess.PIPE, text=True, check=True)
report = json.loads(out.stdout)
os.rename(os.path.join(export, model + ".safetensors"),
          os.path.join(args["export-dir"], workload + ".safetensors"))
w = report["workloads"][0]
w.update(name=workload, peak_device_bytes=w["peak_rss_bytes"], graph_replay=True)
print(json.dumps({"date": report["date"], "steps": report["steps"], "warmup": report["warmup"],
                  "device": {"name": "CPU stand-in", "arch": "cpu", "multiprocessors": 1,
                             "memory_bytes": 0, "driver": "none"},
                  "sgemm": {"n": 256, "reps": 5, "tflops": report["sgemm"]["gflops"] / 1e3,
                            "median_ms": 1, "tflops_best": report["sgemm"]["gflops"] / 1e3,
                            "check_rel_err": 0, "check_ok": True, "library": "OpenBLAS"},
                  "workloads": [w]}))
'''


def check_gpu_sh(source, build, python):
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "build", "bench"))
        stand_in = os.path.join(tmp, "build", "bench", "kiln-bench-gpu")
        with open(stand_in, "w") as f:
            f.write(STAND_IN.replace("KILN_BENCH", repr(os.path.join(build, "bench", "kiln-bench")), 1)
                    .replace("#!/usr/bin/env python3", "#!" + sys.executable, 1))
        os.chmod(stand_in, stat.S_IRWXU)
        wrapper = os.path.join(tmp, "python")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/bash\ncase "$1" in *torch_gpu.py) exec {python} "$@" --device=cpu --tiny '
                    f'--threads=1 ;; *) exec {python} "$@" ;; esac\n')
        os.chmod(wrapper, stat.S_IRWXU)
        env = dict(os.environ, KILN_BUILD=os.path.join(tmp, "build"), PYTHON=wrapper,
                   OUT=os.path.join(tmp, "out"))
        done = subprocess.run(["bash", os.path.join(source, "bench", "gpu.sh"), "--systems=torch-eager",
                               "--steps=2", "--warmup=2", "--tiny"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        print(done.stdout)
        if done.returncode != 0:
            fail(f"bench/gpu.sh exited with {done.returncode}")
        rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "-gpu |" in line]
        if len(rows) != 4 or sum("| ok (rel" in r for r in rows) != 2:
            fail(f"bench/gpu.sh's table: {rows}")
        if "--tiny: the models at the CPU workloads' sizes" not in done.stdout:
            fail("bench/gpu.sh --tiny: the table does not say so")
        summary = json.load(open(os.path.join(tmp, "out", "bench-gpu.json")))
        if summary["failed"] or set(summary["kiln"]) != {"mlp-gpu", "gpt2-gpu"}:
            fail("bench-gpu.json")
    print("bench-gpu-smoke: bench/gpu.sh ok (on the CPU, --tiny sizes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    if subprocess.run(["bash", "-n", os.path.join(args.source, "bench", "gpu.sh")]).returncode != 0:
        fail("bash -n bench/gpu.sh")
    ran = False
    bench = os.path.join(args.build, "bench", "kiln-bench-gpu")
    if os.access(bench, os.X_OK):
        check_kiln_bench_gpu(bench)
        ran = True
    python = os.path.join(args.source, ".venv", "bin", "python")
    has_torch = os.access(python, os.X_OK) and subprocess.run(
        [python, "-c", "import torch"], stderr=subprocess.DEVNULL).returncode == 0
    if has_torch and os.access(os.path.join(args.build, "bench", "kiln-bench"), os.X_OK):
        check_gpu_sh(args.source, args.build, python)
        ran = True
    else:
        print("bench-gpu-smoke: gpu.sh not run (needs .venv with torch and kiln-bench)")
    if not ran:
        sys.exit(77)


if __name__ == "__main__":
    main()
