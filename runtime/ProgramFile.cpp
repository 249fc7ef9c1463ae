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

/// A value of the image and its JSON pointer, for messages.
struct Field {
  const Json &json;
  std::string path;
};

/// Reads fields of the image with checks; `fail` names the file and the field.
class Reader {
public:
  explicit Reader(const std::string &displayName) : name_(displayName) {}

  [[noreturn]] void fail(const std::string &where, const std::string &what) const {
    throwError(name_, "program image: " + where + ": " + what);
  }
  /// Member `key` of an object.
  Field operator()(const Field &object, const char *key) const {
    if (!object.json.is_object())
      fail(object.path, "expected an object");
    auto it = object.json.find(key);
    if (it == object.json.end())
      fail(object.path, std::string("missing field '") + key + "'");
    return {*it, (object.path == "/" ? "/" : object.path + "/") + key};
  }
  /// The elements of an array (of `size` elements, if given).
  std::vector<Field> elements(const Field &array, size_t size = SIZE_MAX) const {
    if (!array.json.is_array() || (size != SIZE_MAX && array.json.size() != size))
      fail(array.path, size == SIZE_MAX ? "expected an array"
                                        : "expected an array of " + std::to_string(size));
    std::vector<Field> out;
    for (size_t i = 0; i < array.json.size(); ++i)
      out.push_back({array.json[i], array.path + "/" + std::to_string(i)});
    return out;
  }
  int64_t integer(const Field &f, int64_t low = 0, int64_t high = INT64_MAX) const {
    if (!f.json.is_number_integer())
      fail(f.path, "expected an integer, got " + f.json.dump());
    int64_t v = f.json.is_number_unsigned() && f.json.get<uint64_t>() > uint64_t(INT64_MAX)
                    ? -1 : f.json.get<int64_t>();
    if (v < low || v > high)
      fail(f.path, f.json.dump() + " is outside [" + std::to_string(low) + ", " +
                       std::to_string(high) + "]");
    return v;
  }
  double number(const Field &f) const {
    if (!f.json.is_number())
      fail(f.path, "expected a number, got " + f.json.dump());
    return f.json.get<double>();
  }
  std::string string(const Field &f) const {
    if (!f.json.is_string())
      fail(f.path, "expected a string");
    return f.json.get<std::string>();
  }
  DType dtype(const Field &f) const {
    return kAllDTypes[integer(f, 0, int64_t(std::size(kAllDTypes)) - 1)];
  }
  Shape shape(const Field &f) const {
    std::vector<int64_t> dims;
    for (const Field &d : elements(f))
      dims.push_back(integer(d, 0, kMaxElements));
    if (checkedNumElements(dims) < 0)
      fail(f.path, "more than " + std::to_string(kMaxElements) + " elements");
    return Shape(std::move(dims));
  }
  BufferRef buffer(const Field &f) const {
    std::vector<Field> a = elements(f, 4);
    BufferRef b;
    b.space = integer(a[0], 0, 1) == 0 ? BufferRef::Space::Arena : BufferRef::Space::Argument;
    b.argument = int32_t(integer(a[1], -1, INT32_MAX));
    b.offset = integer(a[2]);
    b.bytes = integer(a[3]);
    return b;
  }
  std::vector<BufferRef> buffers(const Field &f) const {
    std::vector<BufferRef> out;
    for (const Field &b : elements(f))
      out.push_back(buffer(b));
    return out;
  }
  /// `size` integers; the last `dtypes` of them are dtypes, returned as their index.
  std::vector<int64_t> integers(const Field &f, size_t size, size_t dtypes) const {
    std::vector<int64_t> out;
    for (const Field &v : elements(f, size))
      out.push_back(out.size() + dtypes >= size ? int64_t(dtype(v)) : integer(v, INT64_MIN));
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
    if (m.broadcastA) // only the CUDA backend makes these (its program is never written)
      throwError(program.name, "step '" + s.name + "': a matmul with a broadcast A has no program-file form");
    step["matmul"] = {m.batch, m.m, m.n, m.k, int(m.transposeA), int(m.transposeB), int(m.dtype)};
    const WindowParams &w = s.window;
    step["window"] = {w.n, w.c, w.h, w.w, w.o, w.kh, w.kw, w.oh, w.ow, w.strideH, w.strideW,
                      w.padH, w.padW, w.dilationH, w.dilationW, w.groups, int(w.dtype)};
    const IndexParams &x = s.index;
    step["index"] = {x.outer, x.rows, x.inner, x.indices, int(x.indexType), int(x.valueType)};
    // Optional (images written before they existed load without them).
    step["where"] = s.where;
    step["what"] = s.what;
    if (!s.resultTypes.empty()) {
      Json &types = step["result_dtypes"] = Json::array();
      for (DType t : s.resultTypes)
        types.push_back(int(t));
    }
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
  Field root{j, "/"};
  int64_t version = r.integer(r(root, "version"));
  if (version != kProgramFileVersion)
    r.fail("/version", "version " + std::to_string(version) + ", this runtime reads version " +
                           std::to_string(kProgramFileVersion));
  Program p;
  p.name = r.string(r(root, "name"));
  p.arenaBytes = r.integer(r(root, "arena"), 0, kMaxElements);
  for (const Field &a : r.elements(r(root, "arguments"))) {
    ArgumentSpec spec;
    spec.name = r.string(r(a, "name"));
    spec.role = ArgumentRole(r.integer(r(a, "role"), 0, 2));
    spec.dtype = r.dtype(r(a, "dtype"));
    spec.shape = r.shape(r(a, "shape"));
    std::vector<Field> init = r.elements(r(a, "init"), 3);
    spec.init = {ArgumentInit::Kind(r.integer(init[0], 0, 2)), r.number(init[1]), r.number(init[2])};
    p.arguments.push_back(std::move(spec));
  }
  for (const Field &s : r.elements(r(root, "steps"))) {
    Step step;
    step.name = r.string(r(s, "name"));
    step.kind = StepKind(r.integer(r(s, "kind"), 0, int64_t(StepKind::Copy)));
    step.result = r.buffer(r(s, "result"));
    step.operands = r.buffers(r(s, "operands"));
    step.extraResults = r.buffers(r(s, "extra_results"));
    step.iterations = r.integer(r(s, "iterations"));
    step.iterationCost = r.integer(r(s, "cost"));
    std::vector<int64_t> m = r.integers(r(s, "matmul"), 7, 1);
    step.matmul = {m[0], m[1], m[2], m[3], m[4] != 0, m[5] != 0, DType(m[6])};
    std::vector<int64_t> w = r.integers(r(s, "window"), 17, 1);
    step.window = {w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12],
                   w[13], w[14], w[15], DType(w[16])};
    std::vector<int64_t> x = r.integers(r(s, "index"), 6, 2);
    step.index = {x[0], x[1], x[2], x[3], DType(x[4]), DType(x[5])};
    if (s.json.contains("where"))
      step.where = r.string(r(s, "where"));
    if (s.json.contains("what"))
      step.what = r.string(r(s, "what"));
    if (s.json.contains("result_dtypes"))
      for (const Field &t : r.elements(r(s, "result_dtypes"), 1 + step.extraResults.size()))
        step.resultTypes.push_back(r.dtype(t));
    p.steps.push_back(std::move(step));
  }
  for (const Field &res : r.elements(r(root, "results")))
    p.results.push_back(ResultSpec{r.string(r(res, "name")), r.dtype(r(res, "dtype")),
                                   r.shape(r(res, "shape")), r.buffer(r(res, "buffer"))});
  for (const Field &u : r.elements(r(root, "updates"))) {
    std::vector<Field> pair = r.elements(u, 2);
    p.updates.push_back(UpdateSpec{int32_t(r.integer(pair[0], 0, INT32_MAX)), r.buffer(pair[1])});
  }
  return p;
}

} // namespace kiln
