#!/usr/bin/env python3
"""Kiln's compiled optimizers against torch.optim on the same numbers.

Five steps of every optimizer (with weight decay, Nesterov, clipping) on
loss = sum(c * w^2) + sum(d * b^2), all in f64: `kiln compile --train`, then
`kiln run --steps=5`, versus torch.optim with the same hyper-parameters.
Skipped (exit 77) when torch is not installed; `bench/peers` (or
`python3 -m venv .venv && .venv/bin/pip install torch`) provides it.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77


def find_torch(source_dir):
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        venv = os.path.join(source_dir, ".venv")
        python = os.path.join(venv, "bin", "python")
        if os.path.exists(python) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
            os.execv(python, [python] + sys.argv)
        return False


def write_safetensors(path, tensors):
    header, data = {}, b""
    for name, values in tensors.items():
        raw = struct.pack("<%dd" % len(values), *values)
        header[name] = {"dtype": "F64", "shape": [len(values)] if name != "b" and name != "d" else [2, 2],
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_safetensors(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        fmt = {"F64": "d", "F32": "f"}[e["dtype"]]
        raw = blob[8 + n + b: 8 + n + end]
        out[name] = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
    return out


MODEL = """graph @quad(%w: f64[3] param, %b: f64[2,2] param, %c: f64[3] input, %d: f64[2,2] input) -> (loss: f64[]) {
  %0 = mul %w, %w : f64[3]
  %1 = mul %0, %c : f64[3]
  %2 = reduce_sum %1 {axes = [0]} : f64[]
  %3 = mul %b, %b : f64[2,2]
  %4 = mul %3, %d : f64[2,2]
  %5 = reduce_sum %4 {axes = [0, 1]} : f64[]
  %6 = add %2, %5 : f64[]
  return %6
}
"""

# (kiln flags, torch optimizer factory, clip, tolerance). Learning rates are
# exact in f32, the type of the step's `lr` input.
CASES = [
    (["--optimizer=sgd", "--lr=0.125"], lambda p, t: t.optim.SGD(p, lr=0.125), 0, 1e-12),
    (["--optimizer=sgd", "--lr=0.125", "--weight-decay=0.05"],
     lambda p, t: t.optim.SGD(p, lr=0.125, weight_decay=0.05), 0, 1e-12),
    (["--optimizer=momentum", "--lr=0.0625"], lambda p, t: t.optim.SGD(p, lr=0.0625, momentum=0.9), 0, 1e-12),
    (["--optimizer=nesterov", "--lr=0.0625", "--momentum=0.8", "--weight-decay=0.01"],
     lambda p, t: t.optim.SGD(p, lr=0.0625, momentum=0.8, nesterov=True, weight_decay=0.01), 0, 1e-12),
    (["--optimizer=adam", "--lr=0.125", "--weight-decay=0.02"],
     lambda p, t: t.optim.Adam(p, lr=0.125, weight_decay=0.02), 0, 1e-12),
    (["--optimizer=adamw", "--lr=0.125"], lambda p, t: t.optim.AdamW(p, lr=0.125), 0, 1e-12),
    # The clipping norm is accumulated in f32 (passes/optim), hence the bound.
    (["--optimizer=momentum", "--lr=0.0625", "--clip-norm=0.3"],
     lambda p, t: t.optim.SGD(p, lr=0.0625, momentum=0.9), 0.3, 1e-6),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    if not find_torch(args.source_dir):
        print("torch is not installed: skipped")
        return SKIP
    import torch
    init = {"w": [0.7, -1.3, 0.4], "b": [0.25, -0.9, 1.1, -0.35],
            "c": [1.5, 0.75, 2.0], "d": [0.6, 1.25, 0.9, 1.8]}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "quad.kir")
        open(model, "w").write(MODEL)
        feeds = os.path.join(tmp, "init.safetensors")
        write_safetensors(feeds, init)
        for flags, make, clip, tol in CASES:
            step = os.path.join(tmp, "step.kir")
            out = os.path.join(tmp, "out.safetensors")
            kiln = os.path.join(args.bin_dir, "kiln")
            subprocess.run([kiln, "compile", model, "--train", "--passes="] + flags + ["-o", step], check=True)
            subprocess.run([kiln, "run", step, "--steps=5", "--precision=f64", "--inputs=" + feeds,
                            "--output=" + out], check=True, capture_output=True)
            got = read_safetensors(out)
            w = torch.tensor(init["w"], dtype=torch.float64, requires_grad=True)
            b = torch.tensor(init["b"], dtype=torch.float64).reshape(2, 2).requires_grad_()
            c = torch.tensor(init["c"], dtype=torch.float64)
            d = torch.tensor(init["d"], dtype=torch.float64).reshape(2, 2)
            opt = make([w, b], torch)
            for _ in range(5):
                opt.zero_grad()
                loss = (c * w * w).sum() + (d * b * b).sum()
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_([w, b], clip)
                opt.step()
            want = {"w": w.detach().flatten().tolist(), "b": b.detach().flatten().tolist()}
            worst = max(abs(g - e) / max(1.0, abs(e)) for k in want for g, e in zip(got[k], want[k]))
            status = "ok  " if worst <= tol else "FAIL"
            failures += worst > tol
            print(f"{status} {' '.join(flags):70s} worst relative difference {worst:.3g} (bound {tol:g})")
    print(f"torch {torch.__version__}: {len(CASES) - failures}/{len(CASES)} optimizer cases match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
