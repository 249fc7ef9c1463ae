// The example models of shared/BENCHMARKS.md (CPU workloads), built with the
// nn modules. Each build function returns a verified graph whose one result is
// the scalar mean cross-entropy loss, named `loss` (no optimizer updates: the
// training step is made from it by autodiff and an optimizer pass).
//
// Parameter names mirror a natural PyTorch implementation of the same model,
// so its state_dict loads unchanged (see each model's class comment).
#pragma once

#include "frontend/nn/Module.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

class Graph;

namespace examples {

/// mlp: 784-512-512-10, ReLU. PyTorch: fc1 = nn.Linear(784, 512),
/// fc2 = nn.Linear(512, 512), fc3 = nn.Linear(512, 10).
struct MlpConfig {
  int64_t batch = 128;
  int64_t inputs = 784;
  int64_t hidden = 512;
  int64_t classes = 10;
};

class Mlp : public nn::Module {
public:
  explicit Mlp(const MlpConfig &config = {});
  Tensor forward(Tensor x) override;

  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

/// Inputs `x` f32[batch, 784] and `labels` i32[batch] {low = 0, high = 10}.
std::unique_ptr<Graph> buildMlp(const MlpConfig &config = {});

/// cnn: NCHW 3x32x32 -> conv3x3(32, pad 1) relu maxpool2 -> conv3x3(64, pad 1)
/// relu maxpool2 -> conv3x3(128, pad 1) relu -> global mean pool -> linear 10.
/// PyTorch: conv1 = nn.Conv2d(3, 32, 3, padding=1), conv2 = nn.Conv2d(32, 64,
/// 3, padding=1), conv3 = nn.Conv2d(64, 128, 3, padding=1), fc = nn.Linear(128, 10).
struct CnnConfig {
  int64_t batch = 32;
  int64_t channels = 3;
  int64_t size = 32;
  int64_t classes = 10;
};

class Cnn : public nn::Module {
public:
  explicit Cnn(const CnnConfig &config = {});
  Tensor forward(Tensor images) override;

  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::Linear> fc;
};

/// Inputs `images` f32[batch, 3, 32, 32] and `labels` i32[batch] {low = 0, high = 10}.
std::unique_ptr<Graph> buildCnn(const CnnConfig &config = {});

/// gpt: decoder-only transformer, pre-LayerNorm blocks, causal multi-head
/// attention with a fused qkv projection, 4x MLP with tanh-GELU, learned
/// positions, final LayerNorm, untied linear head without bias. PyTorch
/// (nanoGPT-like) names:
///   tok_emb.weight [vocab, d]            nn.Embedding(vocab, d)
///   pos_emb.weight [block, d]            nn.Embedding(block, d)
///   blocks.N.ln1.{weight,bias} [d]       nn.LayerNorm(d)
///   blocks.N.attn.qkv.{weight [3d, d], bias [3d]}   nn.Linear(d, 3d); q, k, v in that order
///   blocks.N.attn.proj.{weight [d, d], bias [d]}    nn.Linear(d, d)
///   blocks.N.ln2.{weight,bias} [d]       nn.LayerNorm(d)
///   blocks.N.mlp.fc.{weight [4d, d], bias [4d]}     nn.Linear(d, 4d)
///   blocks.N.mlp.proj.{weight [d, 4d], bias [d]}    nn.Linear(4d, d)
///   ln_f.{weight,bias} [d]               nn.LayerNorm(d)
///   head.weight [vocab, d]               nn.Linear(d, vocab, bias=False)
/// with blocks = nn.ModuleList([Block() for _ in range(layers)]).
struct GptConfig {
  int64_t batch = 8;
  int64_t seqLen = 128;
  int64_t vocab = 512;
  int64_t dModel = 256;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t blockSize = 128; // learned positions
};

class GptAttention : public nn::Module {
public:
  GptAttention(int64_t dModel, int64_t heads);
  Tensor forward(Tensor x) override;

  int64_t heads;
  std::shared_ptr<nn::Linear> qkv, proj;
};

class GptMlp : public nn::Module {
public:
  explicit GptMlp(int64_t dModel);
  Tensor forward(Tensor x) override;

  std::shared_ptr<nn::Linear> fc, proj;
};

class GptBlock : public nn::Module {
public:
  GptBlock(int64_t dModel, int64_t heads);
  Tensor forward(Tensor x) override;

  std::shared_ptr<nn::LayerNorm> ln1, ln2;
  std::shared_ptr<GptAttention> attn;
  std::shared_ptr<GptMlp> mlp;
};

class Gpt : public nn::Module {
public:
  explicit Gpt(const GptConfig &config = {});
  /// tokens [B, T] -> logits [B, T, vocab].
  Tensor forward(Tensor tokens) override;

  GptConfig config;
  std::shared_ptr<nn::Embedding> tokEmb, posEmb;
  std::shared_ptr<nn::ModuleList<GptBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> lnF;
  std::shared_ptr<nn::Linear> head;
};

/// Inputs `tokens` and `targets` i32[batch, seqLen] {low = 0, high = vocab}.
std::unique_ptr<Graph> buildGpt(const GptConfig &config = {});

/// "mlp", "cnn", "gpt".
const std::vector<std::string> &exampleModelNames();
/// The model of that name with its default configuration; a kiln::Error otherwise.
std::unique_ptr<Graph> buildExampleModel(const std::string &name);

} // namespace examples
} // namespace kiln
