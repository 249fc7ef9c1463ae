#include "runtime/ProgramFile.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

namespace kiln {

namespace {

using Json = nlohmann::json;

Json bufferJson(const BufferRef &b) {
  return Json::array({b.space == BufferRef::Space::Arena ? 0 : 1, b.argument, b.offset, b.bytes});
}

Json shapeJson(const Shape &s) { return Json(s.dims()); }

Json initJson(const ArgumentInit &init) { return Json::array({int(init.kind), init.a, init.b}); }

/// Reads fields of the image with checks; `fail` names the file and the field.
class Reader {
public:
  explicit Reader(const std::string &displayName) : name_(displayName) {}

  [[noreturn]] void fail(const std::string &where, const std::string &what) const {
    throwError(name_, "program image: " + where + ": " + what);
  }
  const Json &field(const Json &object, const char *key, const std::string &where) const {
    if (!object.is_object())
      fail(where, "expected an object");
    auto it = object.find(key);
    if (it == object.end())
      fail(where, std::string("missing field '") + key + "'");
    return *it;
  }
  const Json &array(const Json &value, const std::string &where, size_t size = SIZE_MAX) const {
    if (!value.is_array() || (size != SIZE_MAX && value.size() != size))
      fail(where, size == SIZE_MAX ? "expected an array"
                                   : "expected an array of " + std::to_string(size));
    return value;
  }
  int64_t integer(const Json &value, const std::string &where, int64_t low = 0,
                  int64_t high = INT64_MAX) const {
    if (!value.is_number_integer())
      fail(where, "expected an integer, got " + value.dump());
    int64_t v = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)
                    ? -1 : value.get<int64_t>();
    if (v < low || v > high)
      fail(where, value.dump() + " is outside [" + std::to_string(low) + ", " +
                      std::to_string(high) + "]");
    return v;
  }
  double number(const Json &value, const std::string &where) const {
    if (!value.is_number())
      fail(where, "expected a number, got " + value.dump());
    return value.get<double>();
  }
  std::string string(const Json &value, const std::string &where) const {
    if (!value.is_string())
      fail(where, "expected a string");
    return value.get<std::string>();
  }
  DType dtype(const Json &value, const std::string &where) const {
    return kAllDTypes[integer(value, where, 0, int64_t(std::size(kAllDTypes)) - 1)];
  }
  Shape shape(const Json &value, const std::string &where) const {
    std::vector<int64_t> dims;
    for (const Json &d : array(value, where))
      dims.push_back(integer(d, where, 0, kMaxElements));
    if (checkedNumElements(dims) < 0)
      fail(where, "more than " + std::to_string(kMaxElements) + " elements");
    return Shape(std::move(dims));
  }
  BufferRef buffer(const Json &value, const std::string &where) const {
    const Json &a = array(value, where, 4);
    BufferRef b;
    b.space = integer(a[0], where, 0, 1) == 0 ? BufferRef::Space::Arena : BufferRef::Space::Argument;
    b.argument = int32_t(integer(a[1], where, -1, INT32_MAX));
    b.offset = integer(a[2], where);
    b.bytes = integer(a[3], where);
    return b;
  }
  std::vector<int64_t> integers(const Json &value, const std::string &where, size_t size) const {
    std::vector<int64_t> out;
    for (const Json &v : array(value, where, size))
      out.push_back(integer(v, where, INT64_MIN));
    return out;
  }

private:
  std::string name_;
};

} // namespace

std::string serializeProgram(const Program &program) {
  Json j;
  j["format"] = "kiln.program";
  j["version"] = kProgramFileVersion;
  j["name"] = program.name;
  j["arena"] = program.arenaBytes;
  Json &arguments = j["arguments"] = Json::array();
  for (const ArgumentSpec &a : program.arguments)
    arguments.push_back({{"name", a.name}, {"role", int(a.role)}, {"dtype", int(a.dtype)},
                         {"shape", shapeJson(a.shape)}, {"init", initJson(a.init)}});
  Json &steps = j["steps"] = Json::array();
  for (const Step &s : program.steps) {
    Json step = {{"name", s.name}, {"kind", int(s.kind)}, {"result", bufferJson(s.result)},
                 {"iterations", s.iterations}, {"cost", s.iterationCost}};
    Json &operands = step["operands"] = Json::array();
    for (const BufferRef &b : s.operands)
      operands.push_back(bufferJson(b));
    Json &extra = step["extra_results"] = Json::array();
    for (const BufferRef &b : s.extraResults)
      extra.push_back(bufferJson(b));
    const MatmulParams &m = s.matmul;
    step["matmul"] = {m.batch, m.m, m.n, m.k, int(m.transposeA), int(m.transposeB), int(m.dtype)};
    const WindowParams &w = s.window;
    step["window"] = {w.n, w.c, w.h, w.w, w.o, w.kh, w.kw, w.oh, w.ow, w.strideH, w.strideW,
                      w.padH, w.padW, w.dilationH, w.dilationW, w.groups, int(w.dtype)};
    const IndexParams &x = s.index;
    step["index"] = {x.outer, x.rows, x.inner, x.indices, int(x.indexType), int(x.valueType)};
    steps.push_back(std::move(step));
  }
  Json &results = j["results"] = Json::array();
  for (const ResultSpec &r : program.results)
    results.push_back({{"name", r.name}, {"dtype", int(r.dtype)}, {"shape", shapeJson(r.shape)},
                       {"buffer", bufferJson(r.buffer)}});
  Json &updates = j["updates"] = Json::array();
  for (const UpdateSpec &u : program.updates)
    updates.push_back({u.argument, bufferJson(u.source)});
  return j.dump();
}

Program parseProgram(const std::string &image, const std::string &displayName) {
  Reader r(displayName);
  Json j = Json::parse(image, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("format") || j["format"] != "kiln.program")
    r.fail("/", "not a Kiln program (expected JSON with \"format\": \"kiln.program\")");
  int64_t version = r.integer(r.field(j, "version", "/"), "/version");
  if (version != kProgramFileVersion)
    r.fail("/version", "version " + std::to_string(version) + ", this runtime reads version " +
                           std::to_string(kProgramFileVersion));
  Program p;
  p.name = r.string(r.field(j, "name", "/"), "/name");
  p.arenaBytes = r.integer(r.field(j, "arena", "/"), "/arena", 0, kMaxElements);
  const Json &arguments = r.array(r.field(j, "arguments", "/"), "/arguments");
  for (size_t i = 0; i < arguments.size(); ++i) {
    std::string where = "/arguments/" + std::to_string(i);
    const Json &a = arguments[i];
    ArgumentSpec spec;
    spec.name = r.string(r.field(a, "name", where), where + "/name");
    spec.role = ArgumentRole(r.integer(r.field(a, "role", where), where + "/role", 0, 2));
    spec.dtype = r.dtype(r.field(a, "dtype", where), where + "/dtype");
    spec.shape = r.shape(r.field(a, "shape", where), where + "/shape");
    const Json &init = r.array(r.field(a, "init", where), where + "/init", 3);
    spec.init.kind = ArgumentInit::Kind(r.integer(init[0], where + "/init", 0, 2));
    spec.init.a = r.number(init[1], where + "/init");
    spec.init.b = r.number(init[2], where + "/init");
    p.arguments.push_back(std::move(spec));
  }
  const Json &steps = r.array(r.field(j, "steps", "/"), "/steps");
  for (size_t i = 0; i < steps.size(); ++i) {
    std::string where = "/steps/" + std::to_string(i);
    const Json &s = steps[i];
    Step step;
    step.name = r.string(r.field(s, "name", where), where + "/name");
    step.kind = StepKind(r.integer(r.field(s, "kind", where), where + "/kind", 0, int64_t(StepKind::Copy)));
    step.result = r.buffer(r.field(s, "result", where), where + "/result");
    for (const Json &b : r.array(r.field(s, "operands", where), where + "/operands"))
      step.operands.push_back(r.buffer(b, where + "/operands"));
    for (const Json &b : r.array(r.field(s, "extra_results", where), where + "/extra_results"))
      step.extraResults.push_back(r.buffer(b, where + "/extra_results"));
    step.iterations = r.integer(r.field(s, "iterations", where), where + "/iterations");
    step.iterationCost = r.integer(r.field(s, "cost", where), where + "/cost");
    std::vector<int64_t> m = r.integers(r.field(s, "matmul", where), where + "/matmul", 7);
    step.matmul = {m[0], m[1], m[2], m[3], m[4] != 0, m[5] != 0,
                   r.dtype(s["matmul"][6], where + "/matmul")};
    std::vector<int64_t> w = r.integers(r.field(s, "window", where), where + "/window", 17);
    step.window = {w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12],
                   w[13], w[14], w[15], r.dtype(s["window"][16], where + "/window")};
    std::vector<int64_t> x = r.integers(r.field(s, "index", where), where + "/index", 6);
    step.index = {x[0], x[1], x[2], x[3], r.dtype(s["index"][4], where + "/index"),
                  r.dtype(s["index"][5], where + "/index")};
    p.steps.push_back(std::move(step));
  }
  const Json &results = r.array(r.field(j, "results", "/"), "/results");
  for (size_t i = 0; i < results.size(); ++i) {
    std::string where = "/results/" + std::to_string(i);
    const Json &res = results[i];
    p.results.push_back(ResultSpec{r.string(r.field(res, "name", where), where + "/name"),
                                   r.dtype(r.field(res, "dtype", where), where + "/dtype"),
                                   r.shape(r.field(res, "shape", where), where + "/shape"),
                                   r.buffer(r.field(res, "buffer", where), where + "/buffer")});
  }
  const Json &updates = r.array(r.field(j, "updates", "/"), "/updates");
  for (size_t i = 0; i < updates.size(); ++i) {
    std::string where = "/updates/" + std::to_string(i);
    const Json &u = r.array(updates[i], where, 2);
    p.updates.push_back(UpdateSpec{int32_t(r.integer(u[0], where, 0, INT32_MAX)), r.buffer(u[1], where)});
  }
  return p;
}

} // namespace kiln
