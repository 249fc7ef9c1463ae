#!/usr/bin/env python3
"""Ahead-of-time compilation end to end (docs/backends.md, "AOT").

1. `kiln compile examples/mlp.kir --train --target=cpu -o mlp` links a
   standalone executable; N steps of it write bitwise the same results and
   params as `kiln run --target=cpu --train` (same seed, same feeds), with
   seeded random feeds and with feeds from a .npy file; the same bytes from
   run to run with one thread; code for --cpu=x86-64-v2 computes softmax as
   the interpreter does;
2. --save-params then --params continues training exactly where it stopped;
3. `--emit=obj` + the generated header link into a small C++ program
   (tests/e2e/aot_embed.cpp), which checks its results itself;
4. bad input: one located error line and exit code 1.
Only the Python standard library is used.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

STEPS = 3


def run(argv, expect_rc=0):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if p.returncode != expect_rc:
        sys.exit("FAILED: %s exited %d (expected %d)\nstdout: %s\nstderr: %s"
                 % (" ".join(argv), p.returncode, expect_rc, p.stdout, p.stderr))
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tensors(path):
    """safetensors -> {name: raw bytes}, parsed here independently of Kiln."""
    import json
    data = read(path)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}


def npy_f32(shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        "%d, " % d for d in shape)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
            + struct.pack("<%df" % len(values), *values))


def expect_error(argv, line, tmp):
    p = run(argv, expect_rc=1)
    got = p.stderr.replace(tmp, "TMP").strip()
    if got != line:
        sys.exit("FAILED: %s\n  expected: %s\n  got:      %s" % (" ".join(argv), line, got))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--link", required=True, help="archives and flags that link --emit=obj output, |-separated")
    args = ap.parse_args()
    kiln = os.path.join(args.bin_dir, "kiln")
    mlp = os.path.join(args.source_dir, "examples", "mlp.kir")
    train = ["--train", "--optimizer=adam", "--lr=0.01"]
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "mlp")
        run([kiln, "compile", mlp, *train, "--target=cpu", "-o", exe])

        # 1. The executable against the JIT, seeded random feeds and params.
        p = run([exe, "--seed=5", "--steps=%d" % STEPS, "--output=%s/aot.safetensors" % tmp,
                 "--save-params=%s/params.safetensors" % tmp])
        progress = [l for l in p.stdout.splitlines() if l.startswith("step ")]
        if len(progress) != STEPS or "loss=" not in progress[0]:
            sys.exit("FAILED: expected %d progress lines with the loss, got:\n%s" % (STEPS, p.stdout))
        run([kiln, "run", mlp, *train, "--target=cpu", "--seed=5", "--steps=%d" % STEPS,
             "--output=%s/jit.safetensors" % tmp])
        aot, jit = tensors(tmp + "/aot.safetensors"), tensors(tmp + "/jit.safetensors")
        if sorted(aot) != sorted(jit) or "loss" not in aot or "fc1.weight" not in aot:
            sys.exit("FAILED: different tensors: %s vs %s" % (sorted(aot), sorted(jit)))
        for name in aot:
            if aot[name] != jit[name]:
                sys.exit("FAILED: '%s' differs between the AOT executable and kiln run" % name)
        saved = tensors(tmp + "/params.safetensors")
        if saved["fc1.weight"] != aot["fc1.weight"]:
            sys.exit("FAILED: --save-params and --output disagree on fc1.weight")
        print("ok: %d steps of the AOT executable equal kiln run --target=cpu bitwise "
              "(%d tensors)" % (STEPS, len(aot)))

        # With feeds from a .npy file (x) and from the seed (labels).
        x = [((i * 7919) % 1000) / 500.0 - 1.0 for i in range(128 * 784)]
        with open(tmp + "/x.npy", "wb") as f:
            f.write(npy_f32([128, 784], x))
        feeds = "--inputs=x=%s/x.npy" % tmp
        run([exe, "--seed=2", "--steps=2", feeds, "--output=%s/aot2.safetensors" % tmp])
        run([kiln, "run", mlp, *train, "--target=cpu", "--seed=2", "--steps=2", feeds,
             "--output=%s/jit2.safetensors" % tmp])
        if read(tmp + "/aot2.safetensors") != read(tmp + "/jit2.safetensors"):
            sys.exit("FAILED: with --inputs the AOT executable and kiln run differ")
        print("ok: with a .npy feed too")

        # With a given thread count the results are the same from run to run.
        for i in range(2):
            run([exe, "--seed=5", "--steps=2", "--threads=1", "--output=%s/one%d.safetensors" % (tmp, i)])
        if read(tmp + "/one0.safetensors") != read(tmp + "/one1.safetensors"):
            sys.exit("FAILED: two runs with --threads=1 differ")
        print("ok: --threads=1 twice gives the same bytes")

        # Code for another CPU (SSE4.2 only) computes the same within f32 rounding.
        softmax = os.path.join(args.source_dir, "tests", "e2e", "aot_softmax.kir")
        run([kiln, "compile", softmax, "--target=cpu", "--cpu=x86-64-v2", "-o", tmp + "/sm-v2"])
        run([tmp + "/sm-v2", "--seed=3", "--output=%s/v2.safetensors" % tmp])
        run([kiln, "run", softmax, "--target=interp", "--seed=3", "--output=%s/ref.safetensors" % tmp])
        v2 = struct.unpack("<32f", tensors(tmp + "/v2.safetensors")["probs"])
        ref = struct.unpack("<32f", tensors(tmp + "/ref.safetensors")["probs"])
        worst = max(abs(a - b) / abs(b) for a, b in zip(v2, ref))
        if not worst <= 1e-6:
            sys.exit("FAILED: --cpu=x86-64-v2 softmax differs from the interpreter by %g" % worst)
        print("ok: --cpu=x86-64-v2 softmax equals the interpreter's to %.2g" % worst)

        # 2. Two steps, save, one more from the saved params = three steps.
        run([exe, "--seed=5", "--steps=2", "--save-params=%s/p2.safetensors" % tmp])
        run([exe, "--seed=5", "--steps=1", "--params=%s/p2.safetensors" % tmp,
             "--output=%s/resumed.safetensors" % tmp])
        resumed = tensors(tmp + "/resumed.safetensors")
        if any(resumed[n] != aot[n] for n in aot):
            sys.exit("FAILED: 2 steps + --params + 1 step differs from 3 steps")
        print("ok: --save-params / --params resume training exactly")

        # 3. --emit=obj and the C API from a C++ program.
        obj = os.path.join(tmp, "softmax.o")
        run([kiln, "compile", os.path.join(args.source_dir, "tests", "e2e", "aot_softmax.kir"),
             "--emit=obj", "-o", obj])
        run(["cc", "-fsyntax-only", "-x", "c", os.path.join(tmp, "softmax.h")])
        embed = os.path.join(tmp, "embed")
        run(["c++", "-I", tmp, os.path.join(args.source_dir, "tests", "e2e", "aot_embed.cpp"), obj,
             *args.link.split("|"), "-o", embed])
        p = run([embed])
        if p.stdout.strip() != "ok":
            sys.exit("FAILED: the embedding program said: " + p.stdout)
        print("ok: --emit=obj links into a C++ program and computes softmax")

        # kiln finds the runtime archives in BIN/../lib when all are installed
        # there, else in its build tree ($CXX records the link command).
        inst = os.path.join(tmp, "inst")
        os.makedirs(inst + "/bin")
        os.makedirs(inst + "/lib")
        shutil.copy(kiln, inst + "/bin/kiln")
        archives = [a for a in args.link.split("|") if a.endswith(".a")]
        for a in archives:
            shutil.copy(a, inst + "/lib")
        main_archive = os.path.join(os.path.dirname(archives[0]), "libkiln_aot_main.a")
        shutil.copy(main_archive, inst + "/lib")
        with open(tmp + "/cxx", "w") as f:
            f.write("#!/bin/sh\necho \"$@\" > %s/link-args\n" % tmp)
        os.chmod(tmp + "/cxx", 0o755)
        env = dict(os.environ, CXX=tmp + "/cxx")
        for removed, folder in ((None, inst + "/lib"), ("libkiln_runtime.a", os.path.dirname(archives[-1]))):
            if removed:
                os.remove(os.path.join(inst, "lib", removed))
            subprocess.run([inst + "/bin/kiln", "compile", softmax, "--target=cpu", "-o", tmp + "/sm"],
                           env=env, check=True, timeout=120)
            used = [w for w in read(tmp + "/link-args").decode().split() if w.endswith(".a")]
            if len(used) != 4 or (removed is None and any(not u.startswith(folder) for u in used)) \
                    or (removed and any(u.startswith(inst) for u in used)):
                sys.exit("FAILED: linked with %s (installed libraries: %s)" % (used, removed is None))
        print("ok: the runtime archives come from BIN/../lib when installed, else the build tree")

        # 4. Bad input.
        expect_error([exe, "--params=%s/nope.safetensors" % tmp],
                     "TMP/nope.safetensors: error: cannot open file: No such file or directory", tmp)
        with open(tmp + "/short.npy", "wb") as f:
            f.write(npy_f32([128, 10], [0.5] * 1280))
        expect_error([exe, "--inputs=x=%s/short.npy" % tmp],
                     "TMP/short.npy: error: tensor 'x' has type f32[128,10] but @mlp expects f32[128,784]",
                     tmp)
        expect_error([exe, "--steps=0"], "%s: error: --steps must be at least 1" % exe.replace(tmp, "TMP"), tmp)
        expect_error([exe, "--bogus"], "%s: error: unknown option '--bogus' (see --help)"
                     % exe.replace(tmp, "TMP"), tmp)
        expect_error([kiln, "compile", mlp, "--target=cpu", "-o", tmp + "/no/such/dir/mlp"],
                     "TMP/no/such/dir/mlp: error: cannot write here: No such file or directory", tmp)
        expect_error([kiln, "compile", mlp, "--target=cpu"],
                     "kiln: error: --target=cpu needs -o NAME (the file to write)", tmp)
        expect_error([kiln, "compile", mlp, "--emit=obj"],
                     "kiln: error: --emit=obj needs -o NAME (the file to write)", tmp)
        expect_error([kiln, "compile", mlp, "--target=gpu", "-o", tmp + "/x"],
                     "kiln: error: unknown target 'gpu' for compile (this build has: cpu)", tmp)
        print("ok: bad input gets one located error line and exit code 1")


if __name__ == "__main__":
    main()
