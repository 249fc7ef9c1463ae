#!/usr/bin/env python3
"""The GPU workloads of shared/BENCHMARKS.md (mlp-gpu, gpt2-gpu) in PyTorch,
eager or torch.compile, on one GPU; prints one JSON line:

  torch_gpu.py --system=torch-eager|torch-compile --workload=mlp-gpu|gpt2-gpu
               [--init=DIR/WORKLOAD.safetensors] [--steps=50] [--warmup=5]
               [--device=cuda|cpu] [--tiny] [--seed=0]

The models, optimizers and step are bench/peers/torch_peer.py's (the models
of examples/models/Models.h with Kiln's parameter names; torch.optim's SGD
with momentum and AdamW, as Kiln's step), at the GPU workloads' sizes, f32
with TF32 off for matmuls and convolutions. --init loads kiln-bench-gpu
--export-dir's initial params and input batch (without it: torch's own init
and a random batch, seeded). Each timed step is timed by CUDA events recorded
around it (zero_grad, forward, loss, backward, optimizer step; no host
synchronization inside); peak device memory is torch.cuda.max_memory_allocated.

--device=cpu --tiny runs the same code on the CPU at the CPU workloads' sizes
(wall-clock timing), for a check without a GPU (ctest bench-gpu-smoke).
Exits 77 when torch is not installed, 1 when --device=cuda finds no GPU."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402


def random_init(model, config, batch, seed):
    """(params, inputs, labels) without Kiln's export: torch's init, a random batch."""
    import torch
    import torch_peer
    torch.manual_seed(seed)
    net = torch_peer.build(model, None, config)
    params = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(seed)
    if model == "gpt":
        inputs = rng.integers(0, config["vocab"], size=batch, dtype=np.int32)
        labels = rng.integers(0, config["vocab"], size=batch, dtype=np.int32)
    else:
        inputs = rng.uniform(-1, 1, size=batch + (config["inputs"],)).astype(np.float32)
        labels = rng.integers(0, config["classes"], size=batch, dtype=np.int32)
    return params, inputs, labels


def cuda_event_timer(torch):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timer(step, loss_value):
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    return timer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", required=True, choices=["torch-eager", "torch-compile"])
    ap.add_argument("--workload", required=True, choices=sorted(common.GPU_WORKLOADS))
    ap.add_argument("--init", help="kiln-bench-gpu --export-dir's WORKLOAD.safetensors")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="the CPU workloads' sizes (mlp, gpt)")
    ap.add_argument("--seed", type=int, default=0, help="of the batch and init without --init")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch's CPU threads")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 2:
        sys.exit("torch_gpu.py: error: --steps must be at least 1, --warmup at least 2")
    common.set_threads_env(args.threads)  # before torch is imported
    try:
        import torch
        import torch_peer
    except ImportError as e:
        print(f"torch_gpu.py: torch is not installed ({e})", file=sys.stderr)
        sys.exit(77)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpu.py: error: no CUDA device for torch "
                 f"(torch {torch.__version__}, CUDA {torch.version.cuda})")
    # Exact f32 matmuls and convolutions, as Kiln's cuBLASLt calls (TF32 off).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    model, config, batch = (common.TINY_WORKLOADS if args.tiny else common.GPU_WORKLOADS)[args.workload]
    if args.init:
        params, inputs, labels = common.load_init(args.init, model)
        params = common.as_float32(params)
        if tuple(labels.shape) != batch:
            sys.exit(f"torch_gpu.py: error: {args.init}: labels of shape {tuple(labels.shape)}, "
                     f"expected {batch}{' (--tiny?)' if not args.tiny else ''}")
    else:
        params, inputs, labels = random_init(model, config, batch, args.seed)

    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step = torch_peer.make_step(model, True, params, inputs, labels, compiled=args.system == "torch-compile",
                                threads=args.threads, config=config, device=args.device)
    del params  # the host copies
    timer = cuda_event_timer(torch) if cuda else common.wall_clock
    report = {"system": args.system, "workload": args.workload, "device": args.device, "tiny": args.tiny,
              "init": "kiln" if args.init else "torch", "versions": torch_peer.versions(),
              "tf32": torch.backends.cuda.matmul.allow_tf32}
    if cuda:
        report["device_name"] = torch.cuda.get_device_name()
        report["versions"]["cuda"] = torch.version.cuda
    else:
        report["threads"] = args.threads
    report.update(common.measure(step, torch_peer.loss_value, args.warmup, args.steps, timer))
    report["steps"] = args.steps
    if cuda:
        report["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    common.emit(report)


if __name__ == "__main__":
    main()
