#include "ir/Dot.h"

#include "ir/Graph.h"

#include <unordered_map>

namespace kiln {

namespace {

/// `s` as a dot quoted string.
std::string quoted(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

/// Writes the nodes and edges of one graph (the top graph or a fusion body).
class DotWriter {
public:
  std::string out;

  /// `ids` maps every value readable in `graph` to the dot node that produces
  /// it; the body's own values are added. `prefix` makes the ids of a body's
  /// nodes unique; `indent` nests the body inside its cluster.
  void writeNodes(const Graph &graph, std::unordered_map<const Value *, std::string> &ids,
                  const std::string &prefix, const std::string &indent) {
    size_t number = 0;
    for (const auto &node : graph.nodes()) {
      std::string name = "%" + std::to_string(number);
      std::string id = prefix + "n" + std::to_string(number++);
      std::string op(opName(node->kind()));
      if (const Graph *body = node->body()) {
        // The body's arguments are the fusion's operands: its nodes read the
        // outer producers directly.
        std::unordered_map<const Value *, std::string> inner;
        for (size_t i = 0; i < body->arguments().size() && i < node->operands().size(); ++i)
          inner[&body->arguments()[i]->value] = ids.at(node->operand(i));
        size_t cluster = clusters_++;
        out += indent + "subgraph cluster_" + std::to_string(cluster) + " {\n";
        // As printed: `%5 = fusion : f32[4]`, `%5:2 = fusion : f32[4], f32[]` for two results.
        std::string types;
        for (size_t r = 0; r < node->numResults(); ++r)
          types += (r ? ", " : "") + node->result(r)->type.toString();
        std::string results = node->numResults() > 1 ? ":" + std::to_string(node->numResults()) : "";
        out += indent + "  label=" + quoted(name + results + " = fusion : " + types) + ";\n";
        out += indent + "  style=\"rounded,filled\"; fillcolor=\"#fff4e0\"; color=\"#d08000\";\n";
        writeNodes(*body, inner, id + "_", indent + "  ");
        out += indent + "}\n";
        // Readers of the fusion's results read the values its body yields.
        for (size_t r = 0; r < node->numResults(); ++r)
          ids[node->result(r)] = inner.at(body->results()[r]);
        continue;
      }
      ids[node->result()] = id;
      out +=
          indent + id + " [label=" + quoted(name + " " + op) +
          (node->info().has(OpTrait::Library) ? ", style=\"rounded,filled\", fillcolor=\"#dce6fa\""
                                              : "") +
          "];\n";
      for (const Value *operand : node->operands())
        edges_.push_back(ids.at(operand) + " -> " + id +
                         " [label=" + quoted(operand->type.toString()) + "];\n");
    }
  }

  /// The edges collected so far, written after the nodes: an edge inside a
  /// cluster would otherwise pull its ends into the cluster's scope.
  std::string takeEdges() {
    std::string all;
    for (const std::string &e : edges_)
      all += "  " + e;
    edges_.clear();
    return all;
  }

private:
  size_t clusters_ = 0;
  std::vector<std::string> edges_;
};

} // namespace

std::string printDotGraph(const Graph &graph) {
  DotWriter w;
  std::string &out = w.out;
  out += "digraph " + quoted(graph.name()) + " {\n";
  out += "  rankdir=TB;\n";
  out += "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];\n";
  std::unordered_map<const Value *, std::string> ids;
  size_t a = 0;
  for (const auto &arg : graph.arguments()) {
    std::string id = "a" + std::to_string(a++);
    ids[&arg->value] = id;
    const char *fill = arg->role == ArgRole::Input   ? "#e6f4e6"
                       : arg->role == ArgRole::Param ? "#fdf2c8"
                                                     : "#eeeeee";
    out += "  " + id + " [shape=ellipse, style=filled, fillcolor=\"" + fill +
           "\", label=" + quoted("%" + arg->name + " " + std::string(argRoleName(arg->role))) +
           "];\n";
  }
  w.writeNodes(graph, ids, "", "  ");
  for (size_t i = 0; i < graph.results().size(); ++i) {
    std::string id = "r" + std::to_string(i);
    out +=
        "  " + id + " [shape=plaintext, label=" + quoted("return " + graph.resultName(i)) + "];\n";
    out += "  " + ids.at(graph.results()[i]) + " -> " + id +
           " [label=" + quoted(graph.results()[i]->type.toString()) + "];\n";
  }
  for (size_t i = 0; i < graph.updates().size(); ++i) {
    const Update &u = graph.updates()[i];
    std::string id = "u" + std::to_string(i);
    out += "  " + id + " [shape=plaintext, label=" + quoted("update %" + u.target->name) + "];\n";
    out += "  " + ids.at(u.source) + " -> " + id +
           " [style=dashed, label=" + quoted(u.source->type.toString()) + "];\n";
  }
  out += w.takeEdges();
  return out + "}\n";
}

std::string printDotModule(const Module &module) {
  std::string out;
  for (const auto &graph : module.graphs)
    out += printDotGraph(*graph);
  return out;
}

} // namespace kiln
