#!/usr/bin/env python3
"""Bad input of every kind gets one located error line and exit code 1.

Each case writes its files into a fresh temporary folder, runs a tool, and
asserts the exact message (with the folder shown as TMP) and the exit code.
Only the Python standard library is used, so the files are written here byte
by byte, independently of Kiln's own writers.
"""
import argparse
import glob
import json
import os
import resource
import signal
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
     # The targets listed depend on the build (the CPU and CUDA backends are optional).
     tuple("kiln: error: unknown target 'tpu' (this build has: %s)" % targets
           for targets in ("interp", "interp, cpu", "interp, cuda", "interp, cpu, cuda"))),
    ("cuda-without-driver", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--target=cuda"],
     "cuda: error: no CUDA driver: dlopen(\"libcuda.so.1\") failed: libcuda.so.1: cannot open shared object "
     "file: No such file or directory", {"no-gpu": True}),
    ("cuda-graph-flag-on-cpu", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--no-cuda-graph"],
     "kiln: error: --no-cuda-graph is an option of --target=cuda"),
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


def npy(descr, shape, raw, fortran=False):
    """A version 1.0 .npy file as numpy writes it; `shape` is the tuple's text."""
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + raw


# .npy feeds: `--inputs=NAME=FILE.npy` (runtime/Npy.h).
CASES += [
    ("npy-truncated-header", {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(2, 3)", f32(1, 2, 3, 4, 5, 6))[:40]},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: .npy header length 118 exceeds the file size (40 bytes)"),
    ("npy-truncated-data", {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(2, 3)", f32(1, 2, 3, 4, 5))},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: holds 20 data bytes but f32[2,3] needs 24"),
    ("npy-bad-magic", {"a.kir": GOOD_KIR, "x.npy": b"PK\x03\x04" + b"\0" * 60},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: not a .npy file (it does not start with the magic string \\x93NUMPY)"),
    ("npy-bad-version", {"a.kir": GOOD_KIR, "x.npy": b"\x93NUMPY\x09\x00" + b"\0" * 60},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: unsupported .npy version 9.0 (Kiln reads 1.0, 2.0 and 3.0)"),
    ("npy-fortran-order",
     {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(2, 3)", f32(1, 2, 3, 4, 5, 6), fortran=True)},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: Fortran-order arrays are not supported (save np.ascontiguousarray(a))"),
    ("npy-lying-shape",
     {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(1000000000, 1000)", f32(1, 2, 3, 4, 5, 6))},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: holds 24 data bytes but f32[1000000000,1000] needs 4000000000000"),
    ("npy-huge-shape",
     {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(1099511627776, 1099511627776)", b"")},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: shape (1099511627776, 1099511627776) is too large"),
    ("npy-big-endian", {"a.kir": GOOD_KIR, "x.npy": npy(">f4", "(2, 3)", b"\0" * 24)},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: big-endian dtype '>f4' is not supported (save it as '<f4')"),
    ("npy-wrong-dtype",
     {"a.kir": GOOD_KIR, "x.npy": npy("<i4", "(2, 3)", struct.pack("<6i", 1, 2, 3, 4, 5, 6))},
     ["kiln", "run", "TMP/a.kir", "--inputs=x=TMP/x.npy"],
     "TMP/x.npy: error: tensor 'x' has type i32[2,3] but @g expects f32[2,3]"),
    ("npy-wrong-shape-check-grad", {"a.kir": GOOD_KIR, "w.npy": npy("<f4", "(4,)", f32(1, 2, 3, 4))},
     ["kiln", "check-grad", "TMP/a.kir", "--inputs=w=TMP/w.npy"],
     "TMP/w.npy: error: tensor 'w' has type f32[4] but @g expects f32[3]"),
    ("npy-unknown-name", {"a.kir": GOOD_KIR, "z.npy": npy("<f4", "(3,)", f32(1, 2, 3))},
     ["kiln", "run", "TMP/a.kir", "--inputs=z=TMP/z.npy"],
     "TMP/z.npy: error: tensor 'z' is not an argument of @g (its arguments: x, w)"),
    ("npy-without-name", {"a.kir": GOOD_KIR, "x.npy": npy("<f4", "(2, 3)", f32(1, 2, 3, 4, 5, 6))},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/x.npy"],
     "kiln: error: --inputs entry 'TMP/x.npy' needs the argument's name: NAME=FILE.npy"),
    ("npy-feed-given-twice",
     {"a.kir": GOOD_KIR, "w.npy": npy("<f4", "(3,)", f32(1, 2, 3)),
      "f.safetensors": safetensors({"w": ("F32", [3], f32(1, 2, 3))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors,w=TMP/w.npy"],
     "kiln: error: --inputs gives 'w' twice (in TMP/f.safetensors and TMP/w.npy)"),
    ("inputs-empty-entry", {"a.kir": GOOD_KIR, "w.npy": npy("<f4", "(3,)", f32(1, 2, 3))},
     ["kiln", "run", "TMP/a.kir", "--inputs=w=TMP/w.npy,"],
     "kiln: error: --inputs has an empty entry in 'w=TMP/w.npy,'"),
]


# The reliability matrix (issue 8): every tool and input format against
# truncation, wrong magic and version, huge and negative dimensions,
# non-finite feeds, unwritable and interrupted outputs, and memory limits.
# A fifth element of a case says how it differs from the rest (see main):
# "exit" (expected code; -N: killed by signal N), "before" (commands that
# must succeed first), "fsize" and "sigxfsz" (RLIMIT_FSIZE for the command,
# with SIGXFSZ ignored or fatal), "unchanged" (files whose bytes must
# survive) and "absent" (globs that must match nothing afterwards).
EXP_KIR = """graph @e(%x: f32[4] input) -> (y: f32[4]) {
  %0 = exp %x : f32[4]
  %1 = neg %0 : f32[4]
  return %1
}
"""

FUSED_KIR = """graph @f(%x: f32[4] input) -> (y: f32[4]) {
  %0 = fusion %x {kind = "loop"} : f32[4] {
    %0 = neg %arg0 : f32[4]
    %1 = exp %0 : f32[4]
    yield %1
  }
  return %0
}
"""

# f32[2^40]: 4 TiB as f32, 8 TiB for each of the interpreter's two live values.
HUGE_KIR = """graph @h(%x: f32[1099511627776] input) -> (f32[1099511627776]) {
  %0 = neg %x : f32[1099511627776]
  return %0
}
"""

# A training step in miniature: one param halved per step, a scalar loss.
STEP_KIR = """graph @step(%x: f32[2,3] input, %w: f32[64] param {init = "constant", value = 2.0}) -> (loss: f32[]) {
  %0 = reduce_sum %x {axes = [0, 1]} : f32[]
  %1 = constant {value = 0.5} : f32[64]
  %2 = mul %w, %1 : f32[64]
  update %w, %2
  return %0
}
"""

MATMUL_KIR = """graph @mm(%x: f32[2,3] input, %w: f32[3,2] param) -> (y: f32[2,2]) {
  %0 = matmul %x, %w : f32[2,2]
  %1 = tanh %0 : f32[2,2]
  return %1
}
"""

JSON_WITH_WEIGHTS = json_with(lambda d: d.update(weights="w.safetensors"))
INF, NAN = float("inf"), float("nan")
# Row 1 of x times column 1 of w is 3e40, past f32's range: y[1][1], element 3.
MATMUL_OVERFLOW = safetensors({"x": ("F32", [2, 3], f32(0.5, -0.25, 0.75, 1e20, 1e20, 1e20)),
                               "w": ("F32", [3, 2], f32(0.5, 1e20, -0.5, 1e20, 0.25, 1e20))})

# Truncated files, for every tool and format.
CASES += [
    ("truncated-kir-run", {"a.kir": GOOD_KIR[:20]}, ["kiln", "run", "TMP/a.kir"],
     "TMP/a.kir:1:21: error: expected ',' or ']' in the shape, got end of file"),
    ("truncated-kir-compile", {"a.kir": GOOD_KIR[:100]}, ["kiln", "compile", "TMP/a.kir"],
     "TMP/a.kir:2:35: error: expected a type such as f32[4,8], got end of file"),
    ("truncated-kir-check-grad", {"a.kir": GOOD_KIR[:30]}, ["kiln", "check-grad", "TMP/a.kir"],
     "TMP/a.kir:1:30: error: expected a name after '%'"),
    ("truncated-kir-opt", {"a.kir": GOOD_KIR[:150]}, ["kiln-opt", "TMP/a.kir"],
     "TMP/a.kir:4:12: error: expected '}' after return, got end of file"),
    ("truncated-kir-fusion-body", {"a.kir": FUSED_KIR[:120]}, ["kiln", "run", "TMP/a.kir"],
     "TMP/a.kir:4:5: error: expected a '%name = op' statement or 'yield' in the fusion body, got end of file"),
    ("empty-json-run", {"a.json": ""}, ["kiln", "run", "TMP/a.json"],
     "TMP/a.json:1:1: error: invalid JSON: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"),
    ("truncated-json-compile", {"a.json": json.dumps(GOOD_JSON)[:200]}, ["kiln", "compile", "TMP/a.json"],
     "TMP/a.json:1:201: error: invalid JSON: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"),
    ("truncated-json-opt", {"a.json": json.dumps(GOOD_JSON)[:300]}, ["kiln-opt", "TMP/a.json"],
     "TMP/a.json:1:301: error: invalid JSON: syntax error while parsing object key - unexpected end of input; expected string literal"),
    ("empty-safetensors", {"a.kir": GOOD_KIR, "f.safetensors": b""},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: truncated safetensors file: 0 bytes, the header length alone needs 8"),
    ("truncated-safetensors-header-check-grad",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"w": ("F32", [3], f32(1, 2, 3))})[:30]},
     ["kiln", "check-grad", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: safetensors header length 62 exceeds the file size (30 bytes)"),
    ("truncated-safetensors-data",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [2, 3], f32(1, 2, 3, 4, 5, 6))})[:-4]},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: data_offsets [0, 24] lie outside the 20 data bytes"),
    ("truncated-weights-print", {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": b"\x01"},
     ["kiln", "print", "TMP/a.json"],
     "TMP/w.safetensors: error: truncated safetensors file: 1 bytes, the header length alone needs 8"),
    ("truncated-weights-data-compile",
     {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": safetensors({"w": ("F32", [3], f32(1, 2, 3))})[:-1]},
     ["kiln", "compile", "TMP/a.json"],
     "TMP/w.safetensors: tensor 'w': error: data_offsets [0, 12] lie outside the 11 data bytes"),
]

# Wrong magic or version: a file of one format where another is expected.
CASES += [
    ("kir-holding-json", {"a.kir": json.dumps(GOOD_JSON)}, ["kiln", "print", "TMP/a.kir"],
     "TMP/a.kir:1:1: error: expected 'graph', got '{'"),
    ("kir-holding-safetensors", {"a.kir": safetensors({"w": ("F32", [3], f32(1, 2, 3))})},
     ["kiln-opt", "TMP/a.kir"],
     "TMP/a.kir:1:1: error: unexpected character '>'"),
    ("json-holding-kir", {"a.json": GOOD_KIR}, ["kiln", "print", "TMP/a.json"],
     "TMP/a.json:1:1: error: invalid JSON: syntax error while parsing value - invalid literal; last read: 'g'"),
    ("json-missing-version", {"a.json": json_with(lambda d: d.pop("version"))},
     ["kiln", "run", "TMP/a.json"],
     "TMP/a.json:/version: error: expected the format version, an integer"),
    ("json-version-as-string", {"a.json": json_with(lambda d: d.update(version="1"))},
     ["kiln", "compile", "TMP/a.json"],
     "TMP/a.json:/version: error: expected the format version, an integer"),
    ("json-missing-format", {"a.json": json_with(lambda d: d.pop("format"))},
     ["kiln-opt", "TMP/a.json"],
     "TMP/a.json:/format: error: expected \"kiln.graph\", got nothing"),
    ("safetensors-holding-npy",
     {"a.kir": GOOD_KIR, "f.safetensors": b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}"},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: safetensors header length 379676406402707 exceeds the file size (26 bytes)"),
    ("safetensors-header-array", {"a.kir": GOOD_KIR, "f.safetensors": struct.pack("<Q", 2) + b"[]"},
     ["kiln", "check-grad", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: safetensors header is not a JSON object"),
    ("weights-holding-kir", {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": GOOD_KIR},
     ["kiln", "run", "TMP/a.json"],
     "TMP/w.safetensors: error: safetensors header length 7439982217350181479 exceeds the file size (153 bytes)"),
]

# Huge and negative dimensions in every format; nothing is allocated for them.
CASES += [
    ("kir-negative-dim", {"a.kir": GOOD_KIR.replace("f32[2,3] input", "f32[2,-3] input")},
     ["kiln", "print", "TMP/a.kir"], "TMP/a.kir:1:20: error: dimension -3 is negative"),
    ("kir-too-many-elements",
     {"a.kir": GOOD_KIR.replace("f32[2,3] input", "f32[4611686018427387904,4] input")},
     ["kiln", "run", "TMP/a.kir"],
     "TMP/a.kir:1:14: error: type f32[4611686018427387904,4] has too many elements"),
    ("kir-dim-out-of-range",
     {"a.kir": GOOD_KIR.replace("f32[2,3] input", "f32[99999999999999999999999,4] input")},
     ["kiln", "compile", "TMP/a.kir"],
     "TMP/a.kir:1:18: error: integer 99999999999999999999999 is out of range"),
    ("kir-huge-intermediate",
     {"a.kir": GOOD_KIR.replace("broadcast %w {dims = [1]} : f32[2,3]",
                                "broadcast %w {dims = [1]} : f32[1099511627776,1099511627776]")},
     ["kiln-opt", "TMP/a.kir"],
     "TMP/a.kir:2:36: error: type f32[1099511627776,1099511627776] has too many elements"),
    ("kir-huge-run-refused", {"a.kir": HUGE_KIR}, ["kiln", "run", "TMP/a.kir"],
     "TMP/a.kir:1:7: error: @h needs 17592186044416 bytes of live values, more than the physical memory (--memory-limit sets a limit)"),
    # Documented: compiling a huge graph allocates none of its tensors.
    ("kir-huge-compiles", {"a.kir": HUGE_KIR}, ["kiln", "compile", "TMP/a.kir", "-o", "TMP/b.kir"],
     "", {"exit": 0}),
    ("kir-huge-through-pipeline", {"a.kir": HUGE_KIR},
     ["kiln-opt", "TMP/a.kir", "--passes=simplify,fuse,plan-memory", "-o", "TMP/b.kir"], "", {"exit": 0}),
    ("json-too-many-elements",
     {"a.json": json_with(lambda d: d["graphs"][0]["arguments"][0]["type"].update(shape=[1 << 40, 1 << 40]))},
     ["kiln", "run", "TMP/a.json"],
     "TMP/a.json:/graphs/0/arguments/0/type/shape: error: shape [1099511627776,1099511627776] has too many elements"),
    ("json-dim-not-integer",
     {"a.json": json_with(lambda d: d["graphs"][0]["arguments"][0]["type"].update(shape=[2, 2.5]))},
     ["kiln", "compile", "TMP/a.json"],
     "TMP/a.json:/graphs/0/arguments/0/type/shape/1: error: expected a non-negative integer, got 2.5"),
    ("json-dim-beyond-int64",
     {"a.json": json_with(lambda d: d["graphs"][0]["arguments"][0]["type"].update(shape=[2, (1 << 64) - 1]))},
     ["kiln-opt", "TMP/a.json"],
     "TMP/a.json:/graphs/0/arguments/0/type/shape/1: error: expected a non-negative integer, got 18446744073709551615"),
    ("safetensors-negative-dim",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({}, header_override={
         "x": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: 'shape' must be an array of non-negative integers, got [2,-3]"),
    ("safetensors-dim-beyond-int64",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({}, header_override={
         "x": {"dtype": "F32", "shape": [(1 << 64) - 1], "data_offsets": [0, 0]}})},
     ["kiln", "check-grad", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: 'shape' must be an array of non-negative integers, got [18446744073709551615]"),
    ("safetensors-lying-offsets",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({}, header_override={
         "x": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 1 << 62]}})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: tensor 'x': error: data_offsets [0, 4611686018427387904] lie outside the 0 data bytes"),
    ("weights-huge-shape",
     {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": safetensors({}, header_override={
         "w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 0]}})},
     ["kiln", "compile", "TMP/a.json"],
     "TMP/w.safetensors: tensor 'w': error: shape [1099511627776,1099511627776] is too large"),
]

# Wrong feed types through the other tools and files.
CASES += [
    ("feed-wrong-dtype-check-grad",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"w": ("I64", [3], b"\0" * 24)})},
     ["kiln", "check-grad", "TMP/a.kir", "--inputs=TMP/f.safetensors"],
     "TMP/f.safetensors: error: tensor 'w' has type i64[3] but @g expects f32[3]"),
    ("weights-wrong-dtype-check-grad",
     {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": safetensors({"w": ("I32", [3], b"\0" * 12)})},
     ["kiln", "check-grad", "TMP/a.json"],
     "TMP/a.json weights: error: tensor 'w' has type i32[3] but @g expects f32[3]"),
]

# Unwritable output paths of every writer.
CASES += [
    ("unwritable-print-o", {"a.kir": GOOD_KIR, "f": "a file"},
     ["kiln", "print", "TMP/a.kir", "-o", "TMP/f/out.kir"],
     "TMP/f/out.kir: error: cannot write file: Not a directory"),
    ("unwritable-print-json-o", {"a.kir": GOOD_KIR},
     ["kiln", "print", "TMP/a.kir", "--json", "-o", "TMP/no/out.json"],
     "TMP/no/out.json: error: cannot write file: No such file or directory"),
    ("unwritable-compile-o", {"a.kir": GOOD_KIR},
     ["kiln", "compile", "TMP/a.kir", "-o", "TMP/no/out.kir"],
     "TMP/no/out.kir: error: cannot write file: No such file or directory"),
    ("unwritable-compile-emit-json", {"a.kir": GOOD_KIR},
     ["kiln", "compile", "TMP/a.kir", "--emit=json", "-o", "TMP/no/out.json"],
     "TMP/no/out.json: error: cannot write file: No such file or directory"),
    ("compile-o-is-a-directory", {"a.kir": GOOD_KIR}, ["kiln", "compile", "TMP/a.kir", "-o", "TMP"],
     "TMP: error: cannot replace file: Is a directory"),
    ("unwritable-dump-dir", {"a.kir": GOOD_KIR, "f": "a file"},
     ["kiln", "compile", "TMP/a.kir", "--dump-dir", "TMP/f/dumps", "-o", "TMP/b.kir"],
     "TMP/f/dumps: error: cannot create the dump directory: Not a directory"),
    ("dump-dir-is-a-file", {"a.kir": GOOD_KIR, "f": "a file"},
     ["kiln", "compile", "TMP/a.kir", "--dump-dir=TMP/f", "-o", "TMP/b.kir"],
     "TMP/f: error: cannot create the dump directory: Not a directory"),
    ("unwritable-opt-o", {"a.kir": GOOD_KIR}, ["kiln-opt", "TMP/a.kir", "-o", "TMP/no/out.kir"],
     "TMP/no/out.kir: error: cannot write file: No such file or directory"),
    ("run-output-is-a-directory", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--output=TMP"],
     "TMP: error: cannot replace file: Is a directory"),
]

# NaN and infinities: --check-numerics names the first argument or node holding one.
CASES += [
    ("check-numerics-nan-feed",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [2, 3], f32(1, 2, 3, 4, NAN, 6))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:1:10: error: argument 'x' holds nan at element 4 (check-numerics)"),
    ("check-numerics-inf-weights",
     {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": safetensors({"w": ("F32", [3], f32(1, INF, 3))})},
     ["kiln", "run", "TMP/a.json", "--check-numerics"],
     "TMP/a.json:/graphs/0/arguments/1: error: argument 'w' holds inf at element 1 (check-numerics)"),
    ("check-numerics-exp-overflow",
     {"a.kir": EXP_KIR, "f.safetensors": safetensors({"x": ("F32", [4], f32(1, 2, 3, 100))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:2:8: error: exp produced inf at element 3 (check-numerics)"),
    ("check-numerics-json-node",
     {"a.json": json.dumps(GOOD_JSON), "f.safetensors": safetensors(
         {"x": ("F32", [2, 3], f32(1, 1, 1, 1, 1e30, 1)), "w": ("F32", [3], f32(1, 1e30, 1))})},
     ["kiln", "run", "TMP/a.json", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.json:/graphs/0/nodes/1: error: mul produced inf at element 4 (check-numerics)"),
    ("check-numerics-in-fusion",
     {"a.kir": FUSED_KIR, "f.safetensors": safetensors({"x": ("F32", [4], f32(1, -200, 3, 4))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:4:10: error: exp in a fusion produced inf at element 1 (check-numerics)"),
    ("check-numerics-over-steps", {"a.kir": STEP_KIR.replace("value = 0.5", "value = 1.0e30")},
     ["kiln", "run", "TMP/a.kir", "--steps=5", "--check-numerics"],
     "TMP/a.kir:4:8: error: mul produced inf at element 0 (check-numerics)"),
    # Documented: without the flag a non-finite value is a result like any other.
    ("nan-feed-without-check",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [2, 3], f32(1, 2, 3, 4, NAN, 6))})},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors"], "", {"exit": 0}),
    ("check-numerics-takes-no-value", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--check-numerics=yes"],
     "kiln: error: option '--check-numerics' takes no value"),
    # The same NaN checked by both targets reports the same place.
    ("check-numerics-matmul-interp",
     {"a.kir": MATMUL_KIR, "f.safetensors": MATMUL_OVERFLOW},
     ["kiln", "run", "TMP/a.kir", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:2:8: error: matmul produced inf at element 3 (check-numerics)"),
]

# The same on the CPU backend (rows marked "cpu" run only when the build has
# it): arguments are checked before the first step, then every float result
# of every step (kernel or library call), located at the node it came from;
# a fusion names its ops.
CASES += [
    ("cpu-check-numerics-nan-feed",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [2, 3], f32(1, 2, 3, 4, NAN, 6))})},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:1:10: error: argument 'x' holds nan at element 4 (check-numerics)", {"cpu": True}),
    ("cpu-check-numerics-inf-weights",
     {"a.json": JSON_WITH_WEIGHTS, "w.safetensors": safetensors({"w": ("F32", [3], f32(1, INF, 3))})},
     ["kiln", "run", "TMP/a.json", "--target=cpu", "--check-numerics"],
     "TMP/a.json:/graphs/0/arguments/1: error: argument 'w' holds inf at element 1 (check-numerics)",
     {"cpu": True}),
    # exp then neg, fused by the pipeline into one kernel: -inf where exp(100) overflows.
    ("cpu-check-numerics-fused-exp-overflow",
     {"a.kir": EXP_KIR, "f.safetensors": safetensors({"x": ("F32", [4], f32(1, 2, 3, 100))})},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:3:8: error: fusion (exp, neg) produced -inf at element 3 (check-numerics)", {"cpu": True}),
    ("cpu-check-numerics-written-fusion",
     {"a.kir": FUSED_KIR, "f.safetensors": safetensors({"x": ("F32", [4], f32(1, -200, 3, 4))})},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:2:8: error: fusion (neg, exp) produced inf at element 1 (check-numerics)", {"cpu": True}),
    # A library call's result; the tanh after it would hide the inf in the output.
    ("cpu-check-numerics-matmul",
     {"a.kir": MATMUL_KIR, "f.safetensors": MATMUL_OVERFLOW},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.kir:2:8: error: matmul produced inf at element 3 (check-numerics)", {"cpu": True}),
    ("cpu-check-numerics-json-node",
     {"a.json": json.dumps(GOOD_JSON), "f.safetensors": safetensors(
         {"x": ("F32", [2, 3], f32(1, 1, 1, 1, 1e30, 1)), "w": ("F32", [3], f32(1, 1e30, 1))})},
     ["kiln", "run", "TMP/a.json", "--target=cpu", "--inputs=TMP/f.safetensors", "--check-numerics"],
     "TMP/a.json:/graphs/0/nodes/1: error: fusion (broadcast, mul) produced inf at element 4 (check-numerics)",
     {"cpu": True}),
    # w = 2e30 after step 1, inf in step 2 (the mul by a constant tensor is
    # wrapped in a fusion with it).
    ("cpu-check-numerics-over-steps", {"a.kir": STEP_KIR.replace("value = 0.5", "value = 1.0e30")},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--steps=5", "--check-numerics"],
     "TMP/a.kir:4:8: error: fusion (constant, mul) produced inf at element 0 (check-numerics)",
     {"cpu": True}),
    # Without the flag (or with finite values) nothing changes.
    ("cpu-nan-feed-without-check",
     {"a.kir": GOOD_KIR, "f.safetensors": safetensors({"x": ("F32", [2, 3], f32(1, 2, 3, 4, NAN, 6))})},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors"], "",
     {"cpu": True, "exit": 0}),
    ("cpu-matmul-overflow-without-check",
     {"a.kir": MATMUL_KIR, "f.safetensors": MATMUL_OVERFLOW},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--inputs=TMP/f.safetensors"], "",
     {"cpu": True, "exit": 0}),
    ("cpu-check-numerics-finite", {"a.kir": STEP_KIR},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--steps=3", "--check-numerics"], "",
     {"cpu": True, "exit": 0}),
    ("cpu-check-numerics-takes-no-value", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--check-numerics=yes"],
     "kiln: error: option '--check-numerics' takes no value"),
]

# An interrupted checkpoint write leaves the old file intact: the file-size
# limit makes the write fail (SIGXFSZ ignored: an error) or kills the process
# in the middle of it (SIGXFSZ fatal; its temporary file stays behind).
CHECKPOINT_FIRST = ["kiln", "run", "TMP/a.kir", "--output=TMP/ck.safetensors"]
CASES += [
    ("checkpoint-write-fails", {"a.kir": STEP_KIR},
     ["kiln", "run", "TMP/a.kir", "--steps=2", "--output=TMP/ck.safetensors"],
     "TMP/ck.safetensors: error: cannot write file: File too large",
     {"before": [CHECKPOINT_FIRST], "fsize": 100, "sigxfsz": "ignore",
      "unchanged": ["ck.safetensors"], "absent": ["ck.safetensors.tmp.*"]}),
    ("checkpoint-write-killed", {"a.kir": STEP_KIR},
     ["kiln", "run", "TMP/a.kir", "--steps=2", "--output=TMP/ck.safetensors"], "",
     {"before": [CHECKPOINT_FIRST], "fsize": 100, "sigxfsz": "fatal", "exit": -signal.SIGXFSZ,
      "unchanged": ["ck.safetensors"]}),
    ("compile-output-write-fails", {"a.kir": GOOD_KIR, "out.kir": "// the previous output\n"},
     ["kiln", "compile", "TMP/a.kir", "-o", "TMP/out.kir"],
     "TMP/out.kir: error: cannot write file: File too large",
     {"fsize": 64, "sigxfsz": "ignore", "unchanged": ["out.kir"], "absent": ["out.kir.tmp.*"]}),
]

# A graph too large for --memory-limit is refused before anything runs.
CASES += [
    ("memory-limit-exceeded", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--memory-limit=143"],
     "TMP/a.kir:1:7: error: @g needs 144 bytes of live values, more than --memory-limit 143"),
    ("memory-limit-exactly-enough", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--memory-limit=144"], "", {"exit": 0}),
    ("memory-limit-json", {"a.json": json.dumps(GOOD_JSON)},
     ["kiln", "run", "TMP/a.json", "--memory-limit", "100"],
     "TMP/a.json:/graphs/0: error: @g needs 144 bytes of live values, more than --memory-limit 100"),
    ("memory-limit-before-feeds", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--memory-limit=0", "--inputs=TMP/missing.safetensors"],
     "TMP/a.kir:1:7: error: @g needs 144 bytes of live values, more than --memory-limit 0"),
    ("memory-limit-not-a-number", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--memory-limit=1G"],
     "kiln: error: option '--memory-limit' expects a non-negative integer, got '1G'"),
    ("memory-limit-negative", {"a.kir": GOOD_KIR}, ["kiln", "run", "TMP/a.kir", "--memory-limit=-5"],
     "kiln: error: option '--memory-limit' expects a non-negative integer, got '-5'"),
]

# On the CPU backend the limit covers the program's arena and its argument
# buffers (x f32[2,3] and w f32[3]: 36 bytes; one fused kernel's 24-byte
# result in a 64-byte arena), refused before anything is allocated or loaded.
CASES += [
    ("cpu-memory-limit-exceeded", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--memory-limit=99"],
     "TMP/a.kir:1:7: error: @g needs 100 bytes (arena 64 + arguments 36), more than --memory-limit 99",
     {"cpu": True}),
    ("cpu-memory-limit-exactly-enough", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--memory-limit=100"], "", {"cpu": True, "exit": 0}),
    ("cpu-memory-limit-before-feeds", {"a.kir": GOOD_KIR},
     ["kiln", "run", "TMP/a.kir", "--target=cpu", "--memory-limit=0", "--inputs=TMP/missing.safetensors"],
     "TMP/a.kir:1:7: error: @g needs 100 bytes (arena 64 + arguments 36), more than --memory-limit 0",
     {"cpu": True}),
    ("cpu-memory-limit-json", {"a.json": json.dumps(GOOD_JSON)},
     ["kiln", "run", "TMP/a.json", "--target=cpu", "--memory-limit", "50"],
     "TMP/a.json:/graphs/0: error: @g needs 100 bytes (arena 64 + arguments 36), more than --memory-limit 50",
     {"cpu": True}),
    # 2^40 f32 input and result: 8 TiB, more than any machine this runs on.
    ("cpu-memory-limit-default", {"a.kir": HUGE_KIR}, ["kiln", "run", "TMP/a.kir", "--target=cpu"],
     "TMP/a.kir:1:7: error: @h needs 8796093022208 bytes (arena 4398046511104 + arguments 4398046511104), "
     "more than the physical memory (--memory-limit sets a limit)", {"cpu": True}),
]


def file_size_limit(how):
    """A preexec_fn: RLIMIT_FSIZE of how["fsize"] bytes, SIGXFSZ ignored or fatal."""
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (how["fsize"], how["fsize"]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN if how["sigxfsz"] == "ignore" else signal.SIG_DFL)
    return apply


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    # Whether this build has the CPU backend: the targets it lists.
    probe = subprocess.run([os.path.join(args.bin_dir, "kiln"), "run", "none.kir", "--target=?"],
                           capture_output=True, text=True, timeout=60)
    has_cpu = ", cpu" in probe.stderr
    has_cuda = ", cuda)" in probe.stderr
    # A machine with a driver (its libcuda.so.1 loads) cannot show the no-driver error.
    has_driver = any(os.path.exists(os.path.join(d, "libcuda.so.1")) for d in
                     ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/cuda/compat", "/usr/lib/wsl/lib"))
    failures = skipped = 0
    for name, files, argv, expected, *extra in CASES:
        how = extra[0] if extra else {}
        if how.get("cpu") and not has_cpu:
            print(f"skip {name} (no CPU backend in this build)")
            skipped += 1
            continue
        if (how.get("cuda") or how.get("no-gpu")) and not has_cuda or how.get("no-gpu") and has_driver:
            print(f"skip {name} (" + ("a CUDA driver is installed" if has_cuda else "no CUDA backend in this build") + ")")
            skipped += 1
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for rel, content in files.items():
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(os.path.join(tmp, rel), mode) as f:
                    f.write(content)

            def command(words):
                return [os.path.join(args.bin_dir, words[0])] + [a.replace("TMP", tmp) for a in words[1:]]

            def read(rel):
                with open(os.path.join(tmp, rel), "rb") as f:
                    return f.read()

            for before in how.get("before", []):
                subprocess.run(command(before), capture_output=True, timeout=60, check=True)
            kept = {rel: read(rel) for rel in how.get("unchanged", [])}
            try:
                proc = subprocess.run(command(argv), capture_output=True, text=True, timeout=60,
                                      preexec_fn=file_size_limit(how) if "fsize" in how else None)
            except subprocess.TimeoutExpired:
                print(f"FAIL {name}: timed out (a hang)")
                failures += 1
                continue
            stderr = proc.stderr.replace(tmp, "TMP").strip()
            problems = []
            if proc.returncode != how.get("exit", 1):
                problems.append(f"exit code {proc.returncode}, expected {how.get('exit', 1)}")
            if stderr != expected and not (isinstance(expected, tuple) and stderr in expected):
                problems.append(f"stderr:\n    got:      {stderr!r}\n    expected: {expected!r}")
            problems += [f"{rel} was changed" for rel, old in kept.items() if read(rel) != old]
            problems += [f"{pattern} was left behind" for pattern in how.get("absent", [])
                         if glob.glob(os.path.join(tmp, pattern))]
            if problems:
                failures += 1
                print(f"FAIL {name}: " + "; ".join(problems))
            else:
                print(f"ok   {name}")
    print(f"{len(CASES) - failures - skipped}/{len(CASES) - skipped} bad-input cases pass"
          + (f" ({skipped} skipped)" if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
