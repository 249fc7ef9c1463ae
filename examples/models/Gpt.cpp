#include "examples/models/Models.h"

#include "frontend/nn/Functional.h"

namespace kiln::examples {

GptAttention::GptAttention(int64_t dModel, int64_t numHeads)
    : nn::Module("GptAttention"), heads(numHeads) {
  qkv = registerModule("qkv", std::make_shared<nn::Linear>(dModel, 3 * dModel));
  proj = registerModule("proj", std::make_shared<nn::Linear>(dModel, dModel));
}

Tensor GptAttention::forward(Tensor x) {
  return nn::causalSelfAttention(x, heads, qkv->weight->value(), qkv->bias->value(),
                                 proj->weight->value(), proj->bias->value());
}

GptMlp::GptMlp(int64_t dModel) : nn::Module("GptMlp") {
  fc = registerModule("fc", std::make_shared<nn::Linear>(dModel, 4 * dModel));
  proj = registerModule("proj", std::make_shared<nn::Linear>(4 * dModel, dModel));
}

Tensor GptMlp::forward(Tensor x) {
  return proj->forward(nn::gelu(fc->forward(x), nn::GeluApproximation::Tanh));
}

GptBlock::GptBlock(int64_t dModel, int64_t heads) : nn::Module("GptBlock") {
  ln1 = registerModule("ln1", std::make_shared<nn::LayerNorm>(dModel));
  attn = registerModule("attn", std::make_shared<GptAttention>(dModel, heads));
  ln2 = registerModule("ln2", std::make_shared<nn::LayerNorm>(dModel));
  mlp = registerModule("mlp", std::make_shared<GptMlp>(dModel));
}

Tensor GptBlock::forward(Tensor x) {
  x = x + attn->forward(ln1->forward(x));
  return x + mlp->forward(ln2->forward(x));
}

Gpt::Gpt(const GptConfig &c) : nn::Module("Gpt"), config(c) {
  tokEmb = registerModule("tok_emb", std::make_shared<nn::Embedding>(c.vocab, c.dModel));
  posEmb = registerModule("pos_emb", std::make_shared<nn::Embedding>(c.blockSize, c.dModel));
  blocks = registerModule("blocks", std::make_shared<nn::ModuleList<GptBlock>>());
  for (int64_t i = 0; i < c.layers; ++i)
    blocks->push_back(std::make_shared<GptBlock>(c.dModel, c.heads));
  lnF = registerModule("ln_f", std::make_shared<nn::LayerNorm>(c.dModel));
  head = registerModule("head", std::make_shared<nn::Linear>(c.dModel, c.vocab, /*bias=*/false));
}

Tensor Gpt::forward(Tensor tokens) {
  int64_t seqLen = tokens.dim(1);
  if (seqLen > config.blockSize)
    tokens.builder().fail("gpt sequence length " + std::to_string(seqLen) +
                          " exceeds the block size " + std::to_string(config.blockSize));
  // Positions 0..T-1 are the first T rows of the position table (pos_emb(arange(T))).
  Tensor positions = posEmb->weight->value();
  if (seqLen < config.blockSize)
    positions = sliceAxis(positions, 0, 0, seqLen);
  Tensor x = tokEmb->forward(tokens) + positions;
  for (const auto &block : *blocks)
    x = block->forward(x);
  return head->forward(lnF->forward(x));
}

std::unique_ptr<Graph> buildGpt(const GptConfig &config) {
  GraphBuilder b("gpt");
  Shape tokensShape{config.batch, config.seqLen};
  FeedRange vocab{0, double(config.vocab)};
  Tensor tokens = b.input("tokens", DType::I32, tokensShape, vocab);
  Tensor targets = b.input("targets", DType::I32, tokensShape, vocab);
  Gpt model(config);
  model.bind(b);
  b.output(nn::crossEntropy(model.forward(tokens), targets), "loss");
  return b.finish();
}

} // namespace kiln::examples
