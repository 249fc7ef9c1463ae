#include "ir/Json.h"

#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace kiln {

namespace {

using Json = nlohmann::ordered_json;
constexpr int kFormatVersion = 1;

Json typeToJson(const TensorType &t) {
  return Json{{"dtype", std::string(dtypeName(t.dtype))}, {"shape", t.shape.dims()}};
}

Json floatToJson(double v) {
  if (std::isfinite(v))
    return v;
  return Json{{"float", std::isnan(v) ? "nan" : v < 0 ? "-inf" : "inf"}};
}

Json attrToJson(const Attribute &a) {
  if (a.isInt()) return a.asInt();
  if (a.isFloat()) return floatToJson(a.asFloat());
  if (a.isBool()) return a.asBool();
  if (a.isString()) return a.asString();
  if (a.isDType()) return std::string(dtypeName(a.asDType()));
  if (a.isIntList()) return a.asIntList();
  if (a.isBufferSlice())
    return Json{{"buffer", a.asBufferSlice().buffer},
                {"begin", a.asBufferSlice().begin},
                {"end", a.asBufferSlice().end}};
  if (a.isBufferList()) {
    Json list = Json::array();
    for (const BufferSlice &b : a.asBufferList())
      list.push_back(attrToJson(Attribute(b)));
    return list;
  }
  Json list = Json::array();
  for (double v : a.asFloatList())
    list.push_back(floatToJson(v));
  return list;
}

Json attrsToJson(const AttrMap &attrs) {
  Json out = Json::object();
  for (const auto &[name, value] : attrs)
    out[name] = attrToJson(value);
  return out;
}

/// Reads JSON into IR objects, naming each problem by its JSON pointer.
class JsonReader {
public:
  explicit JsonReader(std::string file) : file_(std::move(file)) {}

  Module read(const Json &root, const std::string &baseDir) {
    if (!root.is_object())
      fail("", "expected a JSON object with \"format\": \"kiln.graph\"");
    if (!root.contains("format") || root["format"] != "kiln.graph")
      fail("/format", "expected \"kiln.graph\", got " +
                          (root.contains("format") ? root["format"].dump() : "nothing"));
    if (!root.contains("version") || !root["version"].is_number_integer())
      fail("/version", "expected the format version, an integer");
    if (root["version"].get<int64_t>() != kFormatVersion)
      fail("/version", "unsupported kiln.graph version " + root["version"].dump() +
                           " (this Kiln reads version " + std::to_string(kFormatVersion) + ")");
    for (auto it = root.begin(); it != root.end(); ++it)
      if (it.key() != "format" && it.key() != "version" && it.key() != "graphs" &&
          it.key() != "weights")
        fail("/" + it.key(), "unknown field");
    const Json &graphs = member(root, "", "graphs");
    if (!graphs.is_array() || graphs.empty())
      fail("/graphs", "expected a non-empty array of graphs");
    Module module;
    for (size_t i = 0; i < graphs.size(); ++i)
      module.graphs.push_back(readGraph(graphs[i], "/graphs/" + std::to_string(i)));
    if (root.contains("weights")) {
      if (!root["weights"].is_string() || root["weights"].get<std::string>().empty())
        fail("/weights", "expected the name of a safetensors file");
      std::string name = root["weights"].get<std::string>();
      std::string path = name.front() == '/' || baseDir.empty() ? name : baseDir + "/" + name;
      module.weights = readSafetensors(path);
    }
    verifyModule(module);
    return module;
  }

private:
  [[noreturn]] void fail(const std::string &pointer, const std::string &message) const {
    throwError(file_ + ":" + (pointer.empty() ? "/" : pointer), message);
  }

  const Json &member(const Json &obj, const std::string &at, const char *key) const {
    if (!obj.is_object())
      fail(at, "expected an object");
    if (!obj.contains(key))
      fail(at, std::string("missing field \"") + key + "\"");
    return obj[key];
  }

  std::string stringMember(const Json &obj, const std::string &at, const char *key) const {
    const Json &v = member(obj, at, key);
    if (!v.is_string())
      fail(at + "/" + key, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }

  TensorType readType(const Json &j, const std::string &at) const {
    std::string dt = stringMember(j, at, "dtype");
    std::optional<DType> dtype = parseDType(dt);
    if (!dtype)
      fail(at + "/dtype", "unknown dtype '" + dt + "'");
    const Json &shape = member(j, at, "shape");
    if (!shape.is_array())
      fail(at + "/shape", "expected an array of dimensions");
    std::vector<int64_t> dims;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (!shape[i].is_number_integer() || shape[i].get<int64_t>() < 0)
        fail(at + "/shape/" + std::to_string(i), "expected a non-negative integer, got " +
                                                      shape[i].dump());
      dims.push_back(shape[i].get<int64_t>());
    }
    if (checkedNumElements(dims) < 0)
      fail(at + "/shape", "shape " + Shape(dims).toString() + " has too many elements");
    return TensorType{*dtype, Shape(dims)};
  }

  std::optional<double> readFloat(const Json &j) const {
    if (j.is_number())
      return j.get<double>();
    if (j.is_object() && j.size() == 1 && j.contains("float") && j["float"].is_string()) {
      std::string s = j["float"].get<std::string>();
      if (s == "nan") return NAN;
      if (s == "inf") return INFINITY;
      if (s == "-inf") return -INFINITY;
    }
    return std::nullopt;
  }

  static bool isBufferSliceJson(const Json &j) {
    return j.is_object() && j.size() == 3 && j.contains("buffer") && j["buffer"].is_string() &&
           j.contains("begin") && j["begin"].is_number_integer() && j.contains("end") &&
           j["end"].is_number_integer();
  }

  BufferSlice readBufferSlice(const Json &j, const std::string &at) const {
    BufferSlice b{j["buffer"].get<std::string>(), j["begin"].get<int64_t>(), j["end"].get<int64_t>()};
    if (b.begin < 0 || b.end < b.begin)
      fail(at, "buffer slice needs 0 <= begin <= end");
    return b;
  }

  Attribute readAttr(const Json &j, const std::string &at, const AttrSpec *spec) const {
    if (spec && spec->kind == AttrKind::DType) {
      if (!j.is_string() || !parseDType(j.get<std::string>()))
        fail(at, "expected a dtype name, got " + j.dump());
      return Attribute(*parseDType(j.get<std::string>()));
    }
    if (j.is_boolean()) return Attribute(j.get<bool>());
    if (j.is_number_integer()) {
      if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT64_MAX))
        fail(at, "integer " + j.dump() + " is out of range");
      return Attribute(j.get<int64_t>());
    }
    if (std::optional<double> f = readFloat(j)) return Attribute(*f);
    if (isBufferSliceJson(j))
      return Attribute(readBufferSlice(j, at));
    if (j.is_string()) return Attribute(j.get<std::string>());
    if (j.is_array() && !j.empty() && isBufferSliceJson(j[0])) {
      Attribute::BufferList slices;
      for (size_t i = 0; i < j.size(); ++i) {
        std::string itemAt = at + "/" + std::to_string(i);
        if (!isBufferSliceJson(j[i]))
          fail(itemAt, "expected a buffer slice like the list's first, got " + j[i].dump());
        slices.push_back(readBufferSlice(j[i], itemAt));
      }
      return Attribute(std::move(slices));
    }
    if (j.is_array()) {
      Attribute::IntList ints;
      Attribute::FloatList floats;
      bool anyFloat = false;
      for (size_t i = 0; i < j.size(); ++i) {
        if (j[i].is_number_integer() && !(j[i].is_number_unsigned() &&
                                          j[i].get<uint64_t>() > uint64_t(INT64_MAX))) {
          ints.push_back(j[i].get<int64_t>());
          floats.push_back(double(ints.back()));
        } else if (std::optional<double> f = readFloat(j[i])) {
          anyFloat = true;
          floats.push_back(*f);
        } else {
          fail(at + "/" + std::to_string(i), "expected a number, got " + j[i].dump());
        }
      }
      return anyFloat ? Attribute(floats) : Attribute(ints);
    }
    fail(at, "unsupported attribute value " + j.dump());
  }

  AttrMap readAttrs(const Json &obj, const std::string &at, const OpInfo *info) const {
    AttrMap attrs;
    if (!obj.contains("attrs"))
      return attrs;
    const Json &j = obj["attrs"];
    if (!j.is_object())
      fail(at + "/attrs", "expected an object");
    for (auto it = j.begin(); it != j.end(); ++it)
      attrs.set(it.key(), readAttr(it.value(), at + "/attrs/" + it.key(),
                                   info ? info->findAttr(it.key()) : nullptr));
    return attrs;
  }

  Value *lookup(const Json &ref, const std::string &at) const {
    if (!ref.is_string())
      fail(at, "expected a value reference \"%name\", got " + ref.dump());
    std::string name = ref.get<std::string>();
    auto it = values_.find(name);
    if (it == values_.end())
      fail(at, "use of undefined value '" + name + "'");
    return it->second;
  }

  std::unique_ptr<Graph> readGraph(const Json &j, const std::string &at) {
    values_.clear();
    for (auto it = j.begin(); j.is_object() && it != j.end(); ++it)
      if (it.key() != "name" && it.key() != "arguments" && it.key() != "nodes" &&
          it.key() != "results" && it.key() != "updates")
        fail(at + "/" + it.key(), "unknown field");
    auto graph = std::make_unique<Graph>(stringMember(j, at, "name"), Location{file_ + ":" + at});
    const Json &args = member(j, at, "arguments");
    if (!args.is_array())
      fail(at + "/arguments", "expected an array");
    for (size_t i = 0; i < args.size(); ++i) {
      std::string argAt = at + "/arguments/" + std::to_string(i);
      std::string name = stringMember(args[i], argAt, "name");
      std::string role = stringMember(args[i], argAt, "role");
      ArgRole argRole = role == "input"   ? ArgRole::Input
                        : role == "param" ? ArgRole::Param
                        : role == "state" ? ArgRole::State
                                          : (fail(argAt + "/role", "unknown role '" + role +
                                                                       "' (expected input, param or state)"),
                                             ArgRole::Input);
      Argument *arg = graph->addArgument(name, readType(member(args[i], argAt, "type"), argAt + "/type"),
                                         argRole, readAttrs(args[i], argAt, nullptr),
                                         Location{file_ + ":" + argAt});
      if (!values_.emplace("%" + name, &arg->value).second)
        fail(argAt + "/name", "value '%" + name + "' is defined twice");
    }
    const Json &nodes = member(j, at, "nodes");
    if (!nodes.is_array())
      fail(at + "/nodes", "expected an array");
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::string nodeAt = at + "/nodes/" + std::to_string(i);
      std::string opText = stringMember(nodes[i], nodeAt, "op");
      std::optional<OpKind> kind = parseOpName(opText);
      if (!kind)
        fail(nodeAt + "/op", "unknown op '" + opText + "'");
      std::vector<Value *> operands;
      if (nodes[i].contains("operands")) {
        const Json &ops = nodes[i]["operands"];
        if (!ops.is_array())
          fail(nodeAt + "/operands", "expected an array of value references");
        for (size_t k = 0; k < ops.size(); ++k)
          operands.push_back(lookup(ops[k], nodeAt + "/operands/" + std::to_string(k)));
      }
      std::vector<TensorType> types;
      if (nodes[i].contains("types")) { // a multi-output fusion
        const Json &list = nodes[i]["types"];
        if (!list.is_array() || list.size() < 2)
          fail(nodeAt + "/types", "expected an array of two or more types");
        if (nodes[i].contains("type"))
          fail(nodeAt + "/type", "a node has \"type\" or \"types\", not both");
        for (size_t k = 0; k < list.size(); ++k)
          types.push_back(readType(list[k], nodeAt + "/types/" + std::to_string(k)));
      } else {
        types.push_back(readType(member(nodes[i], nodeAt, "type"), nodeAt + "/type"));
      }
      Node *node = graph->addNode(*kind, std::move(operands), readAttrs(nodes[i], nodeAt, &opInfo(*kind)),
                                  types, Location{file_ + ":" + nodeAt});
      if (nodes[i].contains("body")) {
        std::unordered_map<std::string, Value *> outer = std::move(values_);
        node->setBody(readGraph(nodes[i]["body"], nodeAt + "/body"));
        values_ = std::move(outer);
      }
      for (size_t k = 0; k < node->numResults(); ++k)
        values_["%" + std::to_string(i) + resultSuffix(*node->result(k))] = node->result(k);
    }
    const Json &results = member(j, at, "results");
    if (!results.is_array())
      fail(at + "/results", "expected an array");
    for (size_t i = 0; i < results.size(); ++i) {
      std::string resAt = at + "/results/" + std::to_string(i);
      Value *v = lookup(member(results[i], resAt, "value"), resAt + "/value");
      std::string name;
      if (results[i].contains("name"))
        name = stringMember(results[i], resAt, "name");
      graph->addResult(v, name);
    }
    if (j.contains("updates")) {
      const Json &updates = j["updates"];
      if (!updates.is_array())
        fail(at + "/updates", "expected an array");
      for (size_t i = 0; i < updates.size(); ++i) {
        std::string upAt = at + "/updates/" + std::to_string(i);
        Value *target = lookup(member(updates[i], upAt, "target"), upAt + "/target");
        if (!target->arg)
          fail(upAt + "/target", "update target is not a graph argument");
        graph->addUpdate(target->arg, lookup(member(updates[i], upAt, "value"), upAt + "/value"),
                         Location{file_ + ":" + upAt});
      }
    }
    return graph;
  }

  std::string file_;
  std::unordered_map<std::string, Value *> values_;
};

std::string folderOf(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

} // namespace

Module parseJsonModule(const std::string &text, const std::string &fileName,
                       const std::string &baseDir) {
  if (size_t at = findDeepJsonNesting(text); at != std::string::npos) {
    size_t line = 1 + size_t(std::count(text.begin(), text.begin() + std::ptrdiff_t(at), '\n'));
    size_t lineStart = text.rfind('\n', at);
    size_t col = at - (lineStart == std::string::npos ? 0 : lineStart + 1) + 1;
    throwError(fileName + ":" + std::to_string(line) + ":" + std::to_string(col),
               "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::out_of_range &e) {
    // nlohmann reports number overflow ("1e999") this way, without a position.
    std::string what = e.what();
    size_t bracket = what.find("] ");
    throwError(fileName, "invalid JSON: " + (bracket == std::string::npos ? what : what.substr(bracket + 2)));
  } catch (const Json::parse_error &e) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    size_t colon = what.find(": ", what.find("parse error"));
    throwError(fileName + ":" + std::to_string(line) + ":" + std::to_string(col),
               "invalid JSON: " + (colon == std::string::npos ? what : what.substr(colon + 2)));
  }
  return JsonReader(fileName).read(root, baseDir);
}

Module readJsonModule(const std::string &path) {
  return parseJsonModule(readFile(path), path, folderOf(path));
}

/// One graph object; a fusion's body is the same kind of object under "body".
static Json graphToJson(const Graph &g) {
  std::unordered_map<const Value *, std::string> names;
  Json graph;
  graph["name"] = g.name();
  Json args = Json::array();
  for (const auto &arg : g.arguments()) {
    names[&arg->value] = "%" + arg->name;
    Json a{{"name", arg->name}, {"type", typeToJson(arg->value.type)},
           {"role", std::string(argRoleName(arg->role))}};
    if (!arg->attrs.empty())
      a["attrs"] = attrsToJson(arg->attrs);
    args.push_back(a);
  }
  graph["arguments"] = args;
  Json nodes = Json::array();
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node &node = *g.nodes()[i];
    for (size_t k = 0; k < node.numResults(); ++k)
      names[node.result(k)] = "%" + std::to_string(i) + resultSuffix(*node.result(k));
    Json n{{"op", std::string(opName(node.kind()))}};
    if (!node.operands().empty()) {
      Json ops = Json::array();
      for (const Value *v : node.operands())
        ops.push_back(names.at(v));
      n["operands"] = ops;
    }
    std::vector<std::pair<std::string, Attribute>> attrs =
        canonicalAttributes(node.kind(), node.attrs());
    if (!attrs.empty()) {
      Json a = Json::object();
      for (const auto &[name, value] : attrs)
        a[name] = attrToJson(value);
      n["attrs"] = a;
    }
    if (node.numResults() == 1) {
      n["type"] = typeToJson(node.type());
    } else {
      Json types = Json::array();
      for (size_t k = 0; k < node.numResults(); ++k)
        types.push_back(typeToJson(node.result(k)->type));
      n["types"] = types;
    }
    if (const Graph *body = node.body())
      n["body"] = graphToJson(*body);
    nodes.push_back(n);
  }
  graph["nodes"] = nodes;
  Json results = Json::array();
  for (size_t i = 0; i < g.results().size(); ++i) {
    Json r{{"value", names.at(g.results()[i])}};
    if (g.hasResultName(i))
      r["name"] = g.resultName(i);
    results.push_back(r);
  }
  graph["results"] = results;
  if (!g.updates().empty()) {
    Json updates = Json::array();
    for (const Update &u : g.updates())
      updates.push_back(Json{{"target", "%" + u.target->name}, {"value", names.at(u.source)}});
    graph["updates"] = updates;
  }
  return graph;
}

std::string printJsonModule(const Module &module, const std::string &weightsFile) {
  Json root;
  root["format"] = "kiln.graph";
  root["version"] = kFormatVersion;
  Json graphs = Json::array();
  for (const auto &g : module.graphs)
    graphs.push_back(graphToJson(*g));
  root["graphs"] = graphs;
  if (!weightsFile.empty())
    root["weights"] = weightsFile;
  return root.dump(1) + "\n";
}

void writeJsonModule(const std::string &path, const Module &module) {
  std::string weightsFile;
  if (!module.weights.empty()) {
    std::string stem = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0
                           ? path.substr(0, path.size() - 5)
                           : path;
    std::string weightsPath = stem + ".weights.safetensors";
    writeSafetensors(weightsPath, module.weights);
    size_t slash = weightsPath.rfind('/');
    weightsFile = slash == std::string::npos ? weightsPath : weightsPath.substr(slash + 1);
  }
  writeFileAtomically(path, printJsonModule(module, weightsFile));
}

} // namespace kiln
