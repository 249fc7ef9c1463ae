// The MLIR -> LLVM -> JIT / object path for a program's kernels (recipe:
// docs/backends.md, from shared/notes/mlir-cpu.md). Each kernel's MLIR comes
// from KernelEmitter; this file lowers it, picks the TargetMachine (the host
// CPU and features, or -mcpu) and emits LLVM IR, assembly and objects.
#include "codegen/cpu/CpuCodegen.h"
#include "codegen/cpu/KernelEmitter.h"

#include "ir/Graph.h"
#include "runtime/Error.h"
#include "runtime/Random.h"
#include "runtime/Safetensors.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Transforms/Utils/Cloning.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace kiln {

using namespace mlir;

struct CpuKernels::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::string mlirText;
  std::vector<KernelSchedule> schedules;
  bool fromCache = false;
};

CpuKernels::CpuKernels(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CpuKernels::~CpuKernels() = default;

KernelFunction CpuKernels::function(const std::string &name) const {
  llvm::Expected<llvm::orc::ExecutorAddr> address = impl_->jit->lookup(name);
  if (!address) {
    std::string why = llvm::toString(address.takeError());
    throwError("", "no compiled kernel named '" + name + "': " + why);
  }
  return address->toPtr<KernelFunction>();
}

bool CpuKernels::fromCache() const { return impl_->fromCache; }

const std::string &CpuKernels::mlir() const { return impl_->mlirText; }

const std::vector<KernelSchedule> &CpuKernels::schedules() const { return impl_->schedules; }

namespace {

void lowerToLLVM(ModuleOp module, MLIRContext &context) {
  RewritePatternSet patterns(&context);
  populateMathPolynomialApproximationPatterns(patterns);
  if (failed(applyPatternsAndFoldGreedily(module, std::move(patterns))))
    throwError("", "internal error: math approximation failed");
  PassManager pm(&context);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createConvertSCFToCFPass());
  // LLVM intrinsics first (floor, sqrt, fma: the approximations are built of
  // them and must stay inline to vectorize), libm calls only for what is left
  // (f64 tanh, erf, ...).
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  ConvertFuncToLLVMPassOptions funcOptions;
  funcOptions.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcOptions));
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(module)))
    throwError("", "internal error: lowering the CPU kernels to the LLVM dialect failed");
  // Conversions are partial: name any op left outside the LLVM dialect.
  std::string leftover;
  module.walk([&](Operation *op) {
    if (leftover.empty() && !isa<ModuleOp>(op) && op->getDialect() &&
        op->getDialect()->getNamespace() != "llvm")
      leftover = op->getName().getStringRef().str();
  });
  if (!leftover.empty())
    throwError("", "internal error: '" + leftover + "' was not lowered to LLVM");
}

} // namespace

std::string hostCpuName() { return llvm::sys::getHostCPUName().str(); }

namespace {

void initializeLLVM() {
  static const bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
}

/// The TargetMachine kernels are compiled for: the host's CPU and features
/// (empty `cpu`), else the named CPU with its default features.
std::unique_ptr<llvm::TargetMachine> targetMachine(const std::string &cpu) {
  initializeLLVM();
  std::string triple = llvm::sys::getProcessTriple(), error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    throwError("", "internal error: no LLVM target for " + triple + ": " + error);
  std::string name = cpu.empty() ? hostCpuName() : cpu;
  llvm::SubtargetFeatures features;
  if (cpu.empty())
    for (const auto &feature : llvm::sys::getHostCPUFeatures())
      features.AddFeature(feature.first(), feature.second);
  std::unique_ptr<llvm::MCSubtargetInfo> info(target->createMCSubtargetInfo(triple, "", ""));
  if (!info || !info->isCPUStringValid(name))
    throwError("", "unknown CPU '" + name + "' for " + triple +
                       " (LLVM's names, as `llc -mcpu=help` lists them; e.g. x86-64-v3, skylake-avx512, " +
                       hostCpuName() + ")");
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, name, features.getString(), llvm::TargetOptions(), llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    throwError("", "internal error: cannot create an LLVM target machine for " + name);
  return machine;
}

/// The MLIR of `kernels`, one module, verified; its text before lowering in
/// `text`, each kernel's schedule in `schedules`.
OwningOpRef<ModuleOp> buildModule(MLIRContext &context, const std::vector<KernelRequest> &kernels,
                                  std::string &text, std::vector<KernelSchedule> &schedules) {
  OpBuilder builder(&context);
  OwningOpRef<ModuleOp> module = ModuleOp::create(builder.getUnknownLoc());
  for (const KernelRequest &k : kernels) {
    builder.setInsertionPointToEnd(module->getBody());
    schedules.push_back(emitKernel(builder, *module, k));
  }
  if (failed(verify(*module)))
    throwError("", "internal error: the generated MLIR does not verify");
  llvm::raw_string_ostream stream(text);
  module->print(stream);
  stream.flush();
  return module;
}

std::unique_ptr<MLIRContext> makeContext() {
  DialectRegistry registry;
  registry.insert<func::FuncDialect, arith::ArithDialect, math::MathDialect, memref::MemRefDialect,
                  scf::SCFDialect, cf::ControlFlowDialect, LLVM::LLVMDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  auto context = std::make_unique<MLIRContext>(registry);
  context->loadAllAvailableDialects();
  return context;
}

/// Machine code of `module` (not changed: codegen runs on a copy).
std::string emitMachineCode(const llvm::Module &module, llvm::TargetMachine &machine,
                            llvm::CodeGenFileType type) {
  std::unique_ptr<llvm::Module> copy = llvm::CloneModule(module);
  llvm::SmallString<0> buffer;
  llvm::raw_svector_ostream stream(buffer);
  llvm::legacy::PassManager passes;
  if (machine.addPassesToEmitFile(passes, stream, nullptr, type))
    throwError("", "internal error: LLVM cannot emit this file type for the target");
  passes.run(*copy);
  return std::string(buffer.str());
}

/// What `print(stream)` writes.
template <typename Print> std::string printed(Print &&print) {
  std::string text;
  llvm::raw_string_ostream stream(text);
  print(stream);
  return stream.str();
}

/// Adds the AOT symbols of CpuCodeOptions::symbolPrefix to `module`.
void addProgramSymbols(llvm::Module &module, const std::vector<KernelRequest> &kernels,
                       const CpuCodeOptions &options, const std::string &data) {
  llvm::LLVMContext &ctx = module.getContext();
  const std::string &prefix = options.symbolPrefix;
  auto *i64 = llvm::Type::getInt64Ty(ctx);
  auto *ptr = llvm::PointerType::getUnqual(ctx);
  std::vector<llvm::Constant *> addresses;
  for (const KernelRequest &k : kernels) {
    llvm::Function *f = module.getFunction(k.name);
    if (!f)
      throwError("", "internal error: no LLVM function for kernel '" + k.name + "'");
    addresses.push_back(f);
  }
  auto constant = [&](const std::string &name, llvm::Constant *init) {
    new llvm::GlobalVariable(module, init->getType(), /*isConstant=*/true,
                             llvm::GlobalValue::ExternalLinkage, init, prefix + name);
  };
  auto *table = llvm::ArrayType::get(ptr, addresses.size());
  constant("_kernels", llvm::ConstantArray::get(table, addresses));
  constant("_kernel_count", llvm::ConstantInt::get(i64, addresses.size()));
  constant("_program", llvm::ConstantDataArray::getString(ctx, data, /*AddNull=*/true));
  constant("_program_size", llvm::ConstantInt::get(i64, data.size()));
}

} // namespace

namespace {

/// Optimized LLVM IR of `module`'s kernels, lowered and translated, for `machine`.
std::unique_ptr<llvm::Module> translateAndOptimize(ModuleOp module, MLIRContext &context,
                                                  llvm::LLVMContext &llvmContext,
                                                  llvm::TargetMachine &machine) {
  lowerToLLVM(module, context);
  std::unique_ptr<llvm::Module> llvmModule = translateModuleToLLVMIR(module, llvmContext, "kiln_kernels");
  if (!llvmModule)
    throwError("", "internal error: translating the kernels to LLVM IR failed");
  llvmModule->setTargetTriple(machine.getTargetTriple().str());
  llvmModule->setDataLayout(machine.createDataLayout());
  if (llvm::Error error = makeOptimizingTransformer(3, 0, &machine)(llvmModule.get()))
    throwError("", "internal error: LLVM optimization failed: " + llvm::toString(std::move(error)));
  return llvmModule;
}

/// Object files for `kernels` on the host: the kernels split into contiguous
/// parts of about equal size, each generated, lowered, optimized and
/// compiled on its own thread with its own MLIR and LLVM contexts.
std::vector<std::string> compileObjects(const std::vector<KernelRequest> &kernels) {
  size_t threads = std::max<size_t>(1, std::thread::hardware_concurrency());
  size_t parts = std::min(threads, std::max<size_t>(1, kernels.size() / 4));
  std::vector<size_t> weight(kernels.size(), 1);
  size_t total = 0;
  for (size_t i = 0; i < kernels.size(); ++i) {
    if (const Graph *body = kernels[i].node->body())
      weight[i] += body->nodes().size();
    total += weight[i];
  }
  std::vector<std::vector<KernelRequest>> groups(parts);
  for (size_t i = 0, part = 0, sum = 0; i < kernels.size(); ++i) {
    groups[part].push_back(kernels[i]);
    sum += weight[i];
    if (part + 1 < parts && sum * parts >= total * (part + 1))
      ++part;
  }
  std::vector<std::string> objects(parts);
  std::vector<std::string> errors(parts);
  auto compilePart = [&](size_t part) {
    try {
      std::unique_ptr<llvm::TargetMachine> machine = targetMachine("");
      std::unique_ptr<MLIRContext> context = makeContext();
      std::string text;
      std::vector<KernelSchedule> schedules;
      OwningOpRef<ModuleOp> module = buildModule(*context, groups[part], text, schedules);
      llvm::LLVMContext llvmContext;
      std::unique_ptr<llvm::Module> llvmModule = translateAndOptimize(*module, *context, llvmContext, *machine);
      objects[part] = emitMachineCode(*llvmModule, *machine, llvm::CodeGenFileType::ObjectFile);
    } catch (const std::exception &e) {
      errors[part] = e.what();
    }
  };
  std::vector<std::thread> workers;
  for (size_t part = 1; part < parts; ++part)
    workers.emplace_back(compilePart, part);
  compilePart(0);
  for (std::thread &t : workers)
    t.join();
  for (const std::string &error : errors)
    if (!error.empty())
      throw Error(error);
  return objects;
}

// --- The kernel cache ---------------------------------------------------------
//
// Compiled kernels are kept on disk, keyed by a hash of everything that
// decides the machine code: the kernels' MLIR, the host CPU and its features,
// the LLVM version, this format's version and the build of this file (which
// holds the lowering pipeline: a rebuilt Kiln never reuses older code). A file holds the objects of one
// program: "kiln-cpu-objects 1\n", the count, then each object's size and bytes.
// A damaged or foreign file is a miss (and is rewritten). After each write the
// folder is trimmed to $KILN_CACHE_MAX_BYTES (default 1 GiB), least recently
// used files first.

constexpr const char *kCacheMagic = "kiln-cpu-objects 1\n";

/// Two 64-bit FNV-1a hashes with different offsets, as 32 hex digits.
std::string cacheKey(const std::string &mlirText) {
  std::string features;
  for (const auto &feature : llvm::sys::getHostCPUFeatures())
    features += (feature.second ? "+" : "-") + feature.first().str() + ",";
  std::string all = mlirText + "\n" + hostCpuName() + "\n" + features + "\n" LLVM_VERSION_STRING "\n" +
                    kCacheMagic + __DATE__ " " __TIME__;
  uint64_t a = 14695981039346656037ull, b = 1099511628211ull * 31;
  for (unsigned char c : all) {
    a = (a ^ c) * 1099511628211ull;
    b = (b ^ c) * 1099511628211ull + 0x9e3779b97f4a7c15ull;
  }
  char key[33];
  std::snprintf(key, sizeof key, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  return key;
}

/// The cache folder: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else
/// ~/.cache/kiln; empty (no cache) when KILN_CACHE_DIR is "off" or there is no home.
std::filesystem::path cacheDirectory() {
  if (const char *dir = std::getenv("KILN_CACHE_DIR"))
    return std::string(dir) == "off" || !*dir ? std::filesystem::path() : std::filesystem::path(dir) / "cpu";
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::filesystem::path(xdg) / "kiln" / "cpu";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "kiln" / "cpu";
  return {};
}

std::optional<std::vector<std::string>> readCache(const std::filesystem::path &file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string magic = kCacheMagic;
  if (bytes.compare(0, magic.size(), magic) != 0)
    return std::nullopt;
  size_t at = magic.size();
  auto number = [&]() -> std::optional<uint64_t> {
    if (bytes.size() - at < 8)
      return std::nullopt;
    uint64_t v = 0;
    std::memcpy(&v, bytes.data() + at, 8);
    at += 8;
    return v;
  };
  std::optional<uint64_t> count = number();
  if (!count || *count == 0 || *count > 4096)
    return std::nullopt;
  std::vector<std::string> objects;
  for (uint64_t i = 0; i < *count; ++i) {
    std::optional<uint64_t> size = number();
    if (!size || *size > bytes.size() - at)
      return std::nullopt;
    objects.push_back(bytes.substr(at, *size));
    at += *size;
  }
  if (at != bytes.size())
    return std::nullopt;
  return objects;
}

/// The most bytes the cache folder keeps: $KILN_CACHE_MAX_BYTES, else 1 GiB.
uint64_t cacheLimit() {
  if (const char *limit = std::getenv("KILN_CACHE_MAX_BYTES"); limit && *limit) {
    char *end = nullptr;
    unsigned long long v = std::strtoull(limit, &end, 10);
    if (end && *end == 0)
      return v;
  }
  return uint64_t(1) << 30;
}

/// Deletes the least recently used files (a hit touches its file) until the
/// folder holds at most the limit. Best effort, like the rest of the cache.
void trimCache(const std::filesystem::path &directory) {
  std::error_code ec;
  std::vector<std::pair<std::filesystem::file_time_type, std::filesystem::path>> files;
  uint64_t total = 0;
  for (const auto &entry : std::filesystem::directory_iterator(directory, ec)) {
    if (!entry.is_regular_file(ec) || entry.path().extension() != ".objects")
      continue;
    total += entry.file_size(ec);
    files.emplace_back(entry.last_write_time(ec), entry.path());
  }
  uint64_t limit = cacheLimit();
  std::sort(files.begin(), files.end());
  for (const auto &[time, path] : files) {
    if (total <= limit)
      break;
    uint64_t size = std::filesystem::file_size(path, ec);
    if (std::filesystem::remove(path, ec))
      total -= std::min(total, size);
  }
}

/// Best effort: a cache that cannot be written is no cache.
void writeCache(const std::filesystem::path &file, const std::vector<std::string> &objects) {
  std::string bytes = kCacheMagic;
  auto number = [&](uint64_t v) { bytes.append(reinterpret_cast<const char *>(&v), 8); };
  number(objects.size());
  for (const std::string &object : objects) {
    number(object.size());
    bytes += object;
  }
  try {
    std::filesystem::create_directories(file.parent_path());
    writeFileAtomically(file.string(), bytes);
  } catch (const std::exception &) {
  }
  trimCache(file.parent_path());
}

/// A JIT holding `objects`, resolving kiln_rng_uniform and the process's
/// symbols (libm); null with `error` set when an object does not load.
std::unique_ptr<llvm::orc::LLJIT> loadObjects(const std::vector<std::string> &objects, std::string &error) {
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder) {
    error = llvm::toString(builder.takeError());
    return nullptr;
  }
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*builder)).create();
  if (!jit) {
    error = llvm::toString(jit.takeError());
    return nullptr;
  }
  llvm::orc::JITDylib &library = (*jit)->getMainJITDylib();
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process) {
    error = llvm::toString(process.takeError());
    return nullptr;
  }
  library.addGenerator(std::move(*process));
  llvm::orc::SymbolMap symbols;
  symbols[(*jit)->mangleAndIntern("kiln_rng_uniform")] = {
      llvm::orc::ExecutorAddr::fromPtr(&kiln_rng_uniform), llvm::JITSymbolFlags::Exported};
  if (llvm::Error e = library.define(llvm::orc::absoluteSymbols(std::move(symbols)))) {
    error = llvm::toString(std::move(e));
    return nullptr;
  }
  for (const std::string &object : objects)
    if (llvm::Error e = (*jit)->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(object, "kiln_kernels.o"))) {
      error = llvm::toString(std::move(e));
      return nullptr;
    }
  return std::move(*jit);
}

} // namespace

std::unique_ptr<CpuKernels> compileCpuKernels(const std::vector<KernelRequest> &kernels) {
  initializeLLVM();
  auto impl = std::make_unique<CpuKernels::Impl>();
  {
    std::unique_ptr<MLIRContext> context = makeContext();
    buildModule(*context, kernels, impl->mlirText, impl->schedules);
  }
  std::filesystem::path directory = cacheDirectory();
  std::filesystem::path file = directory.empty() ? directory : directory / (cacheKey(impl->mlirText) + ".objects");
  std::string error;
  if (!file.empty())
    if (std::optional<std::vector<std::string>> cached = readCache(file)) {
      impl->jit = loadObjects(*cached, error);
      impl->fromCache = impl->jit != nullptr;
      std::error_code ec; // recently used: the last to go when the cache is trimmed
      std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now(), ec);
    }
  if (!impl->jit) {
    std::vector<std::string> objects = compileObjects(kernels);
    impl->jit = loadObjects(objects, error);
    if (!impl->jit)
      throwError("", "internal error: the JIT cannot load the kernels: " + error);
    if (!file.empty())
      writeCache(file, objects);
  }
  auto kernelsOut = std::make_unique<CpuKernels>(std::move(impl));
  for (const KernelRequest &k : kernels) // every symbol resolves now, not at the first step
    kernelsOut->function(k.name);
  return kernelsOut;
}

CpuCode generateCpuCode(const std::vector<KernelRequest> &kernels, const CpuCodeOptions &options) {
  std::unique_ptr<llvm::TargetMachine> machine = targetMachine(options.cpu);
  std::unique_ptr<MLIRContext> context = makeContext();
  CpuCode code;
  OwningOpRef<ModuleOp> module = buildModule(*context, kernels, code.mlir, code.schedules);
  if (options.perKernel)
    for (const KernelRequest &k : kernels) {
      auto function = module->lookupSymbol<func::FuncOp>(k.name);
      code.kernels.push_back(KernelCode{
          k.name, function ? printed([&](llvm::raw_ostream &os) { function.print(os); }) : "", "", ""});
    }
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = translateAndOptimize(*module, *context, llvmContext, *machine);

  if (options.llvm)
    code.llvm = printed([&](llvm::raw_ostream &os) { llvmModule->print(os, nullptr); });
  if (options.assembly)
    code.assembly = emitMachineCode(*llvmModule, *machine, llvm::CodeGenFileType::AssemblyFile);
  if (options.perKernel)
    for (KernelCode &k : code.kernels) {
      const llvm::Function *function = llvmModule->getFunction(k.name);
      if (!function)
        continue;
      if (options.llvm)
        k.llvm = printed([&](llvm::raw_ostream &os) { function->print(os); });
      if (options.assembly) {
        llvm::ValueToValueMapTy map;
        std::unique_ptr<llvm::Module> alone = llvm::CloneModule(
            *llvmModule, map, [&](const llvm::GlobalValue *v) { return v == function; });
        k.assembly = emitMachineCode(*alone, *machine, llvm::CodeGenFileType::AssemblyFile);
      }
    }
  if (options.object) {
    if (!options.symbolPrefix.empty())
      addProgramSymbols(*llvmModule, kernels, options,
                        options.programData ? options.programData(code.schedules) : std::string());
    code.object = emitMachineCode(*llvmModule, *machine, llvm::CodeGenFileType::ObjectFile);
  }
  return code;
}

} // namespace kiln
