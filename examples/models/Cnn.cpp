#include "examples/models/Models.h"

#include "frontend/nn/Functional.h"

namespace kiln::examples {

Cnn::Cnn(const CnnConfig &config) : nn::Module("Cnn") {
  Conv2dOptions samePadding(/*stride=*/1, /*padding=*/1);
  conv1 = registerModule("conv1", std::make_shared<nn::Conv2d>(config.channels, 32, 3, samePadding));
  conv2 = registerModule("conv2", std::make_shared<nn::Conv2d>(32, 64, 3, samePadding));
  conv3 = registerModule("conv3", std::make_shared<nn::Conv2d>(64, 128, 3, samePadding));
  fc = registerModule("fc", std::make_shared<nn::Linear>(128, config.classes));
}

Tensor Cnn::forward(Tensor images) {
  Tensor h = maxPool2d(nn::relu(conv1->forward(images)), Pool2dOptions(2));
  h = maxPool2d(nn::relu(conv2->forward(h)), Pool2dOptions(2));
  h = nn::relu(conv3->forward(h));
  Tensor pooled = reduceMean(h, {2, 3}); // global mean pool: [N, 128]
  return fc->forward(pooled);
}

std::unique_ptr<Graph> buildCnn(const CnnConfig &config) {
  GraphBuilder b("cnn");
  Tensor images =
      b.input("images", DType::F32, {config.batch, config.channels, config.size, config.size});
  Tensor labels = b.input("labels", DType::I32, {config.batch},
                          FeedRange{0, double(config.classes)});
  Cnn model(config);
  model.bind(b);
  b.output(nn::crossEntropy(model.forward(images), labels), "loss");
  return b.finish();
}

} // namespace kiln::examples
