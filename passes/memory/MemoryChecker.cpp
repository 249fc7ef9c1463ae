#include "passes/memory/MemoryChecker.h"

#include "ir/Graph.h"
#include "ir/Verifier.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace kiln {

namespace {

constexpr int64_t kAlignment = 64;

int64_t typeBytes(const TensorType &type) {
  return type.numElements() * int64_t(dtypeSize(type.dtype));
}

/// Something holding bytes [begin, end) of one buffer from position `first`
/// through `last` (-1: on entry to the step; the node count: its end).
struct Occupant {
  enum Kind { NodeValue, EntryValue, UpdateWrite } kind;
  const Value *value; // the node's result, or the argument's value
  int64_t begin, end;
  long first, last;
};

class PlanChecker {
public:
  explicit PlanChecker(const Graph &graph) : graph_(graph), end_(long(graph.nodes().size())) {}

  std::string run() {
    std::vector<PlacedValue> placed = readMemoryPlan(graph_);
    for (const PlacedValue &p : placed) {
      position_[p.value] = long(p.position);
      slices_[p.value] = p.slice;
    }
    for (const PlacedValue &p : placed) {
      std::string problem = checkSlice(p);
      if (!problem.empty())
        return problem;
      buffers_[p.slice.buffer].push_back({Occupant::NodeValue, p.value, p.slice.begin,
                                          p.slice.end, long(p.position), long(p.lastUse)});
    }
    for (auto &[name, occupants] : buffers_) {
      if (name != "arena")
        addArgumentOccupants(*graph_.findArgument(name.substr(1)), occupants);
      std::string problem = checkOverlaps(name, occupants);
      if (!problem.empty())
        return problem;
    }
    return {};
  }

private:
  std::string checkSlice(const PlacedValue &p) const {
    std::string who = describe(p.value);
    if (p.slice.buffer.empty())
      return who + " has no buffer, but other nodes do: a plan gives every node one";
    if (p.slice.begin < 0 || p.slice.end < p.slice.begin)
      return who + " has the malformed slice " + Attribute(p.slice).toString();
    if (p.slice.begin % kAlignment != 0)
      return who + " starts at byte " + std::to_string(p.slice.begin) + " of " + p.slice.buffer +
             ", not a multiple of " + std::to_string(kAlignment);
    if (p.slice.size() < p.bytes)
      return who + " needs " + std::to_string(p.bytes) + " bytes but has " +
             Attribute(p.slice).toString();
    if (p.slice.isArena())
      return {};
    const Argument *arg = p.slice.buffer[0] == '%' ? graph_.findArgument(p.slice.buffer.substr(1)) : nullptr;
    if (!arg)
      return who + " is placed in " + p.slice.buffer + ", which is neither the arena nor an argument";
    if (p.slice.end > typeBytes(arg->value.type))
      return who + " is placed in " + Attribute(p.slice).toString() + ", past the " +
             std::to_string(typeBytes(arg->value.type)) + " bytes of %" + arg->name;
    return {};
  }

  /// The argument's value on entry, as long as something may still read it,
  /// and the write of its update at the end unless the source is planned
  /// into it exactly.
  void addArgumentOccupants(const Argument &arg, std::vector<Occupant> &occupants) const {
    int64_t bytes = typeBytes(arg.value.type);
    const Update *update = nullptr;
    for (const Update &u : graph_.updates())
      if (u.target == &arg)
        update = &u;
    long lastRead = update ? -1 : end_; // an argument nothing updates persists
    for (const Value *v : graph_.results())
      if (v == &arg.value)
        lastRead = end_;
    for (const Update &u : graph_.updates())
      if (u.source == &arg.value)
        lastRead = end_;
    for (size_t i = 0; i < graph_.nodes().size(); ++i)
      for (const Value *operand : graph_.nodes()[i]->operands())
        if (operand == &arg.value)
          lastRead = std::max(lastRead, long(i));
    occupants.push_back({Occupant::EntryValue, &arg.value, 0, bytes, -1, lastRead});
    if (!update)
      return;
    auto slice = slices_.find(update->source);
    bool writtenInPlace = slice != slices_.end() &&
                          slice->second == BufferSlice{"%" + arg.name, 0, bytes};
    if (!writtenInPlace)
      occupants.push_back({Occupant::UpdateWrite, &arg.value, 0, bytes, end_, end_});
  }

  /// A node's result taking exactly the slice of an operand of its byte size
  /// whose last use is that node, which it reads element by element.
  bool sharesInPlace(const Occupant &operand, const Occupant &result) const {
    if (result.kind != Occupant::NodeValue || operand.kind == Occupant::UpdateWrite)
      return false;
    const Node &node = *result.value->node;
    bool reads = std::find(node.operands().begin(), node.operands().end(), operand.value) !=
                 node.operands().end();
    return reads && operand.last == result.first && operand.begin == result.begin &&
           operand.end == result.end && typeBytes(operand.value->type) == typeBytes(result.value->type) &&
           readsElementByElement(node, operand.value) &&
           (node.numResults() == 1 || readBeforeWritten(node, operand.value, result.value->index));
  }

  /// In a multi-output fusion, whether every body node reading `v` runs no
  /// later than the body node that computes result `k` (which writes it into
  /// its slice as it goes), and the body never yields `v` itself (copied out
  /// at the end).
  static bool readBeforeWritten(const Node &node, const Value *v, unsigned k) {
    const Graph &body = *node.body();
    std::vector<const Value *> inner;
    for (size_t i = 0; i < node.operands().size(); ++i)
      if (node.operand(i) == v)
        inner.push_back(&body.arguments()[i]->value);
    const Value *written = body.results()[k];
    if (!written->node)
      return false;
    for (const Value *yielded : body.results())
      if (std::find(inner.begin(), inner.end(), yielded) != inner.end())
        return false;
    bool writtenYet = false;
    for (const auto &bodyNode : body.nodes()) {
      for (const Value *operand : bodyNode->operands())
        if (writtenYet && std::find(inner.begin(), inner.end(), operand) != inner.end())
          return false;
      writtenYet = writtenYet || bodyNode.get() == written->node;
    }
    return true;
  }

  /// Whether `node` reads element i of `v` only for element i of its result:
  /// an elementwise op, or a fusion whose body gives `v` to elementwise ops only.
  static bool readsElementByElement(const Node &node, const Value *v) {
    const Graph *body = node.body();
    if (!body)
      return node.info().has(OpTrait::Elementwise);
    std::vector<const Value *> pending;
    for (size_t k = 0; k < node.operands().size(); ++k)
      if (node.operand(k) == v)
        pending.push_back(&body->arguments()[k]->value);
    std::unordered_map<const Value *, bool> seen;
    while (!pending.empty()) {
      const Value *inner = pending.back();
      pending.pop_back();
      if (seen[inner])
        continue;
      seen[inner] = true;
      for (const auto &user : body->nodes()) {
        const auto &ops = user->operands();
        if (std::find(ops.begin(), ops.end(), inner) == ops.end())
          continue;
        if (!user->info().has(OpTrait::Elementwise))
          return false;
        pending.push_back(user->result());
      }
    }
    return true;
  }

  std::string checkOverlaps(const std::string &buffer, std::vector<Occupant> &occupants) const {
    std::stable_sort(occupants.begin(), occupants.end(),
                     [](const Occupant &a, const Occupant &b) { return a.first < b.first; });
    std::vector<const Occupant *> live;
    for (const Occupant &o : occupants) {
      if (o.begin == o.end)
        continue;
      live.erase(std::remove_if(live.begin(), live.end(),
                                [&](const Occupant *l) { return l->last < o.first; }),
                 live.end());
      for (const Occupant *l : live) {
        bool bytesMeet = l->begin < o.end && o.begin < l->end;
        if (!bytesMeet || sharesInPlace(*l, o) || sharesInPlace(o, *l))
          continue;
        if (l->kind == Occupant::EntryValue && o.kind == Occupant::UpdateWrite)
          continue; // the argument itself: reading it at the end is the runtime's business
        return describe(*l) + " and " + describe(o) + " share bytes of " + buffer +
               " while both are live";
      }
      live.push_back(&o);
    }
    return {};
  }

  std::string describe(const Value *v) const {
    if (v->arg)
      return "%" + v->arg->name;
    std::string text = "%" + std::to_string(position_.at(v)) + resultSuffix(*v) + " (" +
                       std::string(opName(v->node->kind()));
    if (v->node->loc().known())
      text += " at " + v->node->loc().toString();
    return text + ")";
  }

  std::string describe(const Occupant &o) const {
    auto at = [&](long p) { return p < 0 ? std::string("entry") : p >= end_ ? std::string("end") : std::to_string(p); };
    std::string range = "[" + at(o.first) + ", " + at(o.last) + "]";
    std::string slice = "[" + std::to_string(o.begin) + ":" + std::to_string(o.end) + "]";
    switch (o.kind) {
    case Occupant::NodeValue:
      return describe(o.value) + " " + slice + " live " + range;
    case Occupant::EntryValue:
      return "the entry value of " + describe(o.value) + " " + slice + " live " + range;
    case Occupant::UpdateWrite:
      return "the update of " + describe(o.value) + " written at the end of the step";
    }
    return {};
  }

  const Graph &graph_;
  long end_;
  std::unordered_map<const Value *, long> position_;
  std::unordered_map<const Value *, BufferSlice> slices_;
  std::map<std::string, std::vector<Occupant>> buffers_; // by buffer name, for a stable report
};

} // namespace

bool hasMemoryPlan(const Graph &graph) {
  for (const auto &node : graph.nodes())
    if (node->attrs().find(kBufferAttr))
      return true;
  return false;
}

std::vector<PlacedValue> readMemoryPlan(const Graph &graph) {
  if (!hasMemoryPlan(graph))
    return {};
  size_t end = graph.nodes().size();
  std::vector<PlacedValue> placed;
  std::unordered_map<const Value *, size_t> index; // into `placed`
  for (size_t i = 0; i < end; ++i) {
    const Node &node = *graph.nodes()[i];
    for (const Value *operand : node.operands()) {
      auto def = index.find(operand);
      if (def != index.end())
        placed[def->second].lastUse = i;
    }
    std::vector<BufferSlice> slices = nodeBuffers(node);
    for (size_t r = 0; r < node.numResults(); ++r) {
      PlacedValue p;
      p.node = &node;
      p.value = node.result(r);
      p.position = p.lastUse = i;
      p.bytes = typeBytes(p.value->type);
      if (slices.size() == node.numResults())
        p.slice = slices[r];
      index[p.value] = placed.size();
      placed.push_back(p);
    }
  }
  auto liveToEnd = [&](const Value *v) {
    auto def = index.find(v);
    if (def != index.end())
      placed[def->second].lastUse = end;
  };
  for (const Value *v : graph.results())
    liveToEnd(v);
  for (const Update &u : graph.updates())
    liveToEnd(u.source);
  return placed;
}

std::string checkMemoryPlan(const Graph &graph) {
  if (!hasMemoryPlan(graph))
    return {};
  return PlanChecker(graph).run();
}

} // namespace kiln
