#!/usr/bin/env python3
"""Every stage that `kiln compile --dump-dir` writes re-parses and computes the same.

Compiles a model's AdamW training step (examples/gpt.kir by default) with
`--dump-dir`, then checks that
  - the files are 00-input.kir, 01-train.kir, 02-..., numbered without gaps,
    and the last one is the compiled output;
  - each re-parses with kiln-opt and prints back byte for byte;
  - each, run once by `kiln run --precision=f64` on the same seeded
    arguments, gives the input's results (relative error <= 1e-9), and every
    stage from `train` on gives the training step's updated params and state
    (f64 <= 1e-9; values kept as f32 <= 1e-5, relative to the tensor's
    largest magnitude).
The safetensors files are read here with the standard library only, apart
from Kiln's own reader.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

FORMATS = {"F64": "d", "F32": "f", "F16": "e", "I32": "i", "I64": "q", "BOOL": "?"}
TOLERANCE = {"F64": 1e-9, "F32": 1e-5}


def read_safetensors(path):
    """name -> (dtype, list of numbers)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + header_len])
    body = data[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        fmt = FORMATS[info["dtype"]]
        count = (end - begin) // struct.calcsize(fmt)
        tensors[name] = (info["dtype"], struct.unpack_from("<%d%s" % (count, fmt), body, begin))
    return tensors


def relative_error(got, expected):
    scale = max((abs(v) for v in expected), default=0.0)
    worst = max((abs(a - b) for a, b in zip(got, expected)), default=0.0)
    return worst / scale if scale > 0 else worst


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--model", default="examples/gpt.kir")
    parser.add_argument("--passes", help="a pipeline other than the default one")
    args = parser.parse_args()
    kiln = os.path.join(args.bin_dir, "kiln")
    kiln_opt = os.path.join(args.bin_dir, "kiln-opt")
    failures = []

    with tempfile.TemporaryDirectory() as tmp:
        dump_dir = os.path.join(tmp, "d")
        step = os.path.join(tmp, "step.kir")
        pipeline = [] if args.passes is None else ["--passes=" + args.passes]
        run([kiln, "compile", os.path.join(args.source_dir, args.model), "--train",
             "--optimizer=adamw", "--verify-each", "--dump-dir=" + dump_dir, "-o", step] + pipeline)

        files = sorted(os.listdir(dump_dir))
        print("stages: " + " ".join(files))
        for i, name in enumerate(files):
            if not re.fullmatch(r"%02d-[a-z0-9-]+\.kir" % i, name):
                failures.append(f"{name}: expected stage {i:02d}-NAME.kir")
        if files[:2] != ["00-input.kir", "01-train.kir"] or len(files) < 3:
            failures.append("expected 00-input.kir, 01-train.kir and the pipeline's stages")
        with open(step) as f, open(os.path.join(dump_dir, files[-1])) as g:
            if f.read() != g.read():
                failures.append(f"{files[-1]} is not the compiled output")

        reference, trained = None, None
        for name in files:
            path = os.path.join(dump_dir, name)
            with open(path) as f:
                if run([kiln_opt, path]) != f.read():
                    failures.append(f"{name}: kiln-opt does not print it back as it is")
            out = os.path.join(tmp, name + ".safetensors")
            run([kiln, "run", path, "--precision=f64", "--seed=0", "--output=" + out])
            values = read_safetensors(out)
            if reference is None:
                reference = values
            if trained is None and name != "00-input.kir":
                trained = values
            expected = dict(reference)
            if name != "00-input.kir":
                expected.update(trained)
            problems = []
            for tensor, (dtype, want) in sorted(expected.items()):
                if tensor not in values:
                    problems.append(f"no '{tensor}'")
                    continue
                got_dtype, got = values[tensor]
                error = relative_error(got, want)
                if got_dtype != dtype or len(got) != len(want) or error > TOLERANCE.get(dtype, 0):
                    problems.append(f"'{tensor}' {got_dtype}[{len(got)}] differs: relative "
                                    f"error {error:.3g}")
            extra = sorted(set(values) - set(expected))
            if extra:
                problems.append("unexpected results " + ", ".join(extra))
            if problems:
                failures.append(f"{name}: " + "; ".join(problems))
            print(f"{'ok  ' if not problems else 'FAIL'} {name}: {len(expected)} tensors compared")

    for failure in failures:
        print("FAIL " + failure)
    print("every stage re-parses and computes the same" if not failures else
          f"{len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
