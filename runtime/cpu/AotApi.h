/* The C API of a program compiled ahead of time (`kiln compile --emit=obj`).
 * The generated NAME.h holds this text and `kiln_NAME_create`, which creates
 * the program of NAME.o. Link: NAME.o, then libkiln_aot.a, libkiln_runtime_cpu.a,
 * libkiln_runtime.a, OpenBLAS (OpenMP build), -fopenmp (docs/backends.md).
 *
 * Tensors are passed as raw row-major bytes of the argument's or result's
 * dtype and shape; the byte count must match exactly. Functions returning int
 * return 0 on success and 1 on error; kiln_last_error() then says why (a
 * one-line message, valid until the next call on the same thread). */
#ifndef KILN_AOT_API_H
#define KILN_AOT_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_program kiln_program;
typedef void (*kiln_kernel_function)(void);

/* A program from its embedded image and kernel table, every argument set to
 * its value under `seed` (params from their initializer, inputs random or
 * their default). NULL on error. */
kiln_program *kiln_program_create(const char *image, int64_t image_size,
                                  const kiln_kernel_function *kernels, int64_t kernel_count,
                                  uint64_t seed);
void kiln_program_destroy(kiln_program *program);
const char *kiln_last_error(void);

/* Copies `bytes` bytes into / out of the argument (input, param or state) `name`. */
int kiln_program_set(kiln_program *program, const char *name, const void *data, size_t bytes);
int kiln_program_get(const kiln_program *program, const char *name, void *data, size_t bytes);
/* Runs the step once: results, then the updates of params and state. */
int kiln_program_run(kiln_program *program);
/* Copies result `name` of the last run into `data`. */
int kiln_program_result(const kiln_program *program, const char *name, void *data, size_t bytes);
/* Params and state from / to a safetensors file (saving is atomic). */
int kiln_program_load_params(kiln_program *program, const char *path);
int kiln_program_save_params(const kiln_program *program, const char *path);
/* The threads of the calling thread's runs (default: the cores). */
int kiln_set_threads(int threads);

#ifdef __cplusplus
}
#endif

#endif /* KILN_AOT_API_H */
