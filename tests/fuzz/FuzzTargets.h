// The bodies of the fuzz targets, shared by the libFuzzer programs
// (tests/fuzz/fuzz_*.cpp) and the GoogleTest that replays the seed corpora and
// every input a fuzzer found (tests/unit/FuzzRegressionTest.cpp), so a
// regression is tested without clang.
//
// Each function takes one input. A reader that rejects it with `kiln::Error`
// is the expected outcome; what loads must print, parse back and print again
// to the same text (or bytes). The function returns "" when all is well and
// otherwise describes the finding: a broken round trip, or an exception that
// is not a `kiln::Error`. A crash or a sanitizer report is a finding by itself.
#pragma once

#include "ir/Graph.h"
#include "ir/Json.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <typeinfo>

namespace kiln::fuzz {

namespace detail {

/// Runs `body`; a kiln::Error escaping it means the input was rejected, which is fine.
template <typename Body> std::string guarded(Body body) {
  try {
    return body();
  } catch (const Error &) {
    return "";
  } catch (const std::exception &e) {
    return std::string("an exception that is not kiln::Error (") + typeid(e).name() +
           "): " + e.what();
  }
}

/// A loaded module must verify, and print -> parse -> print must be the identity.
inline std::string checkKirRoundTrip(const Module &module) {
  try {
    verifyModule(module);
  } catch (const Error &e) {
    return std::string("a loaded module fails verification: ") + e.what();
  }
  std::string printed = printModule(module);
  std::string reprinted;
  try {
    reprinted = printModule(parseModule(printed, "printed.kir"));
  } catch (const Error &e) {
    return std::string("the printed module does not parse: ") + e.what() + "\n" + printed;
  }
  if (reprinted != printed)
    return "print -> parse -> print differs:\n" + printed + "\n--- reprinted:\n" + reprinted;
  return "";
}

inline bool equalTensors(const HostTensor &a, const HostTensor &b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.byteSize() == b.byteSize() &&
         (a.byteSize() == 0 || std::memcmp(a.data(), b.data(), a.byteSize()) == 0);
}

/// A loaded tensor owns exactly its bytes, and booleans are 0 or 1.
inline std::string checkTensor(const std::string &name, const HostTensor &t) {
  if (t.byteSize() != size_t(t.numElements()) * dtypeSize(t.dtype()))
    return "tensor '" + name + "' holds " + std::to_string(t.byteSize()) + " bytes for " +
           t.typeString();
  if (t.dtype() == DType::I1)
    for (int64_t i = 0; i < t.numElements(); ++i)
      if (t.dataAs<uint8_t>()[i] > 1)
        return "tensor '" + name + "' holds a boolean that is not 0 or 1";
  return "";
}

} // namespace detail

/// The `.kir` parser and verifier.
inline std::string fuzzKir(const std::string &input) {
  return detail::guarded([&] {
    Module module = parseModule(input, "fuzz.kir");
    return detail::checkKirRoundTrip(module);
  });
}

/// The JSON graph reader and verifier; what loads also round-trips as JSON.
inline std::string fuzzJson(const std::string &input) {
  // Weights are resolved against a folder that does not exist, so no file is
  // read, except at an absolute path: such inputs are skipped (/dev/zero would
  // "hang" the reader, as any program that reads what it is told).
  if (input.find("weights") != std::string::npos || input.find('\\') != std::string::npos) {
    nlohmann::json doc = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("weights") && doc["weights"].is_string() &&
        doc["weights"].get<std::string>().rfind('/', 0) == 0)
      return "";
  }
  return detail::guarded([&] {
    Module module = parseJsonModule(input, "fuzz.json", "/nonexistent-kiln-fuzz-dir");
    std::string finding = detail::checkKirRoundTrip(module);
    if (!finding.empty())
      return finding;
    std::string json = printJsonModule(module);
    std::string rejson;
    try {
      rejson = printJsonModule(parseJsonModule(json, "printed.json", ""));
    } catch (const Error &e) {
      return std::string("the printed JSON does not load: ") + e.what() + "\n" + json;
    }
    if (rejson != json)
      return "JSON print -> parse -> print differs:\n" + json + "\n--- reprinted:\n" + rejson;
    return std::string();
  });
}

/// The safetensors reader; what loads serializes and reads back identically.
inline std::string fuzzSafetensors(const std::string &input) {
  return detail::guarded([&] {
    TensorMap tensors = parseSafetensors(input, "fuzz.safetensors");
    for (const auto &[name, t] : tensors) {
      std::string finding = detail::checkTensor(name, t);
      if (!finding.empty())
        return finding;
    }
    std::string bytes = serializeSafetensors(tensors);
    TensorMap back;
    try {
      back = parseSafetensors(bytes, "written.safetensors");
    } catch (const Error &e) {
      return std::string("the written file does not load: ") + e.what();
    }
    if (back.size() != tensors.size())
      return std::string("the written file holds another number of tensors");
    for (const auto &[name, t] : tensors)
      if (!back.count(name) || !detail::equalTensors(t, back.at(name)))
        return "tensor '" + name + "' changed in the round trip";
    return std::string();
  });
}

/// The `.npy` reader (the CLI's `NAME=FILE.npy` feeds); what loads round-trips.
inline std::string fuzzNpy(const std::string &input) {
  return detail::guarded([&] {
    HostTensor t = parseNpy(input, "fuzz.npy");
    std::string finding = detail::checkTensor("npy", t);
    if (!finding.empty())
      return finding;
    std::string bytes = serializeNpy(t);
    HostTensor back;
    try {
      back = parseNpy(bytes, "written.npy");
    } catch (const Error &e) {
      return std::string("the written file does not load: ") + e.what();
    }
    if (!detail::equalTensors(t, back))
      return "the tensor changed in the round trip: " + t.typeString() + " -> " + back.typeString();
    if (serializeNpy(back) != bytes)
      return std::string("the file written twice differs");
    return std::string();
  });
}

/// What a libFuzzer program does with a finding: print it and trap, so that
/// libFuzzer saves the input.
inline void trapOnFinding(const std::string &finding) {
  if (finding.empty())
    return;
  std::fprintf(stderr, "kiln fuzz finding: %s\n", finding.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

} // namespace kiln::fuzz
