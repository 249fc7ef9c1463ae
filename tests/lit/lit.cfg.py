# lit configuration for Kiln: .kir files run through kiln-opt / kiln and FileCheck.
import os
import lit.formats

config.name = "kiln"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".kir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)

bin_dir = lit_config.params["kiln_bin_dir"]
source_dir = lit_config.params["kiln_source_dir"]
filecheck = lit_config.params["filecheck"]
llvm_bin = os.path.dirname(os.path.realpath(filecheck))

config.substitutions.append(("%kiln-opt", os.path.join(bin_dir, "kiln-opt")))
config.substitutions.append(("%kiln", os.path.join(bin_dir, "kiln")))
config.substitutions.append(("%examples", os.path.join(source_dir, "examples")))
config.environment["PATH"] = os.pathsep.join([bin_dir, llvm_bin, config.environment.get("PATH", "")])
config.substitutions.append(("FileCheck", filecheck))

# Tests of the CPU backend say `REQUIRES: cpu-backend`.
if lit_config.params.get("cpu_backend", "OFF").upper() in ("ON", "1", "TRUE", "YES"):
    config.available_features.add("cpu-backend")
