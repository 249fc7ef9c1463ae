#include "ir/GraphEdit.h"

#include "ir/Verifier.h"
#include "runtime/Error.h"

namespace kiln {

Value *emitNode(Graph &graph, OpKind kind, std::vector<Value *> operands, AttrMap attrs,
                const TensorType *given, Location loc) {
  std::vector<TensorType> types;
  for (const Value *v : operands)
    types.push_back(v->type);
  std::string error;
  std::optional<TensorType> type = inferType(kind, types, attrs, given, error);
  if (!type)
    throwError("@" + graph.name() + ": " + std::string(opName(kind)), error);
  return graph.addNode(kind, std::move(operands), std::move(attrs), *type, std::move(loc))->result();
}

Value *emitConstant(Graph &graph, double value, const TensorType &type) {
  AttrMap attrs;
  if (isFloat(type.dtype))
    attrs.set("value", value);
  else
    attrs.set("value", int64_t(value));
  return emitNode(graph, OpKind::Constant, {}, std::move(attrs), &type);
}

namespace {

std::unique_ptr<Graph> copyGraph(const Graph &graph, bool toF64,
                                 std::unordered_map<const Value *, Value *> *mapping) {
  auto promote = [&](TensorType t) {
    if (toF64 && isFloat(t.dtype))
      t.dtype = DType::F64;
    return t;
  };
  auto copy = std::make_unique<Graph>(graph.name(), graph.loc());
  std::unordered_map<const Value *, Value *> map;
  for (const auto &arg : graph.arguments())
    map[&arg->value] = &copy->addArgument(arg->name, promote(arg->value.type), arg->role,
                                          arg->attrs, arg->loc)->value;
  for (const auto &node : graph.nodes()) {
    std::vector<Value *> operands;
    for (const Value *v : node->operands())
      operands.push_back(map.at(v));
    AttrMap attrs = node->attrs();
    if (toF64 && node->kind() == OpKind::Cast && isFloat(node->attr("to").asDType()))
      attrs.set("to", DType::F64);
    std::vector<TensorType> types = node->resultTypes();
    for (TensorType &t : types)
      t = promote(t);
    Node *added = copy->addNode(node->kind(), std::move(operands), std::move(attrs), types, node->loc());
    if (const Graph *body = node->body())
      added->setBody(copyGraph(*body, toF64, nullptr));
    for (size_t r = 0; r < node->numResults(); ++r)
      map[node->result(r)] = added->result(r);
  }
  for (size_t i = 0; i < graph.results().size(); ++i)
    copy->addResult(map.at(graph.results()[i]), graph.hasResultName(i) ? graph.resultName(i) : "");
  for (const Update &u : graph.updates())
    copy->addUpdate(map.at(&u.target->value)->arg, map.at(u.source), u.loc);
  if (mapping)
    *mapping = std::move(map);
  return copy;
}

} // namespace

std::unique_ptr<Graph> cloneGraph(const Graph &graph,
                                  std::unordered_map<const Value *, Value *> *mapping) {
  return copyGraph(graph, false, mapping);
}

std::unique_ptr<Graph> promoteFloatsToF64(const Graph &graph) {
  return copyGraph(graph, true, nullptr);
}

} // namespace kiln
