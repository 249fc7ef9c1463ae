// The C API of runtime/cpu/AotApi.h over cpu::Executable.
#include "runtime/cpu/AotApi.h"

#include "runtime/Error.h"
#include "runtime/cpu/AotProgram.h"
#include "runtime/cpu/Threads.h"

#include <cstring>
#include <new>

struct kiln_program {
  kiln::cpu::Executable executable;
};

namespace {

thread_local std::string lastError;

/// Runs `body`, turning exceptions into lastError and a status.
template <typename F> int guarded(F &&body) {
  try {
    body();
    lastError.clear();
    return 0;
  } catch (const std::bad_alloc &) {
    lastError = "error: out of memory";
  } catch (const std::exception &e) {
    lastError = e.what();
  }
  return 1;
}

const kiln::ArgumentSpec *findArgument(const kiln_program *p, const char *name) {
  for (const kiln::ArgumentSpec &a : p->executable.program().arguments)
    if (a.name == name)
      return &a;
  kiln::throwError(p->executable.program().name, std::string("no argument named '") + name + "'");
}

void checkBytes(const std::string &what, size_t expected, size_t given) {
  if (expected != given)
    kiln::throwError("", what + " is " + std::to_string(expected) + " bytes, got " +
                             std::to_string(given));
}

void checkHandle(const void *p, const char *data) {
  if (!p || !data)
    kiln::throwError("", "null program or pointer");
}

} // namespace

extern "C" {

kiln_program *kiln_program_create(const char *image, int64_t image_size,
                                  const kiln_kernel_function *kernels, int64_t kernel_count,
                                  uint64_t seed) {
  kiln_program *program = nullptr;
  guarded([&] {
    program = new kiln_program{kiln::cpu::loadEmbeddedProgram(
        image, image_size, reinterpret_cast<const kiln::KernelFunction *>(kernels), kernel_count)};
    kiln::cpu::initializeArguments(program->executable, seed);
  });
  if (!lastError.empty()) {
    delete program;
    return nullptr;
  }
  return program;
}

void kiln_program_destroy(kiln_program *program) { delete program; }

const char *kiln_last_error(void) { return lastError.c_str(); }

int kiln_program_set(kiln_program *program, const char *name, const void *data, size_t bytes) {
  return guarded([&] {
    checkHandle(program, static_cast<const char *>(data));
    const kiln::ArgumentSpec *arg = findArgument(program, name);
    size_t expected = size_t(arg->shape.numElements()) * kiln::dtypeSize(arg->dtype);
    checkBytes("argument '" + arg->name + "'", expected, bytes);
    std::memcpy(program->executable.argumentData(arg->name), data, bytes);
  });
}

int kiln_program_get(const kiln_program *program, const char *name, void *data, size_t bytes) {
  return guarded([&] {
    checkHandle(program, static_cast<const char *>(data));
    kiln::HostTensor value = program->executable.argument(findArgument(program, name)->name);
    checkBytes(std::string("argument '") + name + "'", value.byteSize(), bytes);
    std::memcpy(data, value.data(), bytes);
  });
}

int kiln_program_run(kiln_program *program) {
  return guarded([&] {
    checkHandle(program, "");
    program->executable.run();
  });
}

int kiln_program_result(const kiln_program *program, const char *name, void *data, size_t bytes) {
  return guarded([&] {
    checkHandle(program, static_cast<const char *>(data));
    kiln::HostTensor value = program->executable.result(std::string(name));
    checkBytes(std::string("result '") + name + "'", value.byteSize(), bytes);
    std::memcpy(data, value.data(), bytes);
  });
}

int kiln_program_load_params(kiln_program *program, const char *path) {
  return guarded([&] {
    checkHandle(program, path);
    program->executable.loadArguments(path);
  });
}

int kiln_program_save_params(const kiln_program *program, const char *path) {
  return guarded([&] {
    checkHandle(program, path);
    program->executable.saveArguments(path);
  });
}

int kiln_set_threads(int threads) {
  return guarded([&] { kiln::cpu::setNumThreads(threads); });
}

} // extern "C"
