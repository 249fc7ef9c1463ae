"""What every peer shares: the workloads, the exported initial values, timing.

A workload is a model of shared/BENCHMARKS.md ("mlp", "cnn", "gpt") and
whether it trains ("mlp") or only runs forward and loss ("mlp-infer").
kiln-bench --export-dir=DIR writes DIR/MODEL.safetensors: Kiln's initial
params (named as in examples/models/Models.h, which are PyTorch's
state_dict names) and the input batch, fed to every step.
"""
import json
import os
import resource
import statistics
import time

import numpy as np

# shared/BENCHMARKS.md, CPU workloads: the optimizer of each model.
OPTIMIZERS = {
    "mlp": {"kind": "momentum", "lr": 0.01, "momentum": 0.9},
    "cnn": {"kind": "momentum", "lr": 0.01, "momentum": 0.9},
    "gpt": {"kind": "adamw", "lr": 3e-4, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-8},
}
# The input names of each model's graph: (inputs, labels).
INPUTS = {"mlp": ("x", "labels"), "cnn": ("images", "labels"), "gpt": ("tokens", "targets")}
GPT = {"vocab": 512, "d_model": 256, "heads": 4, "layers": 2, "block": 128}
MLP = {"inputs": 784, "hidden": 512, "classes": 10}
# shared/BENCHMARKS.md, GPU workloads (kiln-bench-gpu's buildWorkload): the
# model, its configuration and the input batch's shape; the optimizers are
# the CPU workloads' (OPTIMIZERS). With --tiny, the CPU workloads' sizes.
GPU_WORKLOADS = {
    "mlp-gpu": ("mlp", {"inputs": 4096, "hidden": 4096, "classes": 1000}, (4096,)),
    "gpt2-gpu": ("gpt", {"vocab": 50257, "d_model": 768, "heads": 12, "layers": 12, "block": 1024},
                 (8, 1024)),
}
TINY_WORKLOADS = {"mlp-gpu": ("mlp", MLP, (128,)), "gpt2-gpu": ("gpt", GPT, (8, 128))}


def parse_workload(name):
    model, _, suffix = name.partition("-")
    if model not in OPTIMIZERS or suffix not in ("", "infer"):
        raise SystemExit(f"unknown workload '{name}'")
    return model, suffix == ""


# safetensors dtypes kiln-bench writes (runtime/Safetensors.cpp), as numpy's.
SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32,
                      "I64": np.int64, "BOOL": np.bool_}


def read_safetensors(path):
    """{name: numpy array} of a safetensors file, read with numpy alone (the
    GPU machines' Python may lack the safetensors package): an 8-byte
    little-endian header size, the JSON header, then the tensors' bytes."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise SystemExit(f"{path}: tensor '{name}' of dtype {entry['dtype']} (not a kiln-bench export?)")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(memoryview(data)[begin:end], dtype=SAFETENSORS_DTYPES[entry["dtype"]]).reshape(
            entry["shape"]).copy()
    return tensors


def load_init(path, model):
    """(params, inputs, labels) as numpy arrays from kiln-bench's export."""
    tensors = read_safetensors(path)
    inputs_name, labels_name = INPUTS[model]
    inputs = tensors.pop(inputs_name)
    labels = tensors.pop(labels_name)
    return tensors, inputs, labels


def set_threads_env(threads):
    """The thread variables every library reads at import: set before importing it."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def wall_clock(step, loss_value):
    """Milliseconds of one step, waited for by loss_value."""
    start = time.perf_counter()
    loss_value(step())
    return (time.perf_counter() - start) * 1e3


def measure(step, loss_value, warmup, steps, timer=wall_clock):
    """Runs `step` (returns something `loss_value` turns into a float after
    waiting for it): warm-up steps, the first two of which give the losses and
    the first of which is timed apart (it includes any compilation), then
    `steps` steps, each timed by `timer(step, loss_value)` (milliseconds).
    Returns the report's timing fields."""
    losses = []
    first = None
    for i in range(max(warmup, 2)):
        start = time.perf_counter()
        out = step()
        value = loss_value(out)
        if i == 0:
            first = time.perf_counter() - start
        if len(losses) < 2:
            losses.append(value)
    times = []
    for _ in range(steps):
        times.append(timer(step, loss_value))
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "step_ms": times,
        "first_step_s": first,
        "losses": losses,
    }


def emit(report):
    report["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(report), flush=True)


def as_float32(params):
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
