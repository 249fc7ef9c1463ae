// Builds a small regression model, trains it with a compiled training step on
// random data, and runs the trained params through a compiled inference graph.
#include <kiln/kiln.h>

#include <cstdio>
#include <random>

int main() try {
  kiln::GraphBuilder b("regressor");
  kiln::Tensor x = b.input("x", kiln::DType::F32, {64, 8});
  kiln::Tensor y = b.input("y", kiln::DType::F32, {64, 1});
  kiln::nn::Linear fc1(8, 32), fc2(32, 1);
  fc1.bind(b, "fc1.");
  fc2.bind(b, "fc2.");
  kiln::Tensor prediction = fc2.forward(kiln::nn::relu(fc1.forward(x)));
  b.output(kiln::nn::mse(prediction, y), "loss");
  b.output(prediction, "prediction");
  std::unique_ptr<kiln::Graph> graph = b.finish();

  // Random inputs; the target is a fixed function of them.
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  kiln::HostTensor xs(kiln::DType::F32, {64, 8}), ys(kiln::DType::F32, {64, 1});
  for (int i = 0; i < 64; ++i) {
    float target = 0;
    for (int j = 0; j < 8; ++j)
      target += (j % 2 ? 0.5f : -0.25f) * (xs.dataAs<float>()[i * 8 + j] = normal(rng));
    ys.dataAs<float>()[i] = target;
  }

  kiln::CompiledTrainingStep trainer =
      kiln::compileTrainingStep(*graph, "loss", kiln::optim::adam(0.01));
  for (int step = 1; step <= 30; ++step) {
    double loss = trainer.step({{"x", xs}, {"y", ys}}).at("loss").getDouble(0);
    if (step == 1 || step % 10 == 0)
      std::printf("step %d loss %.6f\n", step, loss);
  }

  kiln::CompiledGraph model = kiln::compile(*graph);
  model.setParams(trainer.params()); // the step's params (its optimizer state is not used)
  kiln::NamedTensors out = model.run({{"x", xs}, {"y", ys}});
  std::printf("inference on %s: loss %.6f, prediction[0] %.4f (target %.4f)\n",
              model.target().c_str(), out.at("loss").getDouble(0),
              out.at("prediction").getDouble(0), ys.getDouble(0));
} catch (const kiln::Error &e) { // a located one-line message
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
