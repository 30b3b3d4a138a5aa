// Tensors as JS values: handles and their lifetime, data in and out, metadata.
//
// A handle is a Napi::External owning a heap at::Tensor. dispose() resets it (frees now); the finalizer is a
// backstop for handles that were never disposed, and external memory is reported to V8 so that its GC sees it.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <atomic>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace freeadv {
namespace {

struct Holder {
  at::Tensor t;
  int64_t bytes = 0;
};

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_finalized{0};
const napi_type_tag kTensorTag = {0x6672656561647621ULL, 0x74656e736f72aa55ULL};

int64_t reportedBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  // Only report CPU memory; CUDA memory is not V8's concern.
  if (!t.is_cpu()) return 0;
  return static_cast<int64_t>(t.storage().nbytes());
}

void finalizeHolder(Napi::Env env, Holder* h) {
  if (h->t.defined()) {
    g_live--;
    g_finalized++;
    if (h->bytes) Napi::MemoryManagement::AdjustExternalMemory(env, -h->bytes);
  }
  delete h;
}

Holder* holderOf(const Napi::Value& v) {
  Napi::Env env = v.Env();
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kTensorTag, &ok);
  if (!ok) typeError(env, "expected a tensor handle");
  return v.As<Napi::External<Holder>>().Data();
}

}  // namespace

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Undefined();
  auto* h = new Holder{std::move(t), 0};
  h->bytes = reportedBytes(h->t);
  g_live++;
  if (h->bytes) Napi::MemoryManagement::AdjustExternalMemory(env, h->bytes);
  auto ext = Napi::External<Holder>::New(env, h, finalizeHolder);
  napi_type_tag_object(env, ext, &kTensorTag);
  return ext;
}

const at::Tensor& tensorOf(const Napi::Value& v) {
  Holder* h = holderOf(v);
  if (!h->t.defined()) throw Napi::Error::New(v.Env(), "tensor was disposed");
  return h->t;
}

std::vector<at::Tensor> tensorVec(const Napi::Value& v) {
  std::vector<at::Tensor> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    out.push_back(e.IsUndefined() || e.IsNull() ? at::Tensor() : tensorOf(e));
  }
  return out;
}

namespace {

EXPORT(dispose) {
  Holder* h = holderOf(info[0]);
  if (h->t.defined()) {
    g_live--;
    if (h->bytes) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -h->bytes);
    h->t.reset();
    h->bytes = 0;
  }
  return info.Env().Undefined();
}

EXPORT(isDisposed) { return Napi::Boolean::New(info.Env(), !holderOf(info[0])->t.defined()); }

// fromBuffer(typedArrayOrArrayBuffer, shape, dtypeCode, pinned?) -> handle (copies the data)
EXPORT(fromBuffer) {
  Napi::Env env = info.Env();
  const void* data;
  size_t bytes;
  if (info[0].IsTypedArray()) {
    auto ta = info[0].As<Napi::TypedArray>();
    auto ab = ta.ArrayBuffer();
    data = static_cast<const uint8_t*>(ab.Data()) + ta.ByteOffset();
    bytes = ta.ByteLength();
  } else if (info[0].IsArrayBuffer()) {
    auto ab = info[0].As<Napi::ArrayBuffer>();
    data = ab.Data();
    bytes = ab.ByteLength();
  } else if (info[0].IsBuffer()) {
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    data = b.Data();
    bytes = b.Length();
  } else {
    typeError(env, "fromBuffer: expected a typed array or ArrayBuffer");
  }
  auto shape = toIntVec(env, info[1], "shape");
  auto dtype = static_cast<c10::ScalarType>(toInt(env, info[2], "dtype"));
  // pinned (page-locked) host memory, for a copy to a GPU that does not block the host (CUDA's host allocator)
  bool pinned = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(pinned));
  if (static_cast<size_t>(t.nbytes()) != bytes)
    throw torchError(env, "fromBuffer: data has " + std::to_string(bytes) + " bytes but shape and dtype need " +
                              std::to_string(t.nbytes()));
  if (bytes) std::memcpy(t.data_ptr(), data, bytes);
  return wrap(env, std::move(t));
}

// toBuffer(handle) -> ArrayBuffer holding a contiguous CPU copy of the data.
EXPORT(toBuffer) {
  Napi::Env env = info.Env();
  at::Tensor t = tensorOf(info[0]).detach().to(at::kCPU).contiguous();
  auto ab = Napi::ArrayBuffer::New(env, t.nbytes());
  if (t.nbytes()) std::memcpy(ab.Data(), t.data_ptr(), t.nbytes());
  return ab;
}

Napi::Array intArray(Napi::Env env, c10::IntArrayRef a) {
  auto arr = Napi::Array::New(env, a.size());
  for (size_t i = 0; i < a.size(); i++) arr.Set(i, Napi::Number::New(env, static_cast<double>(a[i])));
  return arr;
}

EXPORT(shape) { return intArray(info.Env(), tensorOf(info[0]).sizes()); }
EXPORT(strides) { return intArray(info.Env(), tensorOf(info[0]).strides()); }
EXPORT(dtype) { return Napi::Number::New(info.Env(), static_cast<int>(tensorOf(info[0]).scalar_type())); }
EXPORT(device) { return Napi::String::New(info.Env(), tensorOf(info[0]).device().str()); }
EXPORT(numel) { return Napi::Number::New(info.Env(), static_cast<double>(tensorOf(info[0]).numel())); }
EXPORT(dim) { return Napi::Number::New(info.Env(), static_cast<double>(tensorOf(info[0]).dim())); }
EXPORT(isContiguous) {
  const at::Tensor& t = tensorOf(info[0]);
  int64_t fmt = info.Length() > 1 ? toInt(info.Env(), info[1], "memoryFormat") : 0;
  return Napi::Boolean::New(info.Env(), t.is_contiguous(static_cast<c10::MemoryFormat>(fmt)));
}
EXPORT(item) {
  const at::Tensor& t = tensorOf(info[0]);
  if (t.numel() != 1)
    throw torchError(info.Env(), "item(): tensor with " + std::to_string(t.numel()) + " elements cannot be converted to a number");
  return Napi::Number::New(info.Env(), t.item().toDouble());
}
EXPORT(sameStorage) {
  const at::Tensor& a = tensorOf(info[0]);
  const at::Tensor& b = tensorOf(info[1]);
  return Napi::Boolean::New(info.Env(), a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage()));
}

// Handles alive now (made and neither disposed nor finalized), and handles the GC finalized without a dispose.
EXPORT(liveTensors) { return Napi::Number::New(info.Env(), static_cast<double>(g_live.load())); }
EXPORT(finalizedTensors) { return Napi::Number::New(info.Env(), static_cast<double>(g_finalized.load())); }

}  // namespace

void registerTensors(Napi::Env env, Napi::Object exports) {
  REG(dispose); REG(isDisposed); REG(fromBuffer); REG(toBuffer);
  REG(shape); REG(strides); REG(dtype); REG(device); REG(numel); REG(dim); REG(isContiguous); REG(item);
  REG(sameStorage);
  REG(liveTensors); REG(finalizedTensors);
}

}  // namespace freeadv
