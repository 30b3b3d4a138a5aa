// The runtime around the operators: RNG seeding and state, intra-op threads, CUDA queries, version.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

#include <mutex>

#include "common.h"

namespace freeadv {
namespace {

EXPORT(manualSeed) {
  uint64_t seed = static_cast<uint64_t>(toInt(info.Env(), info[0], "seed"));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < at::detail::getCUDAHooks().getNumGPUs(); i++) {
      // Context::defaultGenerator exists in libtorch 1.x and 2.x (the hooks' method was renamed in 2.x)
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
  }
  return info.Env().Undefined();
}
EXPORT(getRngState) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return wrap(info.Env(), gen.get_state());
}
EXPORT(setRngState) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(tensorOf(info[0]));
  return info.Env().Undefined();
}
EXPORT(setNumThreads) {
  int n = static_cast<int>(toInt(info.Env(), info[0], "threads"));
  if (n < 1) throw torchError(info.Env(), "setNumThreads: threads must be >= 1");
  at::set_num_threads(n);
  return info.Env().Undefined();
}
EXPORT(getNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
EXPORT(cudaIsAvailable) { return Napi::Boolean::New(info.Env(), at::hasCUDA()); }
// Whether the addon was built against a CUDA libtorch (cudaIsAvailable also needs a GPU and its driver).
EXPORT(cudaBuilt) { return Napi::Boolean::New(info.Env(), FREEADV_CUDA ? true : false); }
EXPORT(cudaDeviceCount) {
  return Napi::Number::New(info.Env(), at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0);
}
EXPORT(version) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torch", Napi::String::New(env, TORCH_VERSION));
  o.Set("parallel", Napi::String::New(env, at::get_parallel_info()));
  o.Set("config", Napi::String::New(env, at::show_config()));
  return o;
}

}  // namespace

void registerRuntime(Napi::Env env, Napi::Object exports) {
  REG(manualSeed); REG(getRngState); REG(setRngState); REG(setNumThreads); REG(getNumThreads);
  REG(cudaIsAvailable); REG(cudaBuilt); REG(cudaDeviceCount);
  REG(version);
}

}  // namespace freeadv
