"""The workloads in JAX under jax.jit: the models of examples/models/Models.h
as functions of a dict of Kiln's parameter names, with SGD (momentum) and
AdamW written out as torch.optim computes them (no optax)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from common import GPT, OPTIMIZERS


def linear(p, name, x, bias=True):
    y = x @ p[name + ".weight"].T
    return y + p[name + ".bias"] if bias else y


def layer_norm(p, name, x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased, as PyTorch and Kiln
    return (x - mean) / jnp.sqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]


def conv(p, name, x):
    y = jax.lax.conv_general_dilated(x, p[name + ".weight"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + p[name + ".bias"][None, :, None, None]


def max_pool2(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def mlp(p, x):
    h = jax.nn.relu(linear(p, "fc1", x))
    h = jax.nn.relu(linear(p, "fc2", h))
    return linear(p, "fc3", h)


def cnn(p, x):
    h = max_pool2(jax.nn.relu(conv(p, "conv1", x)))
    h = max_pool2(jax.nn.relu(conv(p, "conv2", h)))
    h = jax.nn.relu(conv(p, "conv3", h))
    return linear(p, "fc", h.mean(axis=(2, 3)))


def gpt(p, tokens):
    b, t = tokens.shape
    d, heads = GPT["d_model"], GPT["heads"]
    x = p["tok_emb.weight"][tokens] + p["pos_emb.weight"][:t]
    mask = jnp.tril(jnp.ones((t, t), dtype=bool))
    for i in range(GPT["layers"]):
        n = f"blocks.{i}"
        qkv = linear(p, n + ".attn.qkv", layer_norm(p, n + ".ln1", x))
        split = lambda y: y.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)
        q, k, v = (split(qkv[..., j * d:(j + 1) * d]) for j in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d // heads))
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        y = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = x + linear(p, n + ".attn.proj", y)
        h = jax.nn.gelu(linear(p, n + ".mlp.fc", layer_norm(p, n + ".ln2", x)), approximate=True)
        x = x + linear(p, n + ".mlp.proj", h)
    return linear(p, "head", layer_norm(p, "ln_f", x), bias=False)


def cross_entropy(logits, labels):
    logits = logits.reshape(-1, logits.shape[-1])
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, labels.reshape(-1, 1), axis=1).mean()


def sgd_momentum(o, params, state, grads):
    # torch.optim.SGD: buf = momentum * buf + g (buf = g at the first step,
    # which zeros give), p -= lr * buf.
    bufs = {k: o["momentum"] * state["buf"][k] + grads[k] for k in params}
    return {k: params[k] - o["lr"] * bufs[k] for k in params}, {"buf": bufs}


def adamw(o, params, state, grads):
    # torch.optim.AdamW: decay first, then Adam with bias correction.
    b1, b2 = o["betas"]
    t = state["step"] + 1.0
    m = {k: b1 * state["m"][k] + (1 - b1) * grads[k] for k in params}
    v = {k: b2 * state["v"][k] + (1 - b2) * grads[k] * grads[k] for k in params}
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    new = {}
    for k in params:
        decayed = params[k] * (1 - o["lr"] * o["weight_decay"])
        denom = jnp.sqrt(v[k]) / jnp.sqrt(c2) + o["eps"]
        new[k] = decayed - (o["lr"] / c1) * m[k] / denom
    return new, {"m": m, "v": v, "step": t}


def make_step(model, train, params, inputs, labels, compiled, threads):
    forward = {"mlp": mlp, "cnn": cnn, "gpt": gpt}[model]
    params = {k: jnp.asarray(v) for k, v in params.items()}
    x = jnp.asarray(inputs)
    y = jnp.asarray(labels.astype(np.int32))

    def loss_fn(p, x, y):
        return cross_entropy(forward(p, x), y)

    if not train:
        infer = jax.jit(loss_fn)
        return lambda: (infer(params, x, y), None)
    o = OPTIMIZERS[model]
    zeros = lambda: {k: jnp.zeros_like(v) for k, v in params.items()}
    if o["kind"] == "momentum":
        update, state = sgd_momentum, {"buf": zeros()}
    else:
        update, state = adamw, {"m": zeros(), "v": zeros(), "step": jnp.float32(0)}

    def train_step(p, s, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        p, s = update(o, p, s, grads)
        return loss, p, s

    jitted = jax.jit(train_step, donate_argnums=(0, 1))
    carry = {"p": params, "s": state}

    def step():
        loss, carry["p"], carry["s"] = jitted(carry["p"], carry["s"], x, y)
        return loss, carry["p"]
    return step


def loss_value(out):
    loss, params = out  # params: None for a forward pass
    jax.block_until_ready((loss, params))
    return float(loss)


def versions():
    return {"jax": jax.__version__, "jaxlib": __import__("jaxlib").__version__}
