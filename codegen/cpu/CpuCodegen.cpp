// The MLIR -> LLVM -> JIT / object path for a program's kernels (recipe:
// docs/backends.md, from shared/notes/mlir-cpu.md). Each kernel's MLIR comes
// from KernelEmitter; this file lowers it, picks the TargetMachine (the host
// CPU and features, or -mcpu) and emits LLVM IR, assembly and objects.
#include "codegen/cpu/CpuCodegen.h"
#include "codegen/cpu/KernelEmitter.h"

#include "ir/Graph.h"
#include "runtime/Error.h"
#include "runtime/Random.h"

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
#include "mlir/ExecutionEngine/ExecutionEngine.h"
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

#include "llvm/IR/Constants.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Transforms/Utils/Cloning.h"

#include <unordered_map>

namespace kiln {

using namespace mlir;

struct CpuKernels::Impl {
  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<ExecutionEngine> engine;
  std::string mlirText;
  std::vector<KernelSchedule> schedules;
};

CpuKernels::CpuKernels(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CpuKernels::~CpuKernels() = default;

KernelFunction CpuKernels::function(const std::string &name) const {
  llvm::Expected<void *> address = impl_->engine->lookup(name);
  if (!address) {
    llvm::consumeError(address.takeError());
    throwError("", "no compiled kernel named '" + name + "'");
  }
  return reinterpret_cast<KernelFunction>(*address);
}

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

std::unique_ptr<CpuKernels> compileCpuKernels(const std::vector<KernelRequest> &kernels) {
  std::unique_ptr<llvm::TargetMachine> machine = targetMachine("");
  auto impl = std::make_unique<CpuKernels::Impl>();
  impl->context = makeContext();
  OwningOpRef<ModuleOp> module = buildModule(*impl->context, kernels, impl->mlirText, impl->schedules);
  lowerToLLVM(*module, *impl->context);
  ExecutionEngineOptions options;
  // The optimizer needs the target machine: without it LLVM's cost models
  // know no vector registers and the loop vectorizer does nothing.
  auto transformer = makeOptimizingTransformer(3, 0, machine.get());
  options.transformer = transformer;
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine) {
    std::string message = llvm::toString(engine.takeError());
    throwError("", "internal error: JIT compilation failed: " + message);
  }
  impl->engine = std::move(*engine);
  impl->engine->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    symbols[interner("kiln_rng_uniform")] = {llvm::orc::ExecutorAddr::fromPtr(&kiln_rng_uniform),
                                             llvm::JITSymbolFlags::Exported};
    return symbols;
  });
  return std::make_unique<CpuKernels>(std::move(impl));
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
  lowerToLLVM(*module, *context);

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = translateModuleToLLVMIR(*module, llvmContext, "kiln_kernels");
  if (!llvmModule)
    throwError("", "internal error: translating the kernels to LLVM IR failed");
  llvmModule->setTargetTriple(machine->getTargetTriple().str());
  llvmModule->setDataLayout(machine->createDataLayout());
  if (llvm::Error error = makeOptimizingTransformer(3, 0, machine.get())(llvmModule.get()))
    throwError("", "internal error: LLVM optimization failed: " + llvm::toString(std::move(error)));

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
