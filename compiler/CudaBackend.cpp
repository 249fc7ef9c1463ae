#include "compiler/CudaBackend.h"

#include "codegen/cuda/CudaCodegen.h"
#include "codegen/cuda/Nvrtc.h"
#include "runtime/Error.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace kiln {

bool cudaBackendAvailable() { return true; }

CudaCompiled compileForCuda(const Graph &planned, const std::string &arch) {
  NvrtcOptions options;
  options.arch = arch;
  CudaCompiled out;
  out.program = std::make_shared<CudaProgram>(lowerForCuda(planned));
  std::vector<NvrtcOutput> binaries = compileCudaModules(out.program->modules, options);
  for (size_t m = 0; m < binaries.size(); ++m) {
    out.program->modules[m].cubin = std::move(binaries[m].cubin);
    out.program->modules[m].ptx = std::move(binaries[m].ptx);
  }
  return out;
}

std::unique_ptr<cuda::Executable> compileCudaExecutable(const Graph &planned, std::shared_ptr<cuda::Device> device,
                                                        cuda::ExecutableOptions options) {
  CudaCompiled compiled = compileForCuda(planned, device->info().arch);
  return std::make_unique<cuda::Executable>(std::move(*compiled.program), std::move(device), options);
}

std::string cudaText(const CudaCompiled &compiled, const std::string &what) {
  std::string text;
  for (size_t m = 0; m < compiled.program->modules.size(); ++m) {
    const CudaModule &module = compiled.program->modules[m];
    text += "// ----- " + module.name + "\n";
    text += what == "ptx" ? module.ptx : module.source;
    if (!text.empty() && text.back() != '\n')
      text += "\n";
  }
  return text;
}

namespace {

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out)
    throwError(path, "cannot write the file");
}


} // namespace

void dumpCudaKernels(const CudaCompiled &compiled, const std::string &dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throwError(dir, "cannot create the dump folder: " + ec.message());
  const CudaProgram &p = *compiled.program;
  std::string table;
  size_t kernel = 0;
  for (size_t s = 0; s < p.program.steps.size(); ++s) {
    const CudaLaunch &l = p.launches[s];
    table += p.program.steps[s].name;
    if (p.program.steps[s].kind == StepKind::Matmul)
      table += " -> cuBLASLt";
    if (!l.kernel.empty()) {
      table += " -> " + l.kernel + " (" + p.strategies[kernel++] + ") grid " + std::to_string(l.grid) +
               " block " + std::to_string(l.block);
    }
    table += "\n";
  }
  writeText(dir + "/cuda.program.txt", table);
  size_t n = 0;
  for (size_t m = 0; m < p.modules.size(); ++m) {
    const CudaModule &module = p.modules[m];
    writeText(dir + "/cuda." + module.name + ".ptx", module.ptx);
    // Split the module's source after the preamble at each kernel's comment line.
    std::string body = module.source.substr(cudaPreamble().size());
    for (size_t k = 0; k < module.kernels.size(); ++k) {
      size_t begin = body.find("\n// "), end = body.find("\n// ", begin + 1);
      std::string one = body.substr(begin + 1, end == std::string::npos ? std::string::npos : end - begin);
      body = end == std::string::npos ? "" : body.substr(end);
      char prefix[32];
      std::snprintf(prefix, sizeof prefix, "cuda.%02zu.", n++);
      writeText(dir + "/" + prefix + module.kernels[k] + ".cu", cudaPreamble() + "\n" + one);
    }
  }
}

} // namespace kiln
