#!/usr/bin/env python3
"""mlp_digits trained by JIT, then the same model compiled AOT and run.

Runs `mlp_digits --save=DIR` (the training step compiled for the CPU in the
process), compiles the saved model (batched over the held-out set) with
`kiln compile --target=cpu -o EXE`, runs EXE on the saved params and held-out
inputs, and checks that the executable's loss and accuracy are the ones
mlp_digits printed for the same params and images (a second, independent
compile and run of the model: the AOT path against the JIT one), and that
the accuracy meets the example's bound of 0.95.
"""
import argparse
import os
import re
import sys
import tempfile

from embed_install import run  # a command's stdout; exits with its output when it fails


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)  # the directory of `kiln`
    parser.add_argument("--example", required=True)  # the mlp_digits executable
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-digits-aot-") as tmp:
        out = run([args.example, "--threads=1", "--steps=500", f"--save={tmp}"])
        jit = re.search(r"held-out accuracy ([0-9.]+) \(\d+/\d+\), loss ([0-9.]+)", out)
        if not jit:
            sys.exit("FAILED: no held-out accuracy in mlp_digits' output:\n" + out)
        exe = os.path.join(tmp, "digits_aot")
        run([os.path.join(args.bin_dir, "kiln"), "compile", os.path.join(tmp, "model.kir"),
             "--target=cpu", "-o", exe])
        aot = run([exe, "--threads=1", "--params=" + os.path.join(tmp, "params.safetensors"),
                   "--inputs=" + os.path.join(tmp, "heldout.safetensors")])
        m = re.search(r"loss=([0-9.e+-]+) accuracy=([0-9.e+-]+)", aot)
        if not m:
            sys.exit("FAILED: no loss and accuracy in the executable's output:\n" + aot)
        jit_accuracy, jit_loss = float(jit.group(1)), float(jit.group(2))
        aot_loss, aot_accuracy = float(m.group(1)), float(m.group(2))
        print(f"JIT: accuracy {jit_accuracy} loss {jit_loss}; AOT: accuracy {aot_accuracy} "
              f"loss {aot_loss}")
        # mlp_digits prints 4 decimals; the executable 6 significant digits.
        if abs(aot_accuracy - jit_accuracy) > 6e-5 or abs(aot_loss - jit_loss) > 6e-5:
            sys.exit("FAILED: the AOT executable scores the trained model differently")
        if aot_accuracy < 0.95:
            sys.exit(f"FAILED: held-out accuracy {aot_accuracy} is below 0.95")
    print("ok")


if __name__ == "__main__":
    main()
