// The runtime around the operators: RNG seeding and state, intra-op threads, autocast (mixed precision) state,
// CUDA queries, version.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

#include <mutex>

#include "common.h"
#include "compat.h"

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
// The default generator of a device given as a string (argument `i`): 'cpu' when absent, or a GPU's ('cuda:N';
// 'cuda': the current one). libtorch keeps one generator per device: what runs on a GPU draws from that GPU's.
at::Generator generatorOf(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return at::detail::getDefaultCPUGenerator();
  if (!info[i].IsString()) typeError(info.Env(), "expected a device string such as 'cpu' or 'cuda:0'");
  c10::Device d(info[i].As<Napi::String>().Utf8Value());
  if (d.is_cpu()) return at::detail::getDefaultCPUGenerator();
  if (!d.is_cuda()) throw torchError(info.Env(), "RNG state: no generator for device " + d.str());
  if (!at::hasCUDA()) throw torchError(info.Env(), "RNG state of " + d.str() + ": this process has no CUDA device");
  return at::globalContext().defaultGenerator(d);
}
// getRngState(device?) -> the generator's state (a CPU uint8 tensor); setRngState(state, device?).
EXPORT(getRngState) {
  auto gen = generatorOf(info, 0);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return wrap(info.Env(), gen.get_state());
}
EXPORT(setRngState) {
  auto gen = generatorOf(info, 1);
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
// Whether ATen may use oneDNN (mkldnn) kernels (PyTorch's torch.backends.mkldnn.enabled). CPUs without AVX-512
// never run bfloat16 convolutions and matrix products there (ATen checks the CPU first); switching it off gives
// that path on any CPU.
EXPORT(setOneDnnEnabled) {
  at::globalContext().setUserEnabledMkldnn(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}
EXPORT(oneDnnEnabled) { return Napi::Boolean::New(info.Env(), at::globalContext().userEnabledMkldnn()); }
// Autocast is thread-local state, like grad mode: while it is enabled for a device type, the dispatcher's
// Autocast key casts the inputs of the operators on autocast's lists (convolutions, matrix products: to the
// low-precision type; reductions, losses: to float32) before they run, for every operator this addon calls.
// getAutocast(device) -> [enabled, dtype code]; setAutocast(device, enabled, dtype code).
c10::DeviceType autocastDevice(Napi::Env env, const Napi::Value& v) {
  std::string d = v.As<Napi::String>().Utf8Value();
  if (d == "cpu") return c10::DeviceType::CPU;
  if (d == "cuda") return c10::DeviceType::CUDA;
  throw torchError(env, "autocast: device type must be cpu or cuda, got " + d);
}
EXPORT(getAutocast) {
  Napi::Env env = info.Env();
  c10::DeviceType dev = autocastDevice(env, info[0]);
#if FREEADV_TORCH_2_4
  bool on = at::autocast::is_autocast_enabled(dev);
  at::ScalarType dt = at::autocast::get_autocast_dtype(dev);
#else
  bool cpu = dev == c10::DeviceType::CPU;
  bool on = cpu ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
  at::ScalarType dt = cpu ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
  auto r = Napi::Array::New(env, 2);
  r.Set(0u, Napi::Boolean::New(env, on));
  r.Set(1u, Napi::Number::New(env, static_cast<int>(dt)));
  return r;
}
EXPORT(setAutocast) {
  Napi::Env env = info.Env();
  c10::DeviceType dev = autocastDevice(env, info[0]);
  if (!info[1].IsBoolean()) throw torchError(env, "setAutocast: enabled must be a boolean");
  bool on = info[1].As<Napi::Boolean>().Value();
  auto code = toInt(env, info[2], "dtype");
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions))
    throw torchError(env, "setAutocast: unknown dtype code " + std::to_string(code));
  auto dt = static_cast<at::ScalarType>(code);
  if (on && dt != at::kBFloat16 && dt != at::kHalf)
    throw torchError(env, std::string("setAutocast: autocast computes in bfloat16 or float16, not ") + c10::toString(dt));
#if FREEADV_TORCH_2_4
  at::autocast::set_autocast_dtype(dev, dt);
  at::autocast::set_autocast_enabled(dev, on);
#else
  if (dev == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dt);
    at::autocast::set_cpu_enabled(on);
  } else {
    at::autocast::set_autocast_gpu_dtype(dt);
    at::autocast::set_enabled(on);
  }
#endif
  return env.Undefined();
}
// Python's `with torch.autocast(...)` counts nesting and clears the cache of casted weights when the outermost
// one exits; autocastEnter/autocastExit do the same for the TypeScript helper.
EXPORT(autocastEnter) { return Napi::Number::New(info.Env(), at::autocast::increment_nesting()); }
EXPORT(autocastExit) {
  int n = at::autocast::decrement_nesting();
  if (n == 0) at::autocast::clear_cache();
  return Napi::Number::New(info.Env(), n);
}
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
  REG(manualSeed); REG(getRngState); REG(setRngState); REG(setNumThreads); REG(getNumThreads); REG(setOneDnnEnabled); REG(oneDnnEnabled);
  REG(getAutocast); REG(setAutocast); REG(autocastEnter); REG(autocastExit);
  REG(cudaIsAvailable); REG(cudaBuilt); REG(cudaDeviceCount);
  REG(version);
}

}  // namespace freeadv
