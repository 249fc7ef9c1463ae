// The MLIR -> LLVM -> JIT path for a program's kernels (recipe:
// docs/backends.md, from shared/notes/mlir-cpu.md). Each kernel's MLIR comes
// from KernelEmitter.
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
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Support/raw_ostream.h"

#include <unordered_map>

extern "C" float kiln_rng_uniform(int64_t seed, int64_t counter) {
  return float(kiln::uniformAt(uint64_t(seed), uint64_t(counter)));
}

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

const KernelSchedule &CpuKernels::schedule(size_t i) const { return impl_->schedules.at(i); }

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

std::unique_ptr<CpuKernels> compileCpuKernels(const std::vector<KernelRequest> &kernels) {
  static const bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
  DialectRegistry registry;
  registry.insert<func::FuncDialect, arith::ArithDialect, math::MathDialect, memref::MemRefDialect,
                  scf::SCFDialect, cf::ControlFlowDialect, LLVM::LLVMDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  auto impl = std::make_unique<CpuKernels::Impl>();
  impl->context = std::make_unique<MLIRContext>(registry);
  MLIRContext &context = *impl->context;
  context.loadAllAvailableDialects();

  OpBuilder builder(&context);
  mlir::Location loc = builder.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  for (const KernelRequest &k : kernels) {
    builder.setInsertionPointToEnd(module->getBody());
    impl->schedules.push_back(emitKernel(builder, *module, k));
  }
  if (failed(verify(*module)))
    throwError("", "internal error: the generated MLIR does not verify");
  llvm::raw_string_ostream text(impl->mlirText);
  module->print(text);
  text.flush();

  lowerToLLVM(*module, context);
  ExecutionEngineOptions options;
  // The optimizer needs the host's target machine: without it LLVM's cost
  // models know no vector registers and the loop vectorizer does nothing.
  auto hostBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!hostBuilder)
    throwError("", "internal error: no target for the host CPU: " + llvm::toString(hostBuilder.takeError()));
  hostBuilder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto host = hostBuilder->createTargetMachine();
  if (!host)
    throwError("", "internal error: no target machine for the host CPU: " + llvm::toString(host.takeError()));
  std::unique_ptr<llvm::TargetMachine> targetMachine = std::move(*host);
  auto transformer = makeOptimizingTransformer(3, 0, targetMachine.get());
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

} // namespace kiln
