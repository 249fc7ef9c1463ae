#include "passes/memory/PlanMemory.h"

#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

namespace {

int64_t alignUp(int64_t bytes) {
  return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

int64_t byteSize(const TensorType &type) {
  return type.numElements() * int64_t(dtypeSize(type.dtype));
}

/// Whether `node` reads each element of `operand` only to compute the element
/// at the same index of its result `resultIndex`, so that this result may
/// overwrite the operand: an elementwise op, or a node with a body (a fusion)
/// in which the operand flows only through elementwise ops. A multi-output
/// fusion runs its body nodes in order, each writing its result as it goes,
/// so there the result's node must also come after every body node reading
/// the operand, and the operand must not be yielded itself.
bool readsOnlyWhereItWrites(const Node &node, const Value *operand, size_t resultIndex) {
  if (std::find(node.operands().begin(), node.operands().end(), operand) == node.operands().end())
    return true;
  if (!node.body())
    return node.info().has(OpTrait::Elementwise);
  const Graph &body = *node.body();
  const Node *writer = body.results()[resultIndex]->node;
  bool multiOutput = node.numResults() > 1;
  if (multiOutput && !writer)
    return false;
  for (size_t k = 0; k < node.operands().size(); ++k) {
    if (node.operand(k) != operand)
      continue;
    const Value *argument = &body.arguments()[k]->value;
    if (multiOutput &&
        std::find(body.results().begin(), body.results().end(), argument) != body.results().end())
      return false;
    std::unordered_set<const Value *> reached = {argument};
    bool written = false;
    for (const auto &inner : body.nodes()) {
      bool reads = false, readsArgument = false;
      for (const Value *v : inner->operands()) {
        reads = reads || reached.count(v);
        readsArgument = readsArgument || v == argument;
      }
      if (multiOutput && written && readsArgument)
        return false;
      written = written || inner.get() == writer;
      if (!reads)
        continue;
      if (!inner->info().has(OpTrait::Elementwise))
        return false;
      reached.insert(inner->result());
    }
  }
  return true;
}

/// The graph's data flow by node index, in the order the graph had on entry,
/// and its values (node results) by value index.
struct DataFlow {
  std::vector<Node *> nodes;
  std::unordered_map<const Node *, int> index;
  std::vector<std::vector<int>> producers; // distinct nodes whose values node i reads
  std::vector<std::vector<int>> users;     // distinct nodes that read a value of node i
  std::vector<int64_t> nodeBytes;          // of all of node i's results
  std::vector<bool> nodeLiveToEnd;         // some result of node i is a result or update source
  std::vector<std::vector<int>> valuesOf;  // node i's value indices, in result order

  std::vector<const Value *> values;
  std::unordered_map<const Value *, int> valueIndex;
  std::vector<int> nodeOf;                 // value -> node index
  std::vector<std::vector<int>> readers;   // value -> distinct nodes reading it
  std::vector<int64_t> bytes;              // value -> bytes
  std::vector<bool> liveToEnd;             // value -> a result or an update source
  std::unordered_map<const Argument *, std::vector<int>> argReaders; // distinct, ascending
  std::unordered_map<const Argument *, bool> argReadAtEnd; // a result or an update source

  explicit DataFlow(const Graph &graph) {
    for (const auto &node : graph.nodes()) {
      index[node.get()] = int(nodes.size());
      valuesOf.emplace_back();
      for (size_t r = 0; r < node->numResults(); ++r) {
        valueIndex[node->result(r)] = int(values.size());
        valuesOf.back().push_back(int(values.size()));
        values.push_back(node->result(r));
        nodeOf.push_back(int(nodes.size()));
        bytes.push_back(byteSize(node->result(r)->type));
      }
      nodes.push_back(node.get());
    }
    size_t n = nodes.size();
    producers.resize(n);
    users.resize(n);
    nodeBytes.assign(n, 0);
    readers.resize(values.size());
    liveToEnd.assign(values.size(), false);
    for (size_t i = 0; i < n; ++i) {
      for (int v : valuesOf[i])
        nodeBytes[i] += bytes[size_t(v)];
      for (const Value *v : nodes[i]->operands()) {
        if (v->arg) {
          std::vector<int> &argUsers = argReaders[v->arg];
          if (argUsers.empty() || argUsers.back() != int(i))
            argUsers.push_back(int(i));
          continue;
        }
        std::vector<int> &valueUsers = readers[size_t(valueIndex.at(v))];
        if (valueUsers.empty() || valueUsers.back() != int(i))
          valueUsers.push_back(int(i));
        int p = index.at(v->node);
        if (std::find(producers[i].begin(), producers[i].end(), p) == producers[i].end()) {
          producers[i].push_back(p);
          users[size_t(p)].push_back(int(i));
        }
      }
    }
    auto markEnd = [&](const Value *v) {
      if (v->arg)
        argReadAtEnd[v->arg] = true;
      else
        liveToEnd[size_t(valueIndex.at(v))] = true;
    };
    for (const Value *v : graph.results())
      markEnd(v);
    for (const Update &u : graph.updates())
      markEnd(u.source);
    nodeLiveToEnd.assign(n, false);
    for (size_t v = 0; v < values.size(); ++v)
      if (liveToEnd[v])
        nodeLiveToEnd[size_t(nodeOf[v])] = true;
  }

  /// The value index of a node result; -1 for an argument.
  int valueOf(const Value *v) const { return v->node ? valueIndex.at(v) : -1; }
  const std::vector<int> &readersOf(const Argument *arg) const {
    static const std::vector<int> none;
    auto it = argReaders.find(arg);
    return it == argReaders.end() ? none : it->second;
  }
  bool readAtEnd(const Argument *arg) const {
    auto it = argReadAtEnd.find(arg);
    return it != argReadAtEnd.end() && it->second;
  }
};

/// `update %target, %V` that may be written into the target's buffer, given a
/// schedule that runs the target's other readers before value `source`'s node.
struct InPlaceUpdate {
  const Argument *target;
  int source; // value index
};

/// The updates that can be written in place, and for each the extra schedule
/// edges (reader -> source node) that make it so. An update is left out when
/// a reader of the target's old value depends on the new value (no schedule
/// can run it first), when the old value is read at the end of the step, or
/// when the source node reads the target other than element by element.
std::vector<InPlaceUpdate> findInPlaceUpdates(const Graph &graph, const DataFlow &flow,
                                              std::vector<std::vector<int>> &extraSuccessors) {
  size_t n = flow.nodes.size();
  extraSuccessors.assign(n, {});
  std::vector<bool> claimed(flow.values.size(), false);
  std::vector<InPlaceUpdate> updates;
  for (const Update &update : graph.updates()) {
    int value = flow.valueOf(update.source);
    if (value < 0 || claimed[size_t(value)] || flow.bytes[size_t(value)] == 0 ||
        flow.readAtEnd(update.target))
      continue;
    int source = flow.nodeOf[size_t(value)];
    const std::vector<int> &readers = flow.readersOf(update.target);
    if (!readsOnlyWhereItWrites(*flow.nodes[size_t(source)], &update.target->value,
                                update.source->index))
      continue;
    // Nodes that must follow the source, with the edges added so far.
    std::vector<bool> after(n, false);
    std::vector<int> stack = {source};
    after[size_t(source)] = true;
    while (!stack.empty()) {
      int i = stack.back();
      stack.pop_back();
      const std::vector<int> &extra = extraSuccessors[size_t(i)];
      for (const std::vector<int> *next : {&flow.users[size_t(i)], &extra})
        for (int j : *next)
          if (!after[size_t(j)]) {
            after[size_t(j)] = true;
            stack.push_back(j);
          }
    }
    bool feasible = true;
    for (int reader : readers)
      feasible = feasible && (reader == source || !after[size_t(reader)]);
    if (!feasible)
      continue;
    for (int reader : readers)
      if (reader != source)
        extraSuccessors[size_t(reader)].push_back(source);
    claimed[size_t(value)] = true;
    updates.push_back({update.target, value});
  }
  return updates;
}

enum class Priority {
  KeepOrder, // the current order, moved only where in-place updates need it
  FreeFirst, // a node that frees at least what it allocates first, else the current order
  LeastNet,  // the node with the smallest (allocated - freed) bytes
};

/// A topological order by list scheduling under `priority`; ties go to the
/// earlier node of the current order.
std::vector<int> listSchedule(const DataFlow &flow, const std::vector<std::vector<int>> &extraSuccessors,
                              const std::vector<bool> &inArgument, Priority priority) {
  size_t n = flow.nodes.size();
  std::vector<std::vector<int>> successors(n);
  std::vector<int> pending(n, 0);
  for (size_t i = 0; i < n; ++i) {
    successors[i] = flow.users[i];
    successors[i].insert(successors[i].end(), extraSuccessors[i].begin(), extraSuccessors[i].end());
    std::sort(successors[i].begin(), successors[i].end());
    successors[i].erase(std::unique(successors[i].begin(), successors[i].end()), successors[i].end());
    for (int j : successors[i])
      ++pending[size_t(j)];
  }
  std::vector<int> remainingUsers(n);
  for (size_t i = 0; i < n; ++i)
    remainingUsers[i] = int(flow.users[i].size());
  auto arenaBytes = [&](int i) { // of node i's results outside argument buffers
    int64_t total = 0;
    for (int v : flow.valuesOf[size_t(i)])
      total += inArgument[size_t(v)] ? 0 : alignUp(flow.bytes[size_t(v)]);
    return total;
  };
  auto netBytes = [&](int i) {
    bool outlives = flow.nodeLiveToEnd[size_t(i)] || !flow.users[size_t(i)].empty();
    int64_t net = outlives ? arenaBytes(i) : 0;
    for (int p : flow.producers[size_t(i)])
      if (!flow.nodeLiveToEnd[size_t(p)] && remainingUsers[size_t(p)] == 1)
        net -= arenaBytes(p);
    return net;
  };

  std::vector<int> ready;
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0)
      ready.push_back(int(i));
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t best = 0;
    int64_t bestKey = INT64_MAX;
    for (size_t r = 0; r < ready.size(); ++r) {
      int64_t key = 0;
      if (priority == Priority::FreeFirst)
        key = netBytes(ready[r]) > 0 ? 1 : 0;
      else if (priority == Priority::LeastNet)
        key = netBytes(ready[r]);
      if (key < bestKey || (key == bestKey && ready[r] < ready[best])) {
        best = r;
        bestKey = key;
      }
    }
    int node = ready[best];
    ready.erase(ready.begin() + std::ptrdiff_t(best));
    order.push_back(node);
    for (int p : flow.producers[size_t(node)])
      --remainingUsers[size_t(p)];
    for (int j : successors[size_t(node)])
      if (--pending[size_t(j)] == 0)
        ready.push_back(j);
  }
  return order;
}

/// Every node as late as possible: list scheduling from the end, taking the
/// latest node of the current order whose readers are all placed. Values only
/// the backward pass reads are then computed there, not kept from the forward.
std::vector<int> lateSchedule(const DataFlow &flow, const std::vector<std::vector<int>> &extraSuccessors) {
  size_t n = flow.nodes.size();
  std::vector<std::vector<int>> predecessors(n);
  std::vector<int> unplacedSuccessors(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int> successors = flow.users[i];
    successors.insert(successors.end(), extraSuccessors[i].begin(), extraSuccessors[i].end());
    std::sort(successors.begin(), successors.end());
    successors.erase(std::unique(successors.begin(), successors.end()), successors.end());
    unplacedSuccessors[i] = int(successors.size());
    for (int j : successors)
      predecessors[size_t(j)].push_back(int(i));
  }
  std::vector<int> ready, order;
  for (size_t i = 0; i < n; ++i)
    if (unplacedSuccessors[i] == 0)
      ready.push_back(int(i));
  while (!ready.empty()) {
    auto latest = std::max_element(ready.begin(), ready.end());
    int node = *latest;
    ready.erase(latest);
    order.push_back(node);
    for (int p : predecessors[size_t(node)])
      if (--unplacedSuccessors[size_t(p)] == 0)
        ready.push_back(p);
  }
  std::reverse(order.begin(), order.end());
  return order;
}

/// Bytes of the arena kept for one or more values sharing a slice in place
/// over the union of their live ranges, [first, last] in schedule positions.
struct Block {
  int64_t size = 0;
  int first = 0, last = 0;
  int64_t offset = 0;
};

enum class Fit { Best, First };

/// Places `blocks` in `order`, each at the best-fitting (or lowest) gap among
/// the already placed blocks whose live ranges intersect its own. Returns the
/// arena size.
int64_t placeBlocks(std::vector<Block> &blocks, const std::vector<size_t> &order, Fit fit) {
  std::vector<size_t> placed;
  std::vector<std::pair<int64_t, int64_t>> busy;
  int64_t arena = 0;
  for (size_t b : order) {
    Block &block = blocks[b];
    busy.clear();
    for (size_t p : placed)
      if (blocks[p].first <= block.last && block.first <= blocks[p].last)
        busy.emplace_back(blocks[p].offset, blocks[p].offset + blocks[p].size);
    std::sort(busy.begin(), busy.end());
    int64_t cursor = 0, bestOffset = -1, bestGap = INT64_MAX;
    for (const auto &[begin, end] : busy) {
      int64_t gap = begin - cursor;
      if (gap >= block.size && gap < bestGap) {
        bestOffset = cursor;
        bestGap = gap;
        if (fit == Fit::First)
          break;
      }
      cursor = std::max(cursor, end);
    }
    block.offset = bestOffset >= 0 ? bestOffset : cursor;
    arena = std::max(arena, block.offset + block.size);
    placed.push_back(b);
  }
  return arena;
}

/// A complete plan for one schedule.
struct Plan {
  std::vector<int> order;          // node indices of DataFlow
  std::vector<BufferSlice> slices; // by value index
  int64_t arenaBytes = 0;
  size_t updatesInPlace = 0; // each saves copying the new value at the end of the step
};

Plan planSchedule(const DataFlow &flow, const std::vector<InPlaceUpdate> &updates,
                  std::vector<int> order) {
  size_t n = flow.nodes.size(), values = flow.values.size();
  std::vector<int> pos(n);
  for (size_t k = 0; k < n; ++k)
    pos[size_t(order[k])] = int(k);
  auto written = [&](size_t v) { return pos[size_t(flow.nodeOf[v])]; };
  std::vector<int> last(values);
  for (size_t v = 0; v < values; ++v) {
    last[v] = flow.liveToEnd[v] ? int(n) : written(v);
    for (int u : flow.readers[v])
      last[v] = std::max(last[v], pos[size_t(u)]);
  }

  // Updates in place where this schedule runs the target's readers first.
  std::vector<const Argument *> inArgument(values, nullptr);
  for (const InPlaceUpdate &u : updates) {
    int source = flow.nodeOf[size_t(u.source)];
    bool safe = true;
    for (int reader : flow.readersOf(u.target))
      safe = safe && (reader == source || pos[size_t(reader)] < pos[size_t(source)]);
    if (safe)
      inArgument[size_t(u.source)] = u.target;
  }
  Plan plan;
  for (const Argument *target : inArgument)
    plan.updatesInPlace += target ? 1 : 0;

  // Results read element by element take the slice of an operand dying at
  // them; each operand's slice goes to one result at most.
  std::vector<int> owner(values);
  for (size_t v = 0; v < values; ++v)
    owner[v] = int(v);
  for (int i : order) {
    const Node &node = *flow.nodes[size_t(i)];
    std::vector<int> taken;
    for (int y : flow.valuesOf[size_t(i)]) {
      if (inArgument[size_t(y)] || flow.bytes[size_t(y)] == 0)
        continue;
      for (const Value *v : node.operands()) {
        int x = flow.valueOf(v);
        if (x >= 0 && !inArgument[size_t(x)] && flow.bytes[size_t(x)] == flow.bytes[size_t(y)] &&
            last[size_t(x)] == pos[size_t(i)] &&
            std::find(taken.begin(), taken.end(), x) == taken.end() &&
            readsOnlyWhereItWrites(node, v, flow.values[size_t(y)]->index)) {
          owner[size_t(y)] = owner[size_t(x)];
          taken.push_back(x);
          break;
        }
      }
    }
  }

  std::vector<Block> blocks;
  std::vector<int> blockOf(values, -1);
  for (int i : order) // owners come first in the schedule
    for (int v : flow.valuesOf[size_t(i)]) {
      if (inArgument[size_t(v)] || flow.bytes[size_t(v)] == 0)
        continue;
      int o = owner[size_t(v)];
      if (o == v) {
        blockOf[size_t(v)] = int(blocks.size());
        blocks.push_back({alignUp(flow.bytes[size_t(v)]), written(size_t(v)), last[size_t(v)], 0});
      } else {
        blockOf[size_t(v)] = blockOf[size_t(o)];
        Block &block = blocks[size_t(blockOf[size_t(v)])];
        block.last = std::max(block.last, last[size_t(v)]);
      }
    }

  // Largest first; among equal sizes, two tie orders. Keep the smallest arena.
  std::vector<size_t> bySize(blocks.size()), byLifetime(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b)
    bySize[b] = byLifetime[b] = b;
  std::stable_sort(bySize.begin(), bySize.end(),
                   [&](size_t a, size_t b) { return blocks[a].size > blocks[b].size; });
  std::stable_sort(byLifetime.begin(), byLifetime.end(), [&](size_t a, size_t b) {
    const Block &x = blocks[a], &y = blocks[b];
    if (x.size != y.size)
      return x.size > y.size;
    return x.last - x.first > y.last - y.first;
  });
  plan.arenaBytes = INT64_MAX;
  std::vector<Block> best;
  for (const std::vector<size_t> *blockOrder : {&bySize, &byLifetime})
    for (Fit fit : {Fit::Best, Fit::First}) {
      std::vector<Block> trial = blocks;
      int64_t arena = placeBlocks(trial, *blockOrder, fit);
      if (arena < plan.arenaBytes) {
        plan.arenaBytes = arena;
        best = std::move(trial);
      }
    }
  if (blocks.empty())
    plan.arenaBytes = 0;

  plan.slices.resize(values);
  for (size_t v = 0; v < values; ++v) {
    int64_t bytes = flow.bytes[v];
    if (inArgument[v])
      plan.slices[v] = {"%" + inArgument[v]->name, 0, bytes};
    else if (blockOf[v] >= 0)
      plan.slices[v] = {"arena", best[size_t(blockOf[v])].offset, best[size_t(blockOf[v])].offset + bytes};
    else
      plan.slices[v] = {"arena", 0, 0};
  }
  plan.order = std::move(order);
  return plan;
}

class PlanMemory final : public Pass {
  std::string_view name() const override { return "plan-memory"; }
  std::string_view description() const override {
    return "schedules nodes to reduce peak memory and gives every value a 64-byte aligned "
           "buffer slice (arena offsets, in-place reuse, updates in place); must run last";
  }

  PassResult run(Graph &graph) override {
    DataFlow flow(graph);
    size_t n = flow.nodes.size();
    std::vector<std::vector<int>> extraSuccessors;
    std::vector<InPlaceUpdate> updates = findInPlaceUpdates(graph, flow, extraSuccessors);
    std::vector<bool> inArgument(flow.values.size(), false);
    for (const InPlaceUpdate &u : updates)
      inArgument[size_t(u.source)] = true;

    std::vector<std::vector<int>> schedules;
    schedules.emplace_back(n);
    for (size_t i = 0; i < n; ++i)
      schedules[0][i] = int(i);
    for (Priority priority : {Priority::KeepOrder, Priority::FreeFirst, Priority::LeastNet}) {
      std::vector<int> order = listSchedule(flow, extraSuccessors, inArgument, priority);
      if (std::find(schedules.begin(), schedules.end(), order) == schedules.end())
        schedules.push_back(std::move(order));
    }
    std::vector<int> late = lateSchedule(flow, extraSuccessors);
    if (std::find(schedules.begin(), schedules.end(), late) == schedules.end())
      schedules.push_back(std::move(late));
    Plan best;
    best.arenaBytes = INT64_MAX;
    for (std::vector<int> &order : schedules) {
      Plan plan = planSchedule(flow, updates, std::move(order));
      if (plan.arenaBytes < best.arenaBytes ||
          (plan.arenaBytes == best.arenaBytes && plan.updatesInPlace > best.updatesInPlace))
        best = std::move(plan);
    }

    bool changed = false;
    std::vector<Node *> order;
    for (size_t k = 0; k < n; ++k) {
      int i = best.order[k];
      order.push_back(flow.nodes[size_t(i)]);
      changed = changed || i != int(k);
      Node &node = *flow.nodes[size_t(i)];
      std::vector<BufferSlice> slices;
      for (int v : flow.valuesOf[size_t(i)])
        slices.push_back(best.slices[size_t(v)]);
      changed = changed || nodeBuffers(node) != slices;
      setNodeBuffers(node, slices);
    }
    graph.reorderNodes(order);
    return changed ? PassResult::Changed : PassResult::Unchanged;
  }
};

} // namespace

std::unique_ptr<Pass> createPlanMemoryPass() { return std::make_unique<PlanMemory>(); }

} // namespace kiln
