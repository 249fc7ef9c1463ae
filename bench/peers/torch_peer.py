"""The workloads in PyTorch, eager or torch.compile: the models of
examples/models/Models.h with the same parameter names, loaded from Kiln's
exported initial values, and torch.optim's SGD (momentum) and AdamW."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import GPT, MLP, OPTIMIZERS


class Mlp(nn.Module):
    def __init__(self, inputs, hidden, classes):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(inputs, hidden), nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc = nn.Linear(128, 10)

    def forward(self, images):
        h = F.max_pool2d(F.relu(self.conv1(images)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.relu(self.conv3(h))
        return self.fc(h.mean(dim=(2, 3)))


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        # As Kiln: scores scaled by 1/sqrt(head dim), causal mask, softmax.
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        y = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class MlpBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), Attention(d, heads)
        self.ln2, self.mlp = nn.LayerNorm(d), MlpBlock(d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, vocab, d_model, heads, layers, block):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, d_model), nn.Embedding(block, d_model)
        self.blocks = nn.ModuleList([Block(d_model, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens):
        x = self.tok_emb(tokens) + self.pos_emb.weight[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def build(model, params, config=None):
    """The model (`config`: its sizes, default the CPU workload's) with the
    values of `params` (numpy, by Kiln's names); None keeps torch's own init."""
    config = config or {"mlp": MLP, "gpt": GPT}.get(model, {})
    net = {"mlp": Mlp, "cnn": Cnn, "gpt": Gpt}[model](**config)
    if params is None:
        return net
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    missing = set(net.state_dict()) ^ set(state)
    if missing:
        raise SystemExit(f"parameter names differ from Kiln's: {sorted(missing)}")
    net.load_state_dict(state, strict=True)
    return net


def optimizer(model, net):
    o = OPTIMIZERS[model]
    if o["kind"] == "momentum":
        return torch.optim.SGD(net.parameters(), lr=o["lr"], momentum=o["momentum"])
    return torch.optim.AdamW(net.parameters(), lr=o["lr"], betas=o["betas"], eps=o["eps"],
                             weight_decay=o["weight_decay"])


def make_step(model, train, params, inputs, labels, compiled, threads, config=None, device="cpu"):
    """A function running one step on `device`; what it returns gives the loss."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build(model, params, config).to(device)
    x = torch.from_numpy(inputs).to(device)
    if model == "gpt":
        x = x.long()
    y = torch.from_numpy(labels).long().reshape(-1).to(device)
    forward = torch.compile(net) if compiled else net

    def loss_of():
        logits = forward(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)

    if not train:
        net.eval()

        def infer():
            with torch.no_grad():
                return loss_of()
        return infer
    opt = optimizer(model, net)
    opt_step = torch.compile(opt.step, fullgraph=False) if compiled else opt.step

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        opt_step()
        return loss
    return step


def loss_value(loss):
    return float(loss.detach())


def versions():
    return {"torch": torch.__version__}
