#include "ir/Printer.h"

#include "ir/Graph.h"

#include <unordered_map>

namespace kiln {

namespace {

/// `{a = 1, b = [2, 3]}`, or empty when there is nothing to print.
std::string printAttrs(const std::vector<std::pair<std::string, Attribute>> &attrs) {
  std::string out;
  for (const auto &[name, value] : attrs)
    out += (out.empty() ? "{" : ", ") + name + " = " + value.toString();
  return out.empty() ? out : out + "}";
}

std::string printAttrs(const AttrMap &attrs) {
  return printAttrs(std::vector<std::pair<std::string, Attribute>>(attrs.begin(), attrs.end()));
}

/// The node lines of `graph` at `indent`; a fusion's body follows its line as
/// a nested region whose names (%arg0.., %0..) are its own.
std::string printNodes(const Graph &graph, std::unordered_map<const Value *, std::string> &names,
                       const std::string &indent) {
  std::string out;
  size_t number = 0;
  for (const auto &node : graph.nodes()) {
    std::string name = "%" + std::to_string(number++);
    for (size_t r = 0; r < node->numResults(); ++r)
      names[node->result(r)] = name + resultSuffix(*node->result(r));
    if (node->numResults() > 1) // MLIR's spelling: %3:2 defines %3#0 and %3#1
      name += ":" + std::to_string(node->numResults());
    out += indent + name + " = " + std::string(opName(node->kind()));
    for (size_t i = 0; i < node->operands().size(); ++i)
      out += (i ? ", " : " ") + names.at(node->operand(i));
    std::string attrs = printAttrs(canonicalAttributes(node->kind(), node->attrs()));
    if (!attrs.empty())
      out += " " + attrs;
    for (size_t r = 0; r < node->numResults(); ++r)
      out += (r ? ", " : " : ") + node->result(r)->type.toString();
    if (const Graph *body = node->body()) {
      std::unordered_map<const Value *, std::string> inner;
      for (const auto &arg : body->arguments())
        inner[&arg->value] = "%" + arg->name;
      out += " {\n" + printNodes(*body, inner, indent + "  ");
      out += indent + "  yield";
      for (size_t r = 0; r < body->results().size(); ++r)
        out += (r ? ", " : " ") + inner.at(body->results()[r]);
      out += "\n" + indent + "}";
    }
    out += "\n";
  }
  return out;
}

} // namespace

std::string printGraph(const Graph &graph) {
  std::unordered_map<const Value *, std::string> names;
  std::vector<std::string> args;
  for (const auto &arg : graph.arguments()) {
    names[&arg->value] = "%" + arg->name;
    std::string text = "%" + arg->name + ": " + arg->value.type.toString() + " " +
                       std::string(argRoleName(arg->role));
    std::string attrs = printAttrs(arg->attrs);
    if (!attrs.empty())
      text += " " + attrs;
    args.push_back(std::move(text));
  }
  std::string results;
  for (size_t i = 0; i < graph.results().size(); ++i) {
    results += i ? ", " : "";
    if (graph.hasResultName(i))
      results += graph.resultName(i) + ": ";
    results += graph.results()[i]->type.toString();
  }

  // One line when it fits in 100 columns, else one argument per line.
  std::string tail = ") -> (" + results + ") {";
  std::string out = "graph @" + graph.name() + "(";
  std::string oneLine = out;
  for (size_t i = 0; i < args.size(); ++i)
    oneLine += (i ? ", " : "") + args[i];
  if (oneLine.size() + tail.size() <= 100) {
    out = oneLine;
  } else {
    for (size_t i = 0; i < args.size(); ++i)
      out += (i ? ",\n    " : "\n    ") + args[i];
  }
  out += tail + "\n";

  out += printNodes(graph, names, "  ");
  for (const Update &u : graph.updates())
    out += "  update %" + u.target->name + ", " + names.at(u.source) + "\n";
  out += "  return";
  for (size_t i = 0; i < graph.results().size(); ++i)
    out += (i ? ", " : " ") + names.at(graph.results()[i]);
  return out + "\n}\n";
}

std::string printModule(const Module &module) {
  std::string out;
  for (size_t i = 0; i < module.graphs.size(); ++i)
    out += (i ? "\n" : "") + printGraph(*module.graphs[i]);
  return out;
}

} // namespace kiln
