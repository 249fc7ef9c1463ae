#!/usr/bin/env python3
"""`kiln run --target=cuda` on a GPU (CTest label gpu; exit 77 without one).

1. The gpt example's AdamW training step, 5 steps on the GPU (a CUDA graph
   from the second step on) and with --no-cuda-graph, against the reference
   interpreter running the same step (`kiln compile --train -o step.kir`,
   `kiln run step.kir`): every loss within 1e-4 relative.
2. compute-sanitizer: memcheck on 3 steps of that training step (eager,
   captured, replayed), racecheck and initcheck on 2 steps of the mlp
   example: no error.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def losses(output):
    return [float(m.group(1)) for m in re.finditer(r"^step \d+/\d+ loss=(\S+)", output, re.M)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--part", choices=["losses", "sanitizer"], required=True)
    args = parser.parse_args()
    kiln = os.path.join(args.bin_dir, "kiln")
    gpt = os.path.join(args.source_dir, "examples", "gpt.kir")
    mlp = os.path.join(args.source_dir, "examples", "mlp.kir")
    probe = run([kiln, "run", mlp, "--target=cuda"])
    if probe.returncode != 0 and ("no CUDA driver" in probe.stderr or "no CUDA device" in probe.stderr
                                  or "no CUDA backend" in probe.stderr):
        print("skipped: " + probe.stderr.strip())
        return SKIP
    if probe.returncode != 0:
        print(probe.stdout + probe.stderr)
        return 1
    train = ["--train", "--optimizer=adamw", "--lr=3e-4", "--seed=1"]
    env = dict(os.environ, NVIDIA_TF32_OVERRIDE="0")
    if args.part == "losses":
        got = {}
        for name, extra in (("graph", []), ("no-graph", ["--no-cuda-graph"])):
            r = run([kiln, "run", gpt, "--target=cuda", "--steps=5"] + train + extra, env=env)
            print(r.stdout + r.stderr)
            if r.returncode != 0:
                return 1
            got[name] = losses(r.stdout)
        with tempfile.TemporaryDirectory() as tmp:
            step = os.path.join(tmp, "step.kir")
            r = run([kiln, "compile", gpt] + train[:3] + ["-o", step])
            if r.returncode != 0:
                print(r.stdout + r.stderr)
                return 1
            r = run([kiln, "run", step, "--steps=5", "--seed=1"])
            print(r.stdout + r.stderr)
            want = losses(r.stdout)
        ok = len(want) == 5
        for name, values in got.items():
            if len(values) != len(want):
                ok = False
                print(f"{name}: {len(values)} losses, interpreter {len(want)}")
            for i, (a, b) in enumerate(zip(values, want)):
                if abs(a - b) > 1e-4 * max(1.0, abs(b)):
                    ok = False
                    print(f"{name}: step {i + 1} loss {a} vs interpreter {b}")
        print("losses cuda graph %s, no graph %s, interpreter %s: %s" %
              (got["graph"], got["no-graph"], want, "OK" if ok else "FAILED"))
        return 0 if ok else 1
    sanitizer = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not os.path.exists(sanitizer):
        print("skipped: no compute-sanitizer")
        return SKIP
    failed = False
    for tool, model, steps in (("memcheck", gpt, 3), ("racecheck", mlp, 2), ("initcheck", mlp, 2)):
        cmd = [sanitizer, "--tool", tool, "--error-exitcode", "3", kiln, "run", model, "--target=cuda",
               "--steps=%d" % steps] + train
        r = run(cmd, env=env)
        summary = [line for line in (r.stdout + r.stderr).splitlines() if "ERROR SUMMARY" in line or "RACECHECK SUMMARY" in line]
        print(tool, os.path.basename(model), "rc", r.returncode, summary)
        if r.returncode != 0:
            failed = True
            print(r.stdout[-4000:] + r.stderr[-4000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
