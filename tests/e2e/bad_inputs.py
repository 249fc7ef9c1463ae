#!/usr/bin/env python3
"""Bad input of every kind gets one located error line and exit code 1.

Each case writes its files into a fresh temporary folder, runs a tool, and
asserts the exact message (with the folder shown as TMP) and the exit code.
Only the Python standard library is used, so the files are written here byte
by byte, independently of Kiln's own writers.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

GOOD_KIR = """graph @g(%x: f32[2,3] input, %w: f32[3] param) -> (y: f32[2,3]) {
  %0 = broadcast %w {dims = [1]} : f32[2,3]
  %1 = mul %x, %0 : f32[2,3]
  return %1
}
"""

GOOD_JSON = {
    "format": "kiln.graph", "version": 1,
    "graphs": [{
        "name": "g",
        "arguments": [
            {"name": "x", "type": {"dtype": "f32", "shape": [2, 3]}, "role": "input"},
            {"name": "w", "type": {"dtype": "f32", "shape": [3]}, "role": "param"}],
        "nodes": [
            {"op": "broadcast", "operands": ["%w"], "attrs": {"dims": [1]},
             "type": {"dtype": "f32", "shape": [2, 3]}},
            {"op": "mul", "operands": ["%x", "%0"], "type": {"dtype": "f32", "shape": [2, 3]}}],
        "results": [{"value": "%1", "name": "y"}]}]}


def safetensors(tensors, header_override=None, data_override=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header_override if header_override is not None else header).encode()
    return struct.pack("<Q", len(text)) + text + (data if data_override is None else data_override)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def json_with(mutate):
    doc = json.loads(json.dumps(GOOD_JSON))
    mutate(doc)
    return json.dumps(doc)


# (name, files {relative name: str|bytes}, argv after the tool, expected stderr line)
CASES = [
    ("missing-file", {}, ["kiln", "print", "TMP/nope.kir"],
     "TMP/nope.kir: error: cannot open file: No such file or directory"),
    ("empty-kir", {"a.kir": ""}, ["kiln", "print", "TMP/a.kir"],
     "TMP/a.kir:1:1: error: expected 'graph', the file holds no graph"),
    ("truncated-kir", {"a.kir": GOOD_KIR[:70]}, ["kiln", "print", "TMP/a.kir"],
     "TMP/a.kir:2:5: error: expected '=' after '%0', got end of file"),
    ("binary-garbage-kir", {"a.kir": b"graph @g(\x00\xff\x13"}, ["kiln-opt", "TMP/a.kir"],
     "TMP/a.kir:1:10: error: unexpected byte 0x00"),
    ("unknown-op-kir", {"a.kir": GOOD_KIR.replace("mul %x", "mull %x")}, ["kiln", "print", "TMP/a.kir"],
     "TMP/a.kir:3:8: error: unknown op 'mull'"),
    ("invalid-json", {"a.json": json.dumps(GOOD_JSON)[:40]}, ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:1:41: error: invalid JSON: syntax error while parsing object key - invalid string: missing closing quote; last read: '\"'; expected string literal"),
    ("json-not-object", {"a.json": "[1, 2]"}, ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/: error: expected a JSON object with \"format\": \"kiln.graph\""),
    ("json-wrong-format", {"a.json": json_with(lambda d: d.update(format="onnx"))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/format: error: expected \"kiln.graph\", got \"onnx\""),
    ("json-wrong-version", {"a.json": json_with(lambda d: d.update(version=7))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/version: error: unsupported kiln.graph version 7 (this Kiln reads version 1)"),
    ("json-unknown-op", {"a.json": json_with(lambda d: d["graphs"][0]["nodes"][1].update(op="mull"))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/graphs/0/nodes/1/op: error: unknown op 'mull'"),
    ("json-shape-mismatch",
     {"a.json": json_with(lambda d: d["graphs"][0]["nodes"][0]["attrs"].update(dims=[0]))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/graphs/0/nodes/0: error: broadcast cannot stretch dimension 0 of f32[3] to 2"),
    ("json-undefined-value",
     {"a.json": json_with(lambda d: d["graphs"][0]["nodes"][1].update(operands=["%x", "%5"]))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/graphs/0/nodes/1/operands/1: error: use of undefined value '%5'"),
    ("json-ill-typed-attr",
     {"a.json": json_with(lambda d: d["graphs"][0]["nodes"][0]["attrs"].update(dims="one"))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/graphs/0/nodes/0: error: broadcast attribute 'dims' must be a list of integers, got \"one\""),
    ("json-negative-dim",
     {"a.json": json_with(lambda d: d["graphs"][0]["arguments"][0]["type"].update(shape=[2, -3]))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:/graphs/0/arguments/0/type/shape/1: error: expected a non-negative integer, got -3"),
    ("json-missing-weights", {"a.json": json_with(lambda d: d.update(weights="w.safetensors"))},
     ["kiln", "print", "TMP/a.json"],
     "TMP/w.safetensors: error: cannot open file: No such file or directory"),
    ("json-weights-wrong-shape",
     {"a.json": json_with(lambda d: d.update(weights="w.safetensors")),
      "w.safetensors": safetensors({"w": ("F32", [4], f32(1, 2, 3, 4))})},
     ["kiln", "run", "TMP/a.json"],
     "TMP/a.json weights: error: tensor 'w' has type f32[4] but @g expects f32[3]"),
    ("safetensors-too-short", {"a.kir": GOOD_KIR, "f.safetensors": b"\x01\x02"},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: truncated safetensors file: 2 bytes, the header length alone needs 8"),
    ("safetensors-lying-header-length",
     {"a.kir": GOOD_KIR, "f.safetensors": struct.pack("<Q", 1 << 60) + b"{}"},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: safetensors header length 1152921504606846976 exceeds the file size (10 bytes)"),
    ("safetensors-header-not-json",
     {"a.kir": GOOD_KIR, "f.safetensors": struct.pack("<Q", 4) + b"{{{{"},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: safetensors header is not a JSON object"),
    ("safetensors-offsets-outside",
     {"a.kir": GOOD_KIR,
      "f.safetensors": safetensors({}, header_override={
          "x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, data_override=b"\0" * 8)},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: data_offsets [0, 24] lie outside the 8 data bytes"),
    ("safetensors-huge-shape",
     {"a.kir": GOOD_KIR,
      "f.safetensors": safetensors({}, header_override={
          "x": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 0]}})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: shape [1099511627776,1099511627776] is too large"),
    ("safetensors-size-mismatch",
     {"a.kir": GOOD_KIR,
      "f.safetensors": safetensors({}, header_override={
          "x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, data_override=b"\0" * 24)},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: holds 20 bytes but f32[2,3] needs 24"),
    ("safetensors-bad-dtype",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("U8", [6], b"\0" * 6)})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: unsupported dtype \"U8\" (expected F32, F64, BF16, F16, I32, I64 or BOOL)"),
    ("feed-unknown-name",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"z": ("F32", [3], f32(1, 2, 3))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: tensor 'z' is not an argument of @g (its arguments: x, w)"),
    ("feed-wrong-shape",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [3], f32(1, 2, 3))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: tensor 'x' has type f32[3] but @g expects f32[2,3]"),
    ("feed-wrong-dtype",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"w": ("I32", [3], struct.pack("<3i", 1, 2, 3))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: tensor 'w' has type i32[3] but @g expects f32[3]"),
    ("unwritable-output", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--output=TMP/no/such/dir/out.safetensors"],
     "TMP/no/such/dir/out.safetensors: error: cannot write file: No such file or directory"),
    ("unknown-target", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--target=tpu"],
     "kiln: error: unknown target 'tpu' (this build has: interp)"),
    ("bad-steps", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--steps=many"],
     "kiln: error: option '--steps' expects a non-negative integer, got 'many'"),
    ("unknown-option", {"a.kir": GOOD_KIR}, ["kiln", "print", "TMP/a.kir", "--jsn"],
     "kiln: error: unknown option '--jsn' (see --help)"),
    ("unknown-command", {}, ["kiln", "frobnicate"],
     "kiln: error: unknown command 'frobnicate' (expected print, compile, check-grad or run; see --help)"),
    ("two-graphs-no-choice", {"a.kir": GOOD_KIR + GOOD_KIR.replace("@g", "@h")},
     ["kiln", "run", "TMP/a.kir"],
     "TMP/a.kir: error: holds 2 graphs; choose one with --graph=NAME"),
    ("unknown-pass", {"a.kir": GOOD_KIR}, ["kiln-opt", "TMP/a.kir", "--passes=nosuchpass"],
     "kiln-opt: error: unknown pass 'nosuchpass' (passes: autodiff, canonicalize, constant-fold, cse, dce, simplify, fuse, plan-memory)"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    failures = 0
    for name, files, argv, expected in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            for rel, content in files.items():
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(os.path.join(tmp, rel), mode) as f:
                    f.write(content)
            cmd = [os.path.join(args.bin_dir, argv[0])] + [a.replace("TMP", tmp) for a in argv[1:]]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                print(f"FAIL {name}: timed out (a hang)")
                failures += 1
                continue
            stderr = proc.stderr.replace(tmp, "TMP").strip()
            problems = []
            if proc.returncode != 1:
                problems.append(f"exit code {proc.returncode}, expected 1")
            if stderr != expected:
                problems.append(f"stderr:\n    got:      {stderr!r}\n    expected: {expected!r}")
            if problems:
                failures += 1
                print(f"FAIL {name}: " + "; ".join(problems))
            else:
                print(f"ok   {name}")
    print(f"{len(CASES) - failures}/{len(CASES)} bad-input cases pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
