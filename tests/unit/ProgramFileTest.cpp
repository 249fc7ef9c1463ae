// runtime/ProgramFile: a compiled Program (library and kernel steps, every
// kind of argument initializer) survives serialize -> parse unchanged, and a
// damaged image is refused with the field named. runtime/ArgumentInit: the
// runtime's initial values are the IR's defaultArgumentValue.
#ifdef KILN_HAVE_CPU_BACKEND

#include "compiler/CpuBackend.h"
#include "ir/ArgumentValues.h"
#include "ir/Graph.h"
#include "ir/Parser.h"
#include "passes/PassManager.h"
#include "runtime/Error.h"
#include "runtime/ProgramFile.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

const char *kKir = R"(graph @g(%x: f32[2,3,8,8] input {low = -2, high = 2},
    %w: f32[4,3,3,3] param {init = "normal", mean = 0.5, std = 0.1},
    %v: f32[64,5] param, %idx: i32[6] input, %lr: f32[] input {default = 0.25},
    %s: f32[4] state {init = "constant", value = 3}) -> (y: f32[2,4,3,3], t: f32[6,5]) {
  %0 = conv2d %x, %w {stride = [1, 1], padding = [0, 0], dilation = [1, 1], groups = 1} : f32[2,4,6,6]
  %1 = max_pool2d %0 {window = [2, 2], stride = [2, 2], padding = [0, 0]} : f32[2,4,3,3]
  %2 = tanh %1 : f32[2,4,3,3]
  %3 = gather %v, %idx {axis = 0} : f32[6,5]
  %4 = broadcast %lr {dims = []} : f32[6,5]
  %5 = mul %3, %4 : f32[6,5]
  return %2, %5
}
)";

Program compiledProgram() {
  Module module = parseModule(kKir, "g.kir");
  Graph &graph = *module.graphs[0];
  runPasses(graph, parsePassPipeline(defaultPipeline()));
  return compileForCpuAot(graph, CpuCodeOptions()).program;
}

TEST(ProgramFile, RoundTripsACompiledProgram) {
  Program p = compiledProgram();
  std::string image = serializeProgram(p);
  Program q = parseProgram(image, "image");
  EXPECT_EQ(serializeProgram(q), image);
  ASSERT_EQ(q.arguments.size(), p.arguments.size());
  ASSERT_EQ(q.steps.size(), p.steps.size());
  EXPECT_EQ(q.name, "g");
  EXPECT_EQ(q.arenaBytes, p.arenaBytes);
  bool conv = false, gather = false, kernel = false;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    EXPECT_EQ(q.steps[i].name, p.steps[i].name);
    EXPECT_EQ(q.steps[i].kind, p.steps[i].kind);
    EXPECT_EQ(q.steps[i].operands.size(), p.steps[i].operands.size());
    EXPECT_EQ(q.steps[i].result.offset, p.steps[i].result.offset);
    EXPECT_EQ(q.steps[i].kernel, nullptr);
    conv |= q.steps[i].kind == StepKind::Conv2d && q.steps[i].window.kh == 3 && q.steps[i].window.o == 4;
    gather |= q.steps[i].kind == StepKind::Gather && q.steps[i].index.rows == 64;
    kernel |= q.steps[i].kind == StepKind::Kernel;
  }
  EXPECT_TRUE(conv && gather && kernel);
  // The initializers, and the values they give, are the IR's.
  Module module = parseModule(kKir, "g.kir");
  for (const ArgumentSpec &a : q.arguments) {
    const Argument *arg = module.graphs[0]->findArgument(a.name);
    ASSERT_TRUE(arg) << a.name;
    EXPECT_EQ(initialArgumentValue(a.name, a.dtype, a.shape, a.init, 9).toDoubles(),
              defaultArgumentValue(*arg, 9).toDoubles())
        << a.name;
  }
  auto init = [&](const std::string &name) {
    for (const ArgumentSpec &a : q.arguments)
      if (a.name == name)
        return a.init;
    ADD_FAILURE() << name;
    return ArgumentInit();
  };
  EXPECT_EQ(init("w").kind, ArgumentInit::Kind::Normal);
  EXPECT_EQ(init("w").a, 0.5);
  EXPECT_EQ(init("w").b, 0.1);
  EXPECT_EQ(init("lr").kind, ArgumentInit::Kind::Fill);
  EXPECT_EQ(init("lr").a, 0.25);
  EXPECT_EQ(init("s").a, 3);
  EXPECT_EQ(init("x").kind, ArgumentInit::Kind::Uniform);
  EXPECT_EQ(init("x").a, -2);
  EXPECT_EQ(init("idx").b, 10); // integer feeds: [0, 10)
}

std::string errorOf(const std::string &image) {
  try {
    parseProgram(image, "p.img");
  } catch (const Error &e) {
    return e.what();
  }
  return "no error";
}

std::string replaced(std::string s, const std::string &from, const std::string &to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

TEST(ProgramFile, RefusesDamagedImages) {
  std::string image = serializeProgram(compiledProgram());
  EXPECT_EQ(errorOf("{"), "p.img: error: program image: /: not a Kiln program (expected JSON with "
                          "\"format\": \"kiln.program\")");
  EXPECT_EQ(errorOf(image.substr(0, image.size() / 2)).substr(0, 40),
            "p.img: error: program image: /: not a Ki");
  // {text of the image, its replacement, the error}
  const char *cases[][3] = {
      {"\"version\":1", "\"version\":2", "/version: version 2, this runtime reads version 1"},
      {"\"steps\":", "\"stepz\":", "/: missing field 'steps'"},
      {"\"kind\":", "\"kind\":99,\"old\":", "/steps/0/kind: 99 is outside [0, 11]"},
      {"\"dtype\":0", "\"dtype\":7", "/arguments/0/dtype: 7 is outside [0, 6]"},
      {"\"shape\":[", "\"shape\":[-1,", "/arguments/0/shape/0: -1 is outside [0, 1099511627776]"},
      {"\"name\":\"x\"", "\"name\":7", "/arguments/0/name: expected a string"},
      {"\"init\":[", "\"init\":[0,", "/arguments/0/init: expected an array of 3"},
  };
  for (const auto &c : cases)
    EXPECT_EQ(errorOf(replaced(image, c[0], c[1])), std::string("p.img: error: program image: ") + c[2])
        << c[0];
}

} // namespace
} // namespace kiln

#endif
