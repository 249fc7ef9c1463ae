#!/usr/bin/env python3
"""ctest bench-smoke: kiln-bench runs and reports what bench/README.md says,
and, when the peers' .venv exists, bench/compare agrees with PyTorch and JAX
on the losses of the mlp workloads (a few steps: a check, not a measurement).
  smoke_test.py --build=BUILD --source=SOURCE
Exits 77 (skipped) for the compare part only when there is no .venv."""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def fail(message):
    print(f"bench-smoke: FAILED: {message}")
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "kiln-bench")
    with tempfile.TemporaryDirectory() as export:
        out = subprocess.run([bench, "--json", "--workloads=mlp-infer,mlp", "--steps=3",
                              "--warmup=2", "--threads=1", "--sgemm-size=256",
                              f"--export-dir={export}"], stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            fail("kiln-bench exited with " + str(out.returncode))
        report = json.loads(out.stdout)
        if report["threads"] != 1 or report["threads_source"] != "--threads":
            fail(f"threads: {report['threads']} from {report['threads_source']}")
        if not report["sgemm"]["gflops"] > 0:
            fail("no sgemm rate")
        by_name = {w["name"]: w for w in report["workloads"]}
        # tests/unit/FlopsTest.cpp's hand counts.
        expected = {"mlp-infer": 171180032, "mlp": 410779648}
        for name, flops in expected.items():
            w = by_name[name]
            if w["flops"] != flops:
                fail(f"{name}: {w['flops']} FLOPs, expected {flops}")
            if len(w["step_ms"]) != 3 or not 0 < w["min_ms"] <= w["median_ms"]:
                fail(f"{name}: step times {w['step_ms']}, median {w['median_ms']}")
            if not 0 < w["max_live_bytes"] <= w["arena_bytes"] or w["peak_rss_bytes"] <= 0:
                fail(f"{name}: memory {w['max_live_bytes']} / {w['arena_bytes']} / {w['peak_rss_bytes']}")
            if not (w["compile_cold_s"] > 0 and w["compile_warm_s"] > 0):
                fail(f"{name}: compile times")
            if abs(w["efficiency"] - w["limit_ms"] / w["median_ms"]) > 1e-9 * w["efficiency"]:
                fail(f"{name}: efficiency {w['efficiency']} is not limit_ms / median_ms")
        # The forward pass is the same on the same values; training lowers the loss.
        infer, train = by_name["mlp-infer"]["losses"], by_name["mlp"]["losses"]
        if infer[0] != train[0] or infer[0] != infer[1] or not train[1] < train[0]:
            fail(f"losses: infer {infer}, train {train}")
        if not os.path.exists(os.path.join(export, "mlp.safetensors")):
            fail("no mlp.safetensors exported")
    print("bench-smoke: kiln-bench ok")

    python = os.path.join(args.source, ".venv", "bin", "python")
    if not os.access(python, os.X_OK):
        print("bench-smoke: no .venv (bench/peers/setup.sh): compare not run")
        sys.exit(77)
    done = subprocess.run([os.path.join(args.source, "bench", "compare"), f"--build={args.build}",
                           "--workloads=mlp-infer,mlp", "--systems=torch-eager,jax", "--steps=2",
                           "--warmup=2", "--threads=1"], stdout=subprocess.PIPE, text=True)
    print(done.stdout)
    if done.returncode != 0 or "losses agree" not in done.stdout:
        fail("bench/compare: " + str(done.returncode))
    print("bench-smoke: compare ok")


if __name__ == "__main__":
    main()
