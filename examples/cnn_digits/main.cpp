// cnn_digits: the digits data set (examples/data/README.md) as 1x8x8 NCHW
// images through a small convolutional network, trained through the C++ API
// (kiln::compileTrainingStep) and scored on held-out images.
#include "examples/common/ExampleMain.h"
#include "examples/mlp_digits/DigitsMain.h"
#include "frontend/nn/Functional.h"
#include "ir/Graph.h"

#include <algorithm>

namespace {

const char *kUsage = R"(usage: cnn_digits [--steps=N] [--batch=B] [--lr=X] [--optimizer=NAME]
                  [--seed=S] [--data=PATH] [--target=cpu|interp] [--threads=N]
                  [--save=DIR]

Trains a small CNN on the digits data set, each 8x8 image a 1x8x8 NCHW
tensor:
  conv3x3(1->16, pad 1) relu, conv3x3(16->32, pad 1) relu, maxpool 2 -> 32x4x4,
  conv3x3(32->64, pad 1) relu, maxpool 2 -> 64x2x2, flatten, linear 256->10,
with a mean cross-entropy loss; the training step (forward, gradients,
optimizer update) is one compiled graph run once per batch. 360 of the 1797
images are held out (the same fixed split as mlp_digits).

options:
  --steps=N         training steps (default 500, about 22 epochs)
  --batch=B         images per step (default 64)
  --optimizer=NAME  sgd, momentum, nesterov, adam or adamw (default adam)
  --lr=X            learning rate (default 0.003 for adam and adamw, 0.05 for
                    momentum and nesterov, 0.3 for sgd)
  --seed=S          initial params and batch order (default 0)
  --threads=N       threads of the CPU kernels (default 0: OpenMP's default)
  --data=PATH       the data set (default examples/data/digits.csv.gz)
  --target=T        cpu (the default when the build has it) or interp
  --save=DIR        after training, write DIR/model.kir, params.safetensors
                    and heldout.safetensors, as mlp_digits --save does

Prints a progress line every 100 steps (on a terminal with a bar in between)
and the held-out accuracy. Exits 0 when it is at least 0.95 (every seed 0..7
reaches 0.975 to 0.981 with the defaults), 1 when lower, 2 on a usage or
data error.
)";

using kiln::Tensor;
using kiln::examples::DigitsDataset;

/// PyTorch: conv1 = nn.Conv2d(1, 16, 3, padding=1), conv2 = nn.Conv2d(16, 32,
/// 3, padding=1), conv3 = nn.Conv2d(32, 64, 3, padding=1), fc = nn.Linear(256, 10).
class DigitsCnn : public kiln::nn::Module {
public:
  DigitsCnn() : kiln::nn::Module("DigitsCnn") {
    kiln::Conv2dOptions same(/*stride=*/1, /*padding=*/1);
    conv1 = registerModule("conv1", std::make_shared<kiln::nn::Conv2d>(1, 16, 3, same));
    conv2 = registerModule("conv2", std::make_shared<kiln::nn::Conv2d>(16, 32, 3, same));
    conv3 = registerModule("conv3", std::make_shared<kiln::nn::Conv2d>(32, 64, 3, same));
    fc = registerModule("fc",
                        std::make_shared<kiln::nn::Linear>(64 * 2 * 2, DigitsDataset::kClasses));
  }

  /// images [N, 1, 8, 8] -> logits [N, 10].
  Tensor forward(Tensor images) override {
    Tensor h = kiln::nn::relu(conv1->forward(images));
    h = kiln::maxPool2d(kiln::nn::relu(conv2->forward(h)), kiln::Pool2dOptions(2));
    h = kiln::maxPool2d(kiln::nn::relu(conv3->forward(h)), kiln::Pool2dOptions(2));
    return fc->forward(kiln::reshape(h, {h.dim(0), -1}));
  }

  std::shared_ptr<kiln::nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<kiln::nn::Linear> fc;
};

/// Inputs `images` f32[batch, 1, 8, 8], `labels` i32[batch]; results `loss`, `accuracy`.
std::unique_ptr<kiln::Graph> buildDigitsCnn(int64_t batch) {
  kiln::GraphBuilder b("cnn_digits");
  Tensor images = b.input("images", kiln::DType::F32, {batch, 1, 8, 8}, kiln::FeedRange{0, 1});
  Tensor labels = b.input("labels", kiln::DType::I32, {batch},
                          kiln::FeedRange{0, double(DigitsDataset::kClasses)});
  DigitsCnn model;
  model.bind(b);
  Tensor logits = model.forward(images);
  b.output(kiln::nn::crossEntropy(logits, labels), "loss");
  b.output(kiln::nn::accuracy(logits, labels), "accuracy");
  return b.finish();
}

/// Rows `rows[0..count)` of `data` as f32[count, 1, 8, 8] (the row-major 64
/// pixels are the 8x8 image) and their labels.
kiln::NamedTensors cnnFeeds(const DigitsDataset &data, const int64_t *rows, int64_t count) {
  kiln::HostTensor flat = kiln::examples::gatherImages(data, rows, count);
  kiln::HostTensor images(kiln::DType::F32, {count, 1, 8, 8});
  std::copy(flat.dataAs<float>(), flat.dataAs<float>() + flat.numElements(),
            images.dataAs<float>());
  return {{"images", images}, {"labels", kiln::examples::gatherLabels(data, rows, count)}};
}

int run(int argc, char **argv) {
  kiln::examples::DigitsExample example;
  example.usage = kUsage;
  example.defaultSteps = 500;
  example.accuracyBound = 0.95;
  example.model = [](const kiln::examples::DigitsTrainingOptions &) {
    return kiln::examples::DigitsModel{"cnn 16-32-64 + linear on 1x8x8 images", buildDigitsCnn,
                                       cnnFeeds};
  };
  return kiln::examples::runDigitsExample(example, argc, argv);
}

} // namespace

int main(int argc, char **argv) {
  return kiln::examples::exampleMain("cnn_digits", run, argc, argv);
}
