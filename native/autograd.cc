// Autograd entry points: requires-grad and .grad of a tensor, backward and grad, grad mode and inference mode.

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/variable.h>

#include <memory>
#include <vector>

#include "common.h"

namespace freeadv {
namespace {

// Backward passes run outside autocast, as PyTorch recommends (`with autocast(): loss = ...` then
// loss.backward() outside): each backward op runs in the dtype its forward op produced.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

EXPORT(requiresGrad) { return Napi::Boolean::New(info.Env(), tensorOf(info[0]).requires_grad()); }
EXPORT(setRequiresGrad) {
  at::Tensor t = tensorOf(info[0]);
  t.set_requires_grad(info[1].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}
EXPORT(isLeaf) { return Napi::Boolean::New(info.Env(), tensorOf(info[0]).is_leaf()); }
EXPORT(getGrad) { return wrap(info.Env(), tensorOf(info[0]).grad()); }
EXPORT(setGrad) {
  at::Tensor t = tensorOf(info[0]);
  if (info[1].IsUndefined() || info[1].IsNull()) t.mutable_grad() = at::Tensor();
  else t.mutable_grad() = tensorOf(info[1]);
  return info.Env().Undefined();
}
// backward(outputs[], gradOutputs[]|undefined, retainGraph, createGraph)
EXPORT(backward) {
  auto outputs = tensorVec(info[0]);
  auto grads = tensorVec(info[1]);
  bool retain = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  bool create = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  NoAutocast off;
  torch::autograd::backward(outputs, grads, retain ? c10::optional<bool>(true) : c10::nullopt, create);
  return info.Env().Undefined();
}
// grad(outputs[], inputs[], gradOutputs[]|undefined, retainGraph, createGraph, allowUnused) -> handles[]
EXPORT(grad) {
  Napi::Env env = info.Env();
  auto outputs = tensorVec(info[0]);
  auto inputs = tensorVec(info[1]);
  auto gouts = tensorVec(info[2]);
  bool retain = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  bool create = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  bool unused = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  NoAutocast off;
  auto res = torch::autograd::grad(outputs, inputs, gouts, retain ? c10::optional<bool>(true) : c10::nullopt,
                                   create, unused);
  auto arr = Napi::Array::New(env, res.size());
  for (size_t i = 0; i < res.size(); i++) arr.Set(i, res[i].defined() ? wrap(env, res[i]) : env.Null());
  return arr;
}
EXPORT(isGradEnabled) { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); }
EXPORT(setGradEnabled) {
  c10::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}
// Inference mode is an RAII guard in C++; the JS scope holds one on a stack and pops it at scope end.
std::vector<std::unique_ptr<c10::InferenceMode>> g_inference;
EXPORT(enterInferenceMode) {
  g_inference.push_back(std::make_unique<c10::InferenceMode>(true));
  return Napi::Number::New(info.Env(), static_cast<double>(g_inference.size()));
}
EXPORT(exitInferenceMode) {
  if (!g_inference.empty()) g_inference.pop_back();
  return Napi::Number::New(info.Env(), static_cast<double>(g_inference.size()));
}
EXPORT(isInferenceMode) { return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled()); }

}  // namespace

void registerAutograd(Napi::Env env, Napi::Object exports) {
  REG(requiresGrad); REG(setRequiresGrad); REG(isLeaf); REG(getGrad); REG(setGrad); REG(backward); REG(grad);
  REG(isGradEnabled); REG(setGradEnabled); REG(enterInferenceMode); REG(exitInferenceMode); REG(isInferenceMode);
}

}  // namespace freeadv
