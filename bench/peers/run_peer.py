#!/usr/bin/env python3
"""Runs one workload on one peer system and prints one JSON line:
  run_peer.py --system=torch-eager|torch-compile|jax --workload=mlp
              --init=DIR/mlp.safetensors [--steps=50] [--warmup=5] [--threads=N]
Exits 77 when the system's package is not installed (bench/peers/setup.sh)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--system", required=True, choices=["torch-eager", "torch-compile", "jax"])
    ap.add_argument("--workload", required=True)
    ap.add_argument("--init", required=True, help="kiln-bench --export-dir's MODEL.safetensors")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    common.set_threads_env(args.threads)  # before torch or jax is imported
    model, train = common.parse_workload(args.workload)
    try:
        if args.system == "jax":
            import jax_peer as peer
        else:
            import torch_peer as peer
    except ImportError as e:
        print(f"run_peer.py: {args.system} is not installed ({e}); run bench/peers/setup.sh",
              file=sys.stderr)
        sys.exit(77)
    params, inputs, labels = common.load_init(args.init, model)
    step = peer.make_step(model, train, common.as_float32(params), inputs, labels,
                          compiled=args.system != "torch-eager", threads=args.threads)
    report = {"system": args.system, "workload": args.workload, "threads": args.threads,
              "versions": peer.versions()}
    report.update(common.measure(step, peer.loss_value, args.warmup, args.steps))
    common.emit(report)


if __name__ == "__main__":
    main()
