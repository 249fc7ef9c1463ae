#!/usr/bin/env python3
"""The installed CMake package works from an outside project.

Installs the build into a fresh temporary prefix (`cmake --install`), then
configures and builds examples/embed against it with find_package(Kiln) as a
separate CMake project, runs it and checks what it prints: the losses of its
training steps fall, and the trained params give a low loss at inference.
Also runs the README's example (examples/embed/readme.cpp) and checks that the
installed `kiln` tool runs.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)} exited {result.returncode}\n"
                 f"{result.stdout}\n{result.stderr}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--cmake", default="cmake")
    parser.add_argument("--generator", default="")
    parser.add_argument("--cxx", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiln-embed-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        run([args.cmake, "--install", args.build_dir, "--prefix", prefix])
        for path in ["include/kiln/kiln.h", "include/kiln/runtime/Tensor.h",
                     "include/kiln/ir/OpKind.def", "lib/cmake/Kiln/KilnConfig.cmake",
                     "lib/cmake/Kiln/KilnTargets.cmake", "bin/kiln"]:
            if not os.path.exists(os.path.join(prefix, path)):
                sys.exit(f"FAILED: the install has no {path}")
        usage = subprocess.run([os.path.join(prefix, "bin", "kiln"), "--help"],
                               capture_output=True, text=True)
        if usage.returncode != 0 or "usage: kiln" not in usage.stdout:
            sys.exit(f"FAILED: the installed kiln does not run:\n{usage.stdout}{usage.stderr}")

        build = os.path.join(tmp, "embed")
        configure = [args.cmake, "-S", os.path.join(args.source_dir, "examples", "embed"),
                     "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"]
        if args.generator:
            configure += ["-G", args.generator]
        if args.cxx:
            configure.append(f"-DCMAKE_CXX_COMPILER={args.cxx}")
        run(configure)
        run([args.cmake, "--build", build])
        out = run([os.path.join(build, "embed")])
        print(out, end="")

        losses = [float(m) for m in re.findall(r"^step \d+ loss ([0-9.e+-]+)$", out, re.M)]
        if len(losses) < 2:
            sys.exit("FAILED: the example printed no losses")
        if not all(b < a for a, b in zip(losses, losses[1:])) or not losses[-1] < losses[0] / 4:
            sys.exit(f"FAILED: the losses do not fall: {losses}")
        m = re.search(r"^inference on (cpu|interp): loss ([0-9.e+-]+),", out, re.M)
        if not m:
            sys.exit("FAILED: the example printed no inference line")
        if not float(m.group(2)) <= losses[-1]:
            sys.exit(f"FAILED: the inference loss {m.group(2)} is above the last step's {losses[-1]}")

        # The README's example: fits a linear map exactly, saves its params.
        out = run([os.path.join(build, "embed_readme")], cwd=tmp)
        print(out, end="")
        losses = [float(m) for m in re.findall(r"^step \d+ loss ([0-9.e+-]+)$", out, re.M)]
        if len(losses) != 5 or not losses[0] > 0.1 or not losses[-1] < 1e-4 * losses[0]:
            sys.exit(f"FAILED: the README example does not fit: {losses}")
        saved = os.path.join(tmp, "linear.safetensors")
        if not os.path.exists(saved) or os.path.getsize(saved) < 8 + 4 * 4:
            sys.exit("FAILED: the README example saved no params")
    print("ok: examples/embed built against the installed package and trained")


if __name__ == "__main__":
    main()
