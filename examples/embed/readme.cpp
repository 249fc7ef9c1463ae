#include <kiln/kiln.h>

#include <cmath>
#include <cstdio>

int main() {
  kiln::GraphBuilder b("linear");              // fit y = x w^T + b with SGD
  kiln::Tensor x = b.input("x", kiln::DType::F32, {16, 3});
  kiln::Tensor y = b.input("y", kiln::DType::F32, {16, 1});
  kiln::nn::Linear fc(3, 1);
  fc.bind(b, "fc.");                           // params fc.weight, fc.bias
  b.output(kiln::nn::mse(fc.forward(x), y), "loss");
  std::unique_ptr<kiln::Graph> graph = b.finish();

  kiln::CompiledTrainingStep trainer =         // JIT-compiled for the CPU
      kiln::compileTrainingStep(*graph, "loss", kiln::optim::sgd(0.1));
  kiln::HostTensor xs(kiln::DType::F32, {16, 3}), ys(kiln::DType::F32, {16, 1});
  for (int i = 0; i < 48; ++i)
    xs.setDouble(i, std::sin(i));
  for (int i = 0; i < 16; ++i)
    ys.setDouble(i, xs.getDouble(3 * i) - 2 * xs.getDouble(3 * i + 1) + 0.5);
  for (int step = 0; step <= 100; ++step) {
    double loss = trainer.step({{"x", xs}, {"y", ys}}).at("loss").getDouble(0);
    if (step % 25 == 0)
      std::printf("step %d loss %.6f\n", step, loss);
  }
  trainer.save("linear.safetensors");          // params and optimizer state
}
