// Declarations shared by the files of the native layer (module.cc describes the design): tensor handles, the
// mapping of C++ exceptions to JS errors that every export goes through (EXPORT), argument conversions used
// across files, and each file's registration function.
//
// Threading contract: every function of the addon must be called from the main JavaScript thread (jpeg.cc's
// excepted: see module.cc).
//
// Include this header after the library headers a file needs: it defines macros (EXPORT, REG).
#pragma once

#include <napi.h>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

namespace freeadv {

// ---------------------------------------------------------------------------------------------------------------
// Tensor handles (tensors.cc): a Napi::External owning a heap at::Tensor.
// ---------------------------------------------------------------------------------------------------------------
// A new handle owning t (undefined for an undefined tensor).
Napi::Value wrap(Napi::Env env, at::Tensor t);
// The tensor behind a handle; a TypeError for anything else, an Error for a disposed handle.
const at::Tensor& tensorOf(const Napi::Value& v);
// An array of handles (null/undefined entries become undefined tensors; null/undefined itself: no tensors).
std::vector<at::Tensor> tensorVec(const Napi::Value& v);

// ---------------------------------------------------------------------------------------------------------------
// Argument conversions (dispatch.cc).
// ---------------------------------------------------------------------------------------------------------------
// A number (integral), BigInt or boolean as an int64; `what` names the argument in the error message.
int64_t toInt(Napi::Env env, const Napi::Value& v, const std::string& what);
// An array of integers, or one integer repeated n times (a fixed-length schema list such as int[2]).
std::vector<int64_t> toIntVec(Napi::Env env, const Napi::Value& v, const std::string& what, int32_t n = 1);

// ---------------------------------------------------------------------------------------------------------------
// Error mapping: every libtorch exception becomes a JS Error whose name is "TorchError"; the TS layer turns it
// into the TorchError class. Napi errors (bad arguments detected here) pass through as they are.
// ---------------------------------------------------------------------------------------------------------------
[[noreturn]] inline void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

inline Napi::Error torchError(Napi::Env env, const std::string& what) {
  // libtorch appends a C++ backtrace to messages; users want the first lines.
  std::string msg = what;
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg = msg.substr(0, pos);
  auto e = Napi::Error::New(env, msg);
  e.Set("name", Napi::String::New(env, "TorchError"));
  return e;
}

template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& f) {
  Napi::Env env = info.Env();
  try {
    return f(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw torchError(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw torchError(env, e.what());
  }
}

// EXPORT(name) { body } defines the JS-callable function `name`, whose body runs under guarded().
#define EXPORT(name)                                                                       \
  Napi::Value name##_impl(const Napi::CallbackInfo& info);                                 \
  Napi::Value name(const Napi::CallbackInfo& info) { return guarded(info, name##_impl); } \
  Napi::Value name##_impl(const Napi::CallbackInfo& info)

// ---------------------------------------------------------------------------------------------------------------
// Registration: each file adds its exports to the module's exports object (module.cc calls these in turn).
// ---------------------------------------------------------------------------------------------------------------
#define REG(name) exports.Set(#name, Napi::Function::New(env, name, #name))

void installAllocator();  // allocator.cc: makes the caching CPU allocator libtorch's (once)
void registerAllocator(Napi::Env env, Napi::Object exports);
void registerDispatch(Napi::Env env, Napi::Object exports);
void registerTensors(Napi::Env env, Napi::Object exports);
void registerAutograd(Napi::Env env, Napi::Object exports);
void registerRuntime(Napi::Env env, Napi::Object exports);
void registerDist(Napi::Env env, Napi::Object exports);
void registerReducer(Napi::Env env, Napi::Object exports);
void registerInterrupt(Napi::Env env, Napi::Object exports);
void registerJpeg(Napi::Env env, Napi::Object exports);

}  // namespace freeadv
