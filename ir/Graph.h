// Kiln's graph IR: SSA values, one generic node type, static types.
#pragma once

#include "ir/Attribute.h"
#include "ir/Op.h"
#include "runtime/DType.h"
#include "runtime/Safetensors.h"
#include "runtime/Shape.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

/// A tensor type: element type and static shape, printed `f32[4,8]`.
struct TensorType {
  DType dtype = DType::F32;
  Shape shape;

  std::string toString() const;
  int64_t numElements() const { return shape.numElements(); }
  bool operator==(const TensorType &o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const TensorType &o) const { return !(*this == o); }
};

/// A place in a source file (1-based line and column); unknown when line == 0.
struct Location {
  std::string file;
  int line = 0;
  int col = 0;

  bool known() const { return line > 0; }
  /// `file:line:col`, or just `file` when the position is unknown.
  std::string toString() const;
};

enum class ArgRole : uint8_t { Input, Param, State };
std::string_view argRoleName(ArgRole role);

struct Argument;
class Graph;
class Node;

/// An SSA value: a result of a node or a graph argument.
struct Value {
  TensorType type;
  Node *node = nullptr;    // the defining node; null for an argument
  Argument *arg = nullptr; // the argument; null for a node result
  unsigned index = 0;      // which result of `node` it is
};

/// A graph argument. `attrs` holds a param's initializer (`init = "normal"`, ...).
struct Argument {
  std::string name;
  ArgRole role = ArgRole::Input;
  AttrMap attrs;
  Location loc;
  Value value;
};

/// One operation. Every op has one result, `result()`, except a `fusion`
/// (a multi-output kernel), which has one result per value its body returns:
/// `result(0)` (= `result()`) ... `result(numResults() - 1)`.
class Node {
public:
  Node(OpKind kind, std::vector<Value *> operands, AttrMap attrs, TensorType type, Location loc);
  /// A node with one result per type (at least one).
  Node(OpKind kind, std::vector<Value *> operands, AttrMap attrs, const std::vector<TensorType> &types,
       Location loc);
  ~Node();

  OpKind kind() const { return kind_; }
  const OpInfo &info() const { return opInfo(kind_); }
  const std::vector<Value *> &operands() const { return operands_; }
  Value *operand(size_t i) const { return operands_[i]; }
  void setOperand(size_t i, Value *v) { operands_[i] = v; }
  const AttrMap &attrs() const { return attrs_; }
  AttrMap &attrs() { return attrs_; }
  const Location &loc() const { return loc_; }
  Value *result() { return &result_; }
  const Value *result() const { return &result_; }
  const TensorType &type() const { return result_.type; }
  size_t numResults() const { return 1 + extraResults_.size(); }
  Value *result(size_t i) { return i == 0 ? &result_ : extraResults_[i - 1].get(); }
  const Value *result(size_t i) const { return i == 0 ? &result_ : extraResults_[i - 1].get(); }
  /// The types of all results, in order.
  std::vector<TensorType> resultTypes() const;

  /// The attribute `name`, or the op's default from OpKind.def. The attribute
  /// must be one the op accepts and (after verification) must be present or defaulted.
  const Attribute &attr(const std::string &name) const;
  int64_t intAttr(const std::string &name) const { return attr(name).asInt(); }
  const std::vector<int64_t> &intsAttr(const std::string &name) const {
    return attr(name).asIntList();
  }
  bool boolAttr(const std::string &name) const { return attr(name).asBool(); }

  /// A `fusion` node's body: a graph whose arguments are the operands (named
  /// arg0, arg1, ...) and whose results are the node's results, in order.
  /// Null for every other op.
  Graph *body() const { return body_.get(); }
  void setBody(std::unique_ptr<Graph> body);

private:
  OpKind kind_;
  std::vector<Value *> operands_;
  AttrMap attrs_;
  Location loc_;
  Value result_;
  std::vector<std::unique_ptr<Value>> extraResults_; // results 1.. (stable addresses)
  std::unique_ptr<Graph> body_;
};

/// How a multi-output node's result is told apart in `.kir` and JSON: `#i`
/// after the node's name (`%3#1`); empty for a one-result node or an argument.
std::string resultSuffix(const Value &v);

/// A `update %param, %value` statement: after the step, the param or state
/// argument holds `source`.
struct Update {
  Argument *target;
  Value *source;
  Location loc;
};

/// A graph: arguments, nodes in a topological order, results and updates.
class Graph {
public:
  explicit Graph(std::string name, Location loc = {}) : name_(std::move(name)), loc_(std::move(loc)) {}
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;

  const std::string &name() const { return name_; }
  void setName(std::string name) { name_ = std::move(name); }
  const Location &loc() const { return loc_; }

  Argument *addArgument(std::string name, TensorType type, ArgRole role, AttrMap attrs = {},
                        Location loc = {});
  /// Appends a node. The type must already be correct: use `inferType` (ir/Verifier.h)
  /// or the builder, which infer it; the verifier checks it.
  Node *addNode(OpKind kind, std::vector<Value *> operands, AttrMap attrs, TensorType type,
                Location loc = {});
  /// Appends a node with one result per type (a multi-output `fusion`).
  Node *addNode(OpKind kind, std::vector<Value *> operands, AttrMap attrs,
                const std::vector<TensorType> &types, Location loc = {});
  void addResult(Value *v, std::string name = {});
  void addUpdate(Argument *target, Value *source, Location loc = {});

  const std::vector<std::unique_ptr<Argument>> &arguments() const { return args_; }
  const std::vector<std::unique_ptr<Node>> &nodes() const { return nodes_; }
  const std::vector<Value *> &results() const { return results_; }
  /// The name of result `i`: as given, or `out<i>`.
  std::string resultName(size_t i) const;
  bool hasResultName(size_t i) const { return !resultNames_[i].empty(); }
  const std::vector<Update> &updates() const { return updates_; }

  Argument *findArgument(const std::string &name) const;
  /// Removes the nodes for which `pred` is true (they must have no remaining users).
  size_t eraseNodesIf(const std::function<bool(const Node &)> &pred);

  /// Makes every use of `from` (operands, results, update sources) use `to`.
  /// Returns the number of uses changed.
  size_t replaceAllUses(const Value *from, Value *to);
  /// Reorders the nodes so that every operand is defined before its use,
  /// keeping the current order wherever it already is valid (a stable
  /// topological sort). Passes may append nodes anywhere and call this.
  void sortNodesTopologically();
  /// Moves the nodes into `order`, which must hold exactly the graph's nodes
  /// (a schedule chosen by a pass).
  void reorderNodes(const std::vector<Node *> &order);

private:
  std::string name_;
  Location loc_;
  std::vector<std::unique_ptr<Argument>> args_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Value *> results_;
  std::vector<std::string> resultNames_;
  std::vector<Update> updates_;
};

/// What a file holds: one or more graphs, and weights (param values) when the
/// file came with a safetensors file.
struct Module {
  std::vector<std::unique_ptr<Graph>> graphs;
  TensorMap weights;
};

} // namespace kiln
