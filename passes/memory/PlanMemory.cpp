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
/// at the same index of its result, so that the result may overwrite the
/// operand: an elementwise op, or a node with a body (a fusion) in which the
/// operand flows only through elementwise ops.
bool readsOnlyWhereItWrites(const Node &node, const Value *operand) {
  if (std::find(node.operands().begin(), node.operands().end(), operand) == node.operands().end())
    return true;
  if (!node.body())
    return node.info().has(OpTrait::Elementwise);
  for (size_t k = 0; k < node.operands().size(); ++k) {
    if (node.operand(k) != operand)
      continue;
    std::unordered_set<const Value *> reached = {&node.body()->arguments()[k]->value};
    for (const auto &inner : node.body()->nodes()) {
      bool reads = false;
      for (const Value *v : inner->operands())
        reads = reads || reached.count(v);
      if (!reads)
        continue;
      if (!inner->info().has(OpTrait::Elementwise))
        return false;
      reached.insert(inner->result());
    }
  }
  return true;
}

/// The graph's data flow by node index, in the order the graph had on entry.
struct DataFlow {
  std::vector<Node *> nodes;
  std::unordered_map<const Node *, int> index;
  std::vector<std::vector<int>> producers; // distinct nodes whose values node i reads
  std::vector<std::vector<int>> users;     // distinct nodes that read node i's value
  std::vector<int64_t> bytes;
  std::vector<bool> liveToEnd; // a result or an update source
  std::unordered_map<const Argument *, std::vector<int>> argReaders; // distinct, ascending
  std::unordered_map<const Argument *, bool> argReadAtEnd; // a result or an update source

  explicit DataFlow(const Graph &graph) {
    for (const auto &node : graph.nodes()) {
      index[node.get()] = int(nodes.size());
      nodes.push_back(node.get());
    }
    size_t n = nodes.size();
    producers.resize(n);
    users.resize(n);
    bytes.resize(n);
    liveToEnd.assign(n, false);
    for (size_t i = 0; i < n; ++i) {
      bytes[i] = byteSize(nodes[i]->type());
      for (const Value *v : nodes[i]->operands()) {
        if (v->arg) {
          std::vector<int> &readers = argReaders[v->arg];
          if (readers.empty() || readers.back() != int(i))
            readers.push_back(int(i));
          continue;
        }
        int p = indexOf(v);
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
        liveToEnd[size_t(indexOf(v))] = true;
    };
    for (const Value *v : graph.results())
      markEnd(v);
    for (const Update &u : graph.updates())
      markEnd(u.source);
  }

  int indexOf(const Value *v) const { return v->node ? index.at(v->node) : -1; }
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

/// `update %target, %N` that may be written into the target's buffer, given a
/// schedule that runs the target's other readers before node `source`.
struct InPlaceUpdate {
  const Argument *target;
  int source;
};

/// The updates that can be written in place, and for each the extra schedule
/// edges (reader -> source) that make it so. An update is left out when a
/// reader of the target's old value depends on the new value (no schedule
/// can run it first), when the old value is read at the end of the step, or
/// when the source node reads the target other than element by element.
std::vector<InPlaceUpdate> findInPlaceUpdates(const Graph &graph, const DataFlow &flow,
                                              std::vector<std::vector<int>> &extraSuccessors) {
  size_t n = flow.nodes.size();
  extraSuccessors.assign(n, {});
  std::vector<bool> claimed(n, false);
  std::vector<InPlaceUpdate> updates;
  for (const Update &update : graph.updates()) {
    int source = flow.indexOf(update.source);
    if (source < 0 || claimed[size_t(source)] || flow.bytes[size_t(source)] == 0 ||
        flow.readAtEnd(update.target))
      continue;
    const std::vector<int> &readers = flow.readersOf(update.target);
    if (!readsOnlyWhereItWrites(*flow.nodes[size_t(source)], &update.target->value))
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
    claimed[size_t(source)] = true;
    updates.push_back({update.target, source});
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
  auto arenaBytes = [&](int i) {
    return inArgument[size_t(i)] ? 0 : alignUp(flow.bytes[size_t(i)]);
  };
  auto netBytes = [&](int i) {
    bool outlives = flow.liveToEnd[size_t(i)] || !flow.users[size_t(i)].empty();
    int64_t net = outlives ? arenaBytes(i) : 0;
    for (int p : flow.producers[size_t(i)])
      if (!flow.liveToEnd[size_t(p)] && remainingUsers[size_t(p)] == 1)
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
  std::vector<BufferSlice> slices; // by node index
  int64_t arenaBytes = 0;
  size_t updatesInPlace = 0; // each saves copying the new value at the end of the step
};

Plan planSchedule(const DataFlow &flow, const std::vector<InPlaceUpdate> &updates,
                  std::vector<int> order) {
  size_t n = flow.nodes.size();
  std::vector<int> pos(n);
  for (size_t k = 0; k < n; ++k)
    pos[size_t(order[k])] = int(k);
  std::vector<int> last(n);
  for (size_t i = 0; i < n; ++i) {
    last[i] = flow.liveToEnd[i] ? int(n) : pos[i];
    for (int u : flow.users[i])
      last[i] = std::max(last[i], pos[size_t(u)]);
  }

  // Updates in place where this schedule runs the target's readers first.
  std::vector<const Argument *> inArgument(n, nullptr);
  for (const InPlaceUpdate &u : updates) {
    bool safe = true;
    for (int reader : flow.readersOf(u.target))
      safe = safe && (reader == u.source || pos[size_t(reader)] < pos[size_t(u.source)]);
    if (safe)
      inArgument[size_t(u.source)] = u.target;
  }
  Plan plan;
  for (const Argument *target : inArgument)
    plan.updatesInPlace += target ? 1 : 0;

  // Elementwise results take the slice of an operand dying at them.
  std::vector<int> owner(n);
  for (size_t i = 0; i < n; ++i)
    owner[i] = int(i);
  for (int y : order) {
    const Node &node = *flow.nodes[size_t(y)];
    if (inArgument[size_t(y)] || flow.bytes[size_t(y)] == 0)
      continue;
    for (const Value *v : node.operands()) {
      int x = flow.indexOf(v);
      if (x >= 0 && !inArgument[size_t(x)] && flow.bytes[size_t(x)] == flow.bytes[size_t(y)] &&
          last[size_t(x)] == pos[size_t(y)] && readsOnlyWhereItWrites(node, v)) {
        owner[size_t(y)] = owner[size_t(x)];
        break;
      }
    }
  }

  std::vector<Block> blocks;
  std::vector<int> blockOf(n, -1);
  for (int i : order) { // owners come first in the schedule
    if (inArgument[size_t(i)] || flow.bytes[size_t(i)] == 0)
      continue;
    int o = owner[size_t(i)];
    if (o == i) {
      blockOf[size_t(i)] = int(blocks.size());
      blocks.push_back({alignUp(flow.bytes[size_t(i)]), pos[size_t(i)], last[size_t(i)], 0});
    } else {
      blockOf[size_t(i)] = blockOf[size_t(o)];
      Block &block = blocks[size_t(blockOf[size_t(i)])];
      block.last = std::max(block.last, last[size_t(i)]);
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

  plan.slices.resize(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t bytes = flow.bytes[i];
    if (inArgument[i])
      plan.slices[i] = {"%" + inArgument[i]->name, 0, bytes};
    else if (blockOf[i] >= 0)
      plan.slices[i] = {"arena", best[size_t(blockOf[i])].offset, best[size_t(blockOf[i])].offset + bytes};
    else
      plan.slices[i] = {"arena", 0, 0};
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
    std::vector<bool> inArgument(n, false);
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
      Attribute slice(best.slices[size_t(i)]);
      const Attribute *old = flow.nodes[size_t(i)]->attrs().find(kBufferAttr);
      changed = changed || !old || *old != slice;
      flow.nodes[size_t(i)]->attrs().set(kBufferAttr, std::move(slice));
    }
    graph.reorderNodes(order);
    return changed ? PassResult::Changed : PassResult::Unchanged;
  }
};

} // namespace

std::unique_ptr<Pass> createPlanMemoryPass() { return std::make_unique<PlanMemory>(); }

} // namespace kiln
