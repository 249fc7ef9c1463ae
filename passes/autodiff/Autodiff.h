// Reverse-mode automatic differentiation over the graph IR.
#pragma once

#include <memory>
#include <vector>

namespace kiln {

class Graph;
class Pass;
struct Argument;
struct Value;

/// Appends to `graph` the nodes that compute the gradient of the scalar float
/// value `loss` with respect to each argument of `wrt` (float arguments of
/// any role), and returns those gradient values in the order of `wrt`.
///
/// Reverse mode (Glow's `differentiate`, micrograd): nodes are visited in
/// reverse order; each applies its op's vector-Jacobian rule to its cotangent;
/// contributions to a value used several times are summed; broadcasts reduce
/// their gradient back to the operand's shape. Only nodes that both depend on
/// some `wrt` argument and reach the loss get rules applied, so nothing is
/// built that no gradient needs. An argument the loss does not depend on gets
/// a zero constant.
///
/// A gradient that would have to flow through an op without the
/// `Differentiable` trait (argmax, comparisons, floor, a cast to an integer
/// type, ...) throws `kiln::Error` located at that op.
std::vector<Value *> appendGradients(Graph &graph, Value *loss, const std::vector<Argument *> &wrt);

/// The `autodiff` pass: differentiates the graph's first result (a float
/// scalar) with respect to every float param and appends the gradients as
/// results named `grad.NAME`.
std::unique_ptr<Pass> createAutodiffPass();

} // namespace kiln
