// main() of a standalone executable from `kiln compile --target=cpu -o NAME`:
// the program embedded in the object under the api name `aot`
// (runtime/cpu/AotHeader.h), run like `kiln run --target=cpu`.
#include "runtime/CommandLine.h"
#include "runtime/Feeds.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/AotProgram.h"
#include "runtime/cpu/Threads.h"

#include <chrono>
#include <cstdio>
#include <iostream>

extern "C" {
extern const char kiln_aot_program[];
extern const int64_t kiln_aot_program_size;
extern const kiln::KernelFunction kiln_aot_kernels[];
extern const int64_t kiln_aot_kernel_count;
}

namespace {

const char *kUsage = R"(usage: %s [options]

Runs @%s, compiled ahead of time by `kiln compile --target=cpu`.
  --params=FILE.safetensors  params/state to start from (by name; the others
                             start from their initializer under --seed)
  --seed=N                   seed of the initial params and random feeds (0)
  --inputs=FEEDS             comma list of FILE.safetensors and NAME=FILE.npy
                             entries; arguments not given get seeded random
                             values (or their default)
  --steps=N                  runs of the step (1); params/state carry over
  --threads=N                threads (default: the cores)
  --save-params=FILE         writes params and state after the runs (atomic)
  --output=FILE.safetensors  writes the results of the last run and the
                             updated params/state
)";

int run(int argc, char **argv, kiln::cpu::Executable &exe) {
  const kiln::Program &program = exe.program();
  kiln::CommandLine cl({"--params", "--seed", "--inputs", "--steps", "--threads", "--save-params",
                        "--output"},
                       {"--help"});
  cl.parse(argc, argv, 1);
  if (cl.has("--help")) {
    std::printf(kUsage, argv[0], program.name.c_str());
    return 0;
  }
  if (!cl.positional().empty())
    kiln::throwError("", "unexpected argument '" + cl.positional()[0] + "' (see --help)");
  uint64_t seed = cl.getUnsigned("--seed", 0), steps = cl.getUnsigned("--steps", 1);
  if (steps == 0)
    kiln::throwError("", "--steps must be at least 1");
  if (cl.has("--threads")) {
    uint64_t threads = cl.getUnsigned("--threads", 1);
    if (threads < 1 || threads > 4096)
      kiln::throwError("", "--threads must be in [1, 4096]");
    kiln::cpu::setNumThreads(int(threads));
  }
  kiln::cpu::initializeArguments(exe, seed);
  if (cl.has("--params"))
    exe.loadArguments(cl.get("--params"));
  if (cl.has("--inputs")) {
    kiln::TensorMap feeds = kiln::readFeedList(
        cl.get("--inputs"), [&](const kiln::TensorMap &tensors, const std::string &source) {
          for (const auto &[name, t] : tensors) {
            const kiln::ArgumentSpec *arg = nullptr;
            for (const kiln::ArgumentSpec &a : program.arguments)
              arg = a.name == name ? &a : arg;
            if (!arg)
              kiln::throwError(source, "tensor '" + name + "' is not an argument of @" + program.name);
            std::string expected = std::string(kiln::dtypeName(arg->dtype)) + arg->shape.toString();
            if (t.dtype() != arg->dtype || t.shape() != arg->shape)
              kiln::throwError(source, "tensor '" + name + "' has type " + t.typeString() + " but @" +
                                           program.name + " expects " + expected);
          }
        });
    for (const auto &[name, value] : feeds)
      exe.setArgument(name, value);
  }
  for (uint64_t step = 0; step < steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    exe.run();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::string line = "step " + std::to_string(step + 1) + "/" + std::to_string(steps);
    for (size_t i = 0; i < exe.numResults(); ++i)
      if (program.results[i].shape.numElements() == 1) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " %s=%.6g", program.results[i].name.c_str(),
                      exe.result(i).getDouble(0));
        line += buf;
      }
    char timing[48];
    std::snprintf(timing, sizeof timing, " (%.2f ms)", ms);
    std::cout << line << timing << std::endl;
  }
  if (cl.has("--save-params"))
    exe.saveArguments(cl.get("--save-params"));
  if (cl.has("--output")) {
    kiln::TensorMap outputs;
    for (size_t i = 0; i < exe.numResults(); ++i)
      outputs[program.results[i].name] = exe.result(i);
    for (const kiln::UpdateSpec &u : program.updates)
      outputs[program.arguments[size_t(u.argument)].name] =
          exe.argument(program.arguments[size_t(u.argument)].name);
    kiln::writeSafetensors(cl.get("--output"), outputs);
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string tool = argc > 0 ? argv[0] : "kiln-aot";
  try {
    kiln::cpu::Executable exe = kiln::cpu::loadEmbeddedProgram(
        kiln_aot_program, kiln_aot_program_size, kiln_aot_kernels, kiln_aot_kernel_count);
    return run(argc, argv, exe);
  } catch (const kiln::Error &e) {
    std::cerr << kiln::toolMessage(tool.c_str(), e) << "\n";
  } catch (const std::bad_alloc &) {
    std::cerr << tool << ": error: out of memory\n";
  } catch (const std::exception &e) {
    std::cerr << tool << ": internal error: " << e.what() << "\n";
  }
  return 1;
}
