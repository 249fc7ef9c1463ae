// `--report=fusion` and the reasons it gives (declared in Fusion.h).
#include "passes/fusion/Fusion.h"

#include "ir/Graph.h"
#include "passes/fusion/FusionRules.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

using namespace fusion;

namespace {

/// The printed names of a graph's top-level values: `%x`, `%N`, `%N#k`.
std::unordered_map<const Value *, std::string> valueNames(const Graph &graph) {
  std::unordered_map<const Value *, std::string> names;
  for (const auto &arg : graph.arguments())
    names[&arg->value] = "%" + arg->name;
  size_t i = 0;
  for (const auto &n : graph.nodes()) {
    for (size_t r = 0; r < n->numResults(); ++r)
      names[n->result(r)] = "%" + std::to_string(i) + resultSuffix(*n->result(r));
    ++i;
  }
  return names;
}

/// `%N (op)`: a node as the report names it.
std::string describeNode(const Node &node, const std::unordered_map<const Value *, std::string> &names) {
  std::string name = names.at(node.result());
  if (node.numResults() > 1)
    name = name.substr(0, name.find('#'));
  return name + " (" + std::string(opName(node.kind())) + ")";
}

/// The iteration space of a kernel node (see iterationSpace).
std::string kernelSpace(const Node &node, std::string *why) {
  std::vector<const Node *> ops;
  if (const Graph *body = node.body())
    for (const auto &inner : body->nodes())
      ops.push_back(inner.get());
  else
    ops.push_back(&node);
  return iterationSpace(ops, node.type(), why);
}

/// The first node on a path from `from` to `to` through other nodes, or null.
const Node *pathThroughOthers(const Graph &graph, const Node &from, const Node &to) {
  auto users = usersOf(graph);
  std::unordered_map<const Node *, bool> reaches; // whether `to` is reachable from a node
  std::function<bool(const Node *)> leadsTo = [&](const Node *n) -> bool {
    if (n == &to)
      return true;
    auto known = reaches.find(n);
    if (known != reaches.end())
      return known->second;
    reaches[n] = false;
    bool found = false;
    for (size_t r = 0; r < n->numResults() && !found; ++r)
      for (const Node *user : users[n->result(r)])
        if ((found = leadsTo(user)))
          break;
    return reaches[n] = found;
  };
  for (size_t r = 0; r < from.numResults(); ++r)
    for (const Node *user : users[from.result(r)])
      if (user != &to && leadsTo(user))
        return user;
  return nullptr;
}

} // namespace

std::string whyNotFused(const Graph &graph, const Value &value, const Node &consumer) {
  const Node &producer = *value.node;
  if (producer.info().has(OpTrait::Library) && producer.kind() != OpKind::Fusion)
    return std::string(opName(producer.kind())) + " is a library op and stays its own kernel";
  if (consumer.info().has(OpTrait::Library) && consumer.kind() != OpKind::Fusion)
    return std::string(opName(consumer.kind())) + " is a library op; nothing is fused into it";
  for (const Value *r : graph.results())
    if (r == &value)
      return "its value is a result of the graph";
  for (const Update &u : graph.updates())
    if (u.source == &value)
      return "its value is the new value of %" + u.target->name;
  auto names = valueNames(graph);
  std::vector<std::string> others;
  for (const auto &n : graph.nodes())
    if (n.get() != &consumer &&
        std::find(n->operands().begin(), n->operands().end(), &value) != n->operands().end())
      others.push_back(describeNode(*n, names));
  if (!others.empty()) {
    std::string list;
    for (size_t i = 0; i < others.size() && i < 3; ++i)
      list += (i ? ", " : "") + others[i];
    if (others.size() > 3)
      list += " and " + std::to_string(others.size() - 3) + " more";
    return "its value is also used by " + list + ", so fusing would compute it twice";
  }
  if (producer.numResults() > 1)
    return "it comes from a multi-output kernel whose other results are read elsewhere";
  return "a group of one op is not wrapped";
}

std::string whyNotSiblings(const Graph &graph, const Node &first, const Node &second) {
  std::string why;
  std::string a = kernelSpace(first, &why);
  if (a.empty())
    return why;
  std::string b = kernelSpace(second, &why);
  if (b.empty())
    return why;
  auto names = valueNames(graph);
  if (a != b)
    return "it iterates over " + b + ", " + describeNode(first, names) + " over " + a;
  for (const auto &[from, to] : {std::pair(&first, &second), std::pair(&second, &first)})
    if (const Node *via = pathThroughOthers(graph, *from, *to))
      return "one kernel of both would feed and read " + describeNode(*via, names) + ", a cycle";
  std::unordered_set<const Value *> buffers;
  for (const Node *n : {&first, &second}) {
    buffers.insert(n->operands().begin(), n->operands().end());
    for (size_t r = 0; r < n->numResults(); ++r)
      buffers.insert(n->result(r));
  }
  if (buffers.size() > kMaxKernelBuffers)
    return "one kernel of both would take " + std::to_string(buffers.size()) + " buffers, more than " +
           std::to_string(kMaxKernelBuffers);
  return "none found: the pass left them apart";
}

std::string fusionReport(const Graph &graph, bool json) {
  auto names = valueNames(graph);
  nlohmann::ordered_json kernels = nlohmann::ordered_json::array();
  int64_t fusions = 0, library = 0, single = 0, ops = 0, multiOutput = 0;
  std::string text;
  std::vector<const Node *> earlier; // kernels that may have siblings: not library ops
  for (const auto &node : graph.nodes()) {
    if (isDuplicable(*node))
      continue;
    std::vector<std::string> opNames;
    if (const Graph *body = node->body()) {
      for (const auto &inner : body->nodes())
        if (!isDuplicable(*inner))
          opNames.push_back(std::string(opName(inner->kind())));
      ++fusions;
      multiOutput += node->numResults() > 1 ? 1 : 0;
    } else {
      opNames.push_back(std::string(opName(node->kind())));
      node->info().has(OpTrait::Library) ? ++library : ++single;
    }
    ops += int64_t(opNames.size());
    int64_t bytesIn = 0, bytesOut = 0;
    nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
    for (size_t r = 0; r < node->numResults(); ++r) {
      bytesOut += bytesOf(node->result(r)->type);
      outputs.push_back(names.at(node->result(r)));
    }
    nlohmann::ordered_json notFused = nlohmann::ordered_json::array();
    for (const Value *v : node->operands()) {
      bytesIn += bytesOf(v->type);
      if (v->node && !isDuplicable(*v->node))
        notFused.push_back({{"value", names.at(v)}, {"reason", whyNotFused(graph, *v, *node)}});
    }
    // Siblings: earlier kernels reading an operand worth sharing, not merged.
    nlohmann::ordered_json notMerged = nlohmann::ordered_json::array();
    bool library = node->info().has(OpTrait::Library) && !node->body();
    if (!library) {
      std::unordered_set<const Node *> reported;
      for (const Value *v : node->operands()) {
        if (!worthSharing(v))
          continue;
        for (const Node *other : earlier)
          if (!reported.count(other) &&
              std::find(other->operands().begin(), other->operands().end(), v) != other->operands().end()) {
            reported.insert(other);
            std::string name = describeNode(*other, names);
            notMerged.push_back({{"kernel", name.substr(0, name.find(' '))}, {"shared", names.at(v)},
                                 {"reason", whyNotSiblings(graph, *other, *node)}});
          }
      }
      earlier.push_back(node.get());
    }
    std::string kind = node->body() ? "fusion (" + node->attr("kind").asString() + ")"
                       : library ? "library" : "single op";
    std::string kernelName = describeNode(*node, names);
    kernelName = kernelName.substr(0, kernelName.find(' '));
    nlohmann::ordered_json k = {{"kernel", kernelName}, {"kind", kind}, {"outputs", outputs},
                                {"ops", opNames}, {"bytes_in", bytesIn}, {"bytes_out", bytesOut},
                                {"not_fused", notFused}, {"siblings_not_merged", notMerged}};
    kernels.push_back(k);
    std::string opList;
    for (size_t i = 0; i < opNames.size(); ++i)
      opList += (i ? " " : "") + opNames[i];
    char line[160];
    std::snprintf(line, sizeof line, "%-6s %-20s %10lld B in %10lld B out  ", kernelName.c_str(),
                  kind.c_str(), (long long)bytesIn, (long long)bytesOut);
    text += line + opList + "\n";
    if (node->numResults() > 1) {
      text += "         outputs";
      for (size_t r = 0; r < node->numResults(); ++r)
        text += (r ? ", " : " ") + names.at(node->result(r)) + " " + node->result(r)->type.toString();
      text += "\n";
    }
    for (const auto &nf : notFused)
      text += "         not fused with " + nf["value"].get<std::string>() + ": " +
              nf["reason"].get<std::string>() + "\n";
    for (const auto &nm : notMerged)
      text += "         not merged with sibling " + nm["kernel"].get<std::string>() + " (both read " +
              nm["shared"].get<std::string>() + "): " + nm["reason"].get<std::string>() + "\n";
  }
  int64_t total = fusions + library + single;
  if (json) {
    nlohmann::ordered_json out = {{"graph", graph.name()}, {"kernels", total}, {"fusions", fusions},
                                  {"multi_output_fusions", multiOutput}, {"library_ops", library},
                                  {"single_ops", single}, {"ops", ops}, {"kernel_list", kernels}};
    return out.dump(1) + "\n";
  }
  char summary[240];
  std::snprintf(summary, sizeof summary,
                "@%s: %lld kernels (%lld fusions, %lld library ops, %lld single ops) for %lld ops",
                graph.name().c_str(), (long long)total, (long long)fusions, (long long)library,
                (long long)single, (long long)ops);
  std::string multi = multiOutput ? "; " + std::to_string(multiOutput) + " multi-output fusions" : "";
  return summary + multi + "\n" + text;
}

} // namespace kiln
