#include "examples/models/Models.h"

#include "frontend/nn/Functional.h"

namespace kiln::examples {

Mlp::Mlp(const MlpConfig &config) : nn::Module("Mlp") {
  fc1 = registerModule("fc1", std::make_shared<nn::Linear>(config.inputs, config.hidden));
  fc2 = registerModule("fc2", std::make_shared<nn::Linear>(config.hidden, config.hidden));
  fc3 = registerModule("fc3", std::make_shared<nn::Linear>(config.hidden, config.classes));
}

Tensor Mlp::forward(Tensor x) {
  Tensor h = nn::relu(fc1->forward(x));
  h = nn::relu(fc2->forward(h));
  return fc3->forward(h);
}

std::unique_ptr<Graph> buildMlp(const MlpConfig &config) {
  GraphBuilder b("mlp");
  Tensor x = b.input("x", DType::F32, {config.batch, config.inputs});
  Tensor labels = b.input("labels", DType::I32, {config.batch},
                          FeedRange{0, double(config.classes)});
  Mlp model(config);
  model.bind(b);
  b.output(nn::crossEntropy(model.forward(x), labels), "loss");
  return b.finish();
}

} // namespace kiln::examples
