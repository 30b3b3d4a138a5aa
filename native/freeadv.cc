// freeadv native layer: a thin, uniform bridge from Node-API to libtorch.
//
// There is no per-op C++ here. Every ATen operator is reached through the libtorch dispatcher's boxed call
// path: `resolve(name, overload)` looks an operator schema up once and returns an integer id; `call(id, ...)`
// converts the JavaScript arguments to IValues according to that schema (filling in schema defaults for
// trailing arguments that were left out), runs the operator (autograd included) and converts the results back.
// Everything else in this file is the small set of things that are not operators: tensor handles and their
// lifetime, data in and out, autograd entry points, RNG, threads, and the caching CPU allocator.
//
// Threading contract: every function here must be called from the main JavaScript thread.

#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#ifndef FREEADV_GLOO
#define FREEADV_GLOO 0
#endif
#if FREEADV_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
// c10d's Reducer takes a c10d::ProcessGroup. In libtorch 1.x ProcessGroupGloo is one; from 2.0 on it is a
// c10d::Backend, wrapped here in a ProcessGroup (the 2.3+ API, tested with 2.13). The Reducer's constructor
// changed across 2.x, so makeReducer picks the signature this libtorch has; where none is known (2.0-2.2, or a
// future change) the overlapped averaging is left out and the JS layer averages after backward.
// libtorch >= 2.3: also the allocator's API below (allocate() non-const, copy_data() pure virtual).
#define FREEADV_TORCH_2_3 (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3))
#if FREEADV_GLOO && (TORCH_VERSION_MAJOR < 2 || FREEADV_TORCH_2_3)
#define FREEADV_REDUCER 1
#include <torch/csrc/distributed/c10d/reducer.hpp>
#else
#define FREEADV_REDUCER 0
#endif
#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Caching CPU allocator.
//
// glibc keeps freed large blocks in its heap, so a training loop that frees and re-allocates the same activation
// sizes every step grows RSS without bound (measured: 268 -> 4,020 MB over 200 steps). Training allocates the
// same sizes step after step, so a size-keyed free list serves nearly every request from the cache and never
// returns memory to malloc while it is in use. Blocks below kSmall go straight to malloc (glibc's bins handle
// those well). The cache is capped; past the cap, freed blocks go back to the system.
// ---------------------------------------------------------------------------------------------------------------
constexpr size_t kAlign = 64;
constexpr size_t kSmall = 16 * 1024;
// Every block carries a kAlign-byte header in front of the data holding its rounded size, so that the raw
// deleter (which oneDNN uses: it frees by data pointer alone) can find the free list the block belongs to.
constexpr size_t kHeader = kAlign;

// libtorch >= 2.3 (the pip wheels, CUDA builds included) made allocate() non-const and copy_data() pure virtual.
#if FREEADV_TORCH_2_3
#define FREEADV_ALLOCATE_CONST
#else
#define FREEADV_ALLOCATE_CONST const
#endif

class CachingCPUAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) FREEADV_ALLOCATE_CONST override {
    void* p = const_cast<CachingCPUAllocator*>(this)->alloc(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if FREEADV_TORCH_2_3
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif

  void* alloc(size_t n) {
    size_t size = round(n);
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = size < kSmall ? free_.end() : free_.find(size);
      if (size < kSmall) {
        // small blocks go straight to malloc (not counted as hits or misses)
      } else if (it != free_.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        hits_++;
      } else {
        misses_++;
      }
      allocated_ += size;
      if (allocated_ > peak_) peak_ = allocated_;
    }
    if (!base) {
      if (posix_memalign(&base, kAlign, size + kHeader) != 0 || !base) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          allocated_ -= size;
        }
        TORCH_CHECK(false, "freeadv allocator: out of memory allocating ", n, " bytes");
      }
      *static_cast<size_t*>(base) = size;
    }
    return static_cast<char*>(base) + kHeader;
  }

  static void release(void* data);

  void give(void* data) {
    if (!data) return;
    void* base = static_cast<char*>(data) - kHeader;
    size_t size = *static_cast<size_t*>(base);
    bool drop = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      allocated_ -= size;
      if (size < kSmall || cached_ + size > cap_) {
        drop = true;
      } else {
        free_[size].push_back(base);
        cached_ += size;
      }
    }
    if (drop) std::free(base);
  }

  void emptyCache() {
    std::vector<void*> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& kv : free_)
        for (auto* b : kv.second) all.push_back(b);
      free_.clear();
      cached_ = 0;
    }
    for (auto* b : all) std::free(b);
  }

  void setCap(size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cap_ = cap;
    }
    if (cached() > cap) emptyCache();
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

  void stats(size_t* allocated, size_t* cached, size_t* peak, size_t* hits, size_t* misses, size_t* cap) {
    std::lock_guard<std::mutex> lock(mu_);
    *allocated = allocated_;
    *cached = cached_;
    *peak = peak_;
    *hits = hits_;
    *misses = misses_;
    *cap = cap_;
  }

  void resetPeak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = allocated_;
  }

 private:
  static size_t round(size_t n) {
    if (n < kSmall) return std::max<size_t>(kAlign, (n + kAlign - 1) & ~(kAlign - 1));
    // Round large blocks up to 4 KiB pages so that near-identical sizes share a free list.
    return (n + 4095) & ~size_t(4095);
  }
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0, allocated_ = 0, peak_ = 0, hits_ = 0, misses_ = 0;
  size_t cap_ = size_t(2) << 30;
};

CachingCPUAllocator* g_alloc = nullptr;

void CachingCPUAllocator::release(void* data) { g_alloc->give(data); }

// ---------------------------------------------------------------------------------------------------------------
// Tensor handles: a Napi::External owning a heap at::Tensor. dispose() resets it (frees now); the finalizer is a
// backstop for handles that were never disposed, and external memory is reported to V8 so that its GC sees it.
// ---------------------------------------------------------------------------------------------------------------
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

[[noreturn]] void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Holder* holderOf(const Napi::Value& v) {
  Napi::Env env = v.Env();
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kTensorTag, &ok);
  if (!ok) typeError(env, "expected a tensor handle");
  return v.As<Napi::External<Holder>>().Data();
}

const at::Tensor& tensorOf(const Napi::Value& v) {
  Holder* h = holderOf(v);
  if (!h->t.defined()) throw Napi::Error::New(v.Env(), "tensor was disposed");
  return h->t;
}

// ---------------------------------------------------------------------------------------------------------------
// Error mapping: every libtorch exception becomes a JS Error whose name is "TorchError"; the TS layer turns it
// into the TorchError class. Napi errors (bad arguments detected here) pass through as they are.
// ---------------------------------------------------------------------------------------------------------------
Napi::Error torchError(Napi::Env env, const std::string& what) {
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

#define EXPORT(name)                                                                       \
  Napi::Value name##_impl(const Napi::CallbackInfo& info);                                 \
  Napi::Value name(const Napi::CallbackInfo& info) { return guarded(info, name##_impl); } \
  Napi::Value name##_impl(const Napi::CallbackInfo& info)

// ---------------------------------------------------------------------------------------------------------------
// Conversions between JS values and IValues, driven by the schema's argument types.
// ---------------------------------------------------------------------------------------------------------------
enum class Kind {
  Tensor,
  TensorList,
  OptTensorList,
  Int,
  IntList,
  Float,
  FloatList,
  Bool,
  BoolList,
  Scalar,
  ScalarType,
  Layout,
  Device,
  MemoryFormat,
  String,
  Generator,
  Unsupported
};

struct ArgSpec {
  Kind kind;
  bool optional;
  std::string name;
  c10::optional<c10::IValue> def;
  int32_t n = 0;  // fixed list length (int[2]): a single number is repeated, as TorchScript does
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::vector<ArgSpec> args;
  size_t nreturns;
  std::string name;
};

std::vector<OpEntry> g_ops;

Kind kindOf(const c10::TypePtr& t) {
  using c10::TypeKind;
  switch (t->kind()) {
    case TypeKind::TensorType: return Kind::Tensor;
    case TypeKind::IntType:
    case TypeKind::SymIntType: return Kind::Int;
    case TypeKind::FloatType: return Kind::Float;
    case TypeKind::BoolType: return Kind::Bool;
    case TypeKind::NumberType: return Kind::Scalar;
    case TypeKind::ScalarTypeType: return Kind::ScalarType;
    case TypeKind::LayoutType: return Kind::Layout;
    case TypeKind::DeviceObjType: return Kind::Device;
    case TypeKind::MemoryFormatType: return Kind::MemoryFormat;
    case TypeKind::StringType: return Kind::String;
    case TypeKind::GeneratorType: return Kind::Generator;
    case TypeKind::ListType: {
      auto elem = t->castRaw<c10::ListType>()->getElementType();
      switch (elem->kind()) {
        case TypeKind::TensorType: return Kind::TensorList;
        case TypeKind::OptionalType: return Kind::OptTensorList;
        case TypeKind::IntType:
        case TypeKind::SymIntType: return Kind::IntList;
        case TypeKind::FloatType: return Kind::FloatList;
        case TypeKind::BoolType: return Kind::BoolList;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

c10::Device parseDevice(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) typeError(env, "expected a device string such as 'cpu' or 'cuda:0'");
  return c10::Device(v.As<Napi::String>().Utf8Value());
}

int64_t toInt(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d == static_cast<double>(static_cast<int64_t>(d))))
      typeError(env, what + ": expected an integer, got " + std::to_string(d));
    return static_cast<int64_t>(d);
  }
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  typeError(env, what + ": expected an integer");
}

std::vector<int64_t> toIntVec(Napi::Env env, const Napi::Value& v, const std::string& what, int32_t n = 1) {
  std::vector<int64_t> out;
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    uint32_t n = a.Length();
    out.reserve(n);
    for (uint32_t i = 0; i < n; i++) out.push_back(toInt(env, a.Get(i), what));
  } else {
    out.assign(std::max<int32_t>(n, 1), toInt(env, v, what));  // a single int broadcasts, e.g. stride=2
  }
  return out;
}

c10::IValue toIValue(Napi::Env env, const Napi::Value& v, const ArgSpec& a) {
  if (v.IsUndefined() || v.IsNull()) {
    if (v.IsUndefined() && a.def.has_value()) return *a.def;
    if (a.optional) return c10::IValue();
    typeError(env, "argument '" + a.name + "' is required");
  }
  switch (a.kind) {
    case Kind::Tensor: return tensorOf(v);
    case Kind::TensorList: {
      if (!v.IsArray()) typeError(env, "argument '" + a.name + "': expected an array of tensors");
      auto arr = v.As<Napi::Array>();
      std::vector<at::Tensor> ts;
      ts.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); i++) ts.push_back(tensorOf(arr.Get(i)));
      return c10::List<at::Tensor>(ts);
    }
    case Kind::OptTensorList: {
      if (!v.IsArray()) typeError(env, "argument '" + a.name + "': expected an array of tensors or nulls");
      auto arr = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> ts;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value e = arr.Get(i);
        if (e.IsNull() || e.IsUndefined()) ts.push_back(c10::nullopt);
        else ts.push_back(tensorOf(e));
      }
      return ts;
    }
    case Kind::Int: return toInt(env, v, a.name);
    case Kind::IntList: return c10::IValue(toIntVec(env, v, a.name, a.n));
    case Kind::Float:
      if (!v.IsNumber()) typeError(env, "argument '" + a.name + "': expected a number");
      return v.As<Napi::Number>().DoubleValue();
    case Kind::FloatList: {
      std::vector<double> out;
      auto arr = v.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::Number>().DoubleValue());
      return c10::IValue(out);
    }
    case Kind::Bool:
      if (!v.IsBoolean()) typeError(env, "argument '" + a.name + "': expected a boolean");
      return v.As<Napi::Boolean>().Value();
    case Kind::BoolList: {
      auto arr = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::Boolean>().Value());
      return out;
    }
    case Kind::Scalar: {
      if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
      if (v.IsBigInt()) {
        bool lossless;
        return v.As<Napi::BigInt>().Int64Value(&lossless);
      }
      if (!v.IsNumber()) typeError(env, "argument '" + a.name + "': expected a number");
      double d = v.As<Napi::Number>().DoubleValue();
      // Integral JS numbers become integer scalars (so int tensors stay int, as in Python).
      if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.0e15)
        return static_cast<int64_t>(d);
      return d;
    }
    case Kind::ScalarType: return toInt(env, v, a.name);
    case Kind::Layout: return toInt(env, v, a.name);
    case Kind::MemoryFormat: return toInt(env, v, a.name);
    case Kind::Device: return parseDevice(env, v);
    case Kind::String: return v.As<Napi::String>().Utf8Value();
    case Kind::Generator: typeError(env, "argument '" + a.name + "': generators are not supported; use manualSeed");
    case Kind::Unsupported: break;
  }
  typeError(env, "argument '" + a.name + "' has a type the binding does not support");
}

Napi::Value fromIValue(Napi::Env env, c10::IValue&& v) {
  if (v.isTensor()) return wrap(env, std::move(v).toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(i, wrap(env, list.get(i)));
    return arr;
  }
  if (v.isTuple()) {
    auto& elems = v.toTupleRef().elements();
    auto arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) arr.Set(i, fromIValue(env, c10::IValue(elems[i])));
    return arr;
  }
  if (v.isIntList()) {
    auto list = v.toIntVector();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(i, Napi::Number::New(env, static_cast<double>(list[i])));
    return arr;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  throw torchError(env, std::string("unsupported return type ") + v.tagKind());
}

// resolve(name, overload) -> [id, argNames[], argKinds[], nreturns]
EXPORT(resolve) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info.Length() > 1 ? info[1].As<Napi::String>().Utf8Value() : "";
  auto handle = c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), overload.c_str());
  const auto& schema = handle.schema();
  OpEntry e{handle, {}, schema.returns().size(), name + (overload.empty() ? "" : "." + overload)};
  auto names = Napi::Array::New(env);
  for (const auto& arg : schema.arguments()) {
    c10::TypePtr t = arg.type();
    bool optional = false;
    if (t->kind() == c10::TypeKind::OptionalType) {
      optional = true;
      t = t->castRaw<c10::OptionalType>()->getElementType();
    }
    ArgSpec spec{kindOf(t), optional, arg.name(), arg.default_value()};
    if (arg.N()) spec.n = *arg.N();
    if (spec.kind == Kind::Unsupported && !spec.def.has_value() && !optional)
      throw torchError(env, "operator " + e.name + " has an argument '" + arg.name() +
                                "' of unsupported type " + arg.type()->str());
    names.Set(names.Length(), Napi::String::New(env, arg.name()));
    e.args.push_back(std::move(spec));
  }
  g_ops.push_back(std::move(e));
  auto out = Napi::Array::New(env, 3);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(g_ops.size() - 1)));
  out.Set(1u, names);
  out.Set(2u, Napi::Number::New(env, static_cast<double>(schema.returns().size())));
  return out;
}

// Runs op `id` with the remaining arguments; returns its outputs (one value, an array, or undefined).
Napi::Value callImpl(const Napi::CallbackInfo& info, bool discard) {
  Napi::Env env = info.Env();
  size_t id = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  if (id >= g_ops.size()) typeError(env, "unknown operator id");
  OpEntry& op = g_ops[id];
  size_t given = info.Length() - 1;
  if (given > op.args.size())
    typeError(env, op.name + ": expected at most " + std::to_string(op.args.size()) + " arguments, got " +
                       std::to_string(given));
  torch::jit::Stack stack;
  stack.reserve(std::max(op.args.size(), op.nreturns));
  for (size_t i = 0; i < op.args.size(); i++) {
    const ArgSpec& a = op.args[i];
    if (i < given) {
      stack.emplace_back(toIValue(env, info[i + 1], a));
    } else if (a.def.has_value()) {
      stack.emplace_back(*a.def);
    } else if (a.optional) {
      stack.emplace_back();
    } else {
      typeError(env, op.name + ": argument '" + a.name + "' is required");
    }
  }
  op.handle.callBoxed(&stack);
  if (discard) return env.Undefined();
  if (stack.size() == 1) return fromIValue(env, std::move(stack[0]));
  if (stack.empty()) return env.Undefined();
  auto arr = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) arr.Set(i, fromIValue(env, std::move(stack[i])));
  return arr;
}

EXPORT(call) { return callImpl(info, false); }
EXPORT(callVoid) { return callImpl(info, true); }

// ---------------------------------------------------------------------------------------------------------------
// Handles, data in and out, metadata.
// ---------------------------------------------------------------------------------------------------------------
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

// fromBuffer(typedArrayOrArrayBuffer, shape, dtypeCode) -> handle (copies the data)
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
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
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

// ---------------------------------------------------------------------------------------------------------------
// Autograd.
// ---------------------------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------------------------
// RNG, threads, devices, memory statistics.
// ---------------------------------------------------------------------------------------------------------------
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
EXPORT(cudaDeviceCount) {
  return Napi::Number::New(info.Env(), at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0);
}
EXPORT(liveTensors) { return Napi::Number::New(info.Env(), static_cast<double>(g_live.load())); }
EXPORT(finalizedTensors) { return Napi::Number::New(info.Env(), static_cast<double>(g_finalized.load())); }
EXPORT(memoryStats) {
  Napi::Env env = info.Env();
  size_t allocated, cached, peak, hits, misses, cap;
  g_alloc->stats(&allocated, &cached, &peak, &hits, &misses, &cap);
  auto o = Napi::Object::New(env);
  o.Set("allocated", Napi::Number::New(env, static_cast<double>(allocated)));
  o.Set("cached", Napi::Number::New(env, static_cast<double>(cached)));
  o.Set("peak", Napi::Number::New(env, static_cast<double>(peak)));
  o.Set("hits", Napi::Number::New(env, static_cast<double>(hits)));
  o.Set("misses", Napi::Number::New(env, static_cast<double>(misses)));
  o.Set("cap", Napi::Number::New(env, static_cast<double>(cap)));
  return o;
}
EXPORT(emptyCache) {
  g_alloc->emptyCache();
  return info.Env().Undefined();
}
EXPORT(setCacheLimit) {
  g_alloc->setCap(static_cast<size_t>(toInt(info.Env(), info[0], "bytes")));
  return info.Env().Undefined();
}
EXPORT(resetPeakMemory) {
  g_alloc->resetPeak();
  return info.Env().Undefined();
}
EXPORT(version) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torch", Napi::String::New(env, TORCH_VERSION));
  o.Set("parallel", Napi::String::New(env, at::get_parallel_info()));
  o.Set("config", Napi::String::New(env, at::show_config()));
  return o;
}


// ---------------------------------------------------------------------------------------------------------------
// Process groups (c10d): TCPStore rendezvous and ProcessGroupGloo, one group per process. Collectives are
// issued asynchronously (one c10d work per tensor, so several buckets are in flight at once) and then waited
// for with the group's timeout; a dead or hung peer surfaces as a TorchError, never a hang or a crash.
// Built only when gloo's headers are present (Debian: libgloo-dev).
// ---------------------------------------------------------------------------------------------------------------
#if FREEADV_GLOO
struct DistGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{300000};
  c10::intrusive_ptr<c10d::ProcessGroup> wrapped;  // pg as a ProcessGroup, for the Reducer (made on first use)
};
// Deliberately leaked at exit: destroying a group whose peer died can block in gloo's threads.
DistGroup* g_dist = nullptr;

DistGroup& group(Napi::Env env) {
  if (!g_dist) throw torchError(env, "no process group: call distInit first");
  return *g_dist;
}

void waitAll(DistGroup& g, std::vector<c10::intrusive_ptr<c10d::Work>>& works, const char* what) {
  for (auto& w : works) {
    bool ok = false;
    try {
      ok = w->wait(g.timeout);
    } catch (const c10::Error& e) {
      throw std::runtime_error(std::string(what) + " failed (a peer process died, hung or was unreachable): " +
                               e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(what) + " failed (a peer process died, hung or was unreachable): " +
                               e.what());
    }
    if (!ok)
      throw std::runtime_error(std::string(what) + " timed out after " + std::to_string(g.timeout.count()) + " ms");
  }
}

std::vector<at::Tensor> denseCpuList(Napi::Env env, const Napi::Value& v, const char* what) {
  auto ts = tensorVec(v);
  for (auto& t : ts) {
    if (!t.defined()) typeError(env, std::string(what) + ": expected tensors");
    if (!t.is_contiguous()) throw torchError(env, std::string(what) + ": tensors must be contiguous");
  }
  return ts;
}

// distInit(host, port, rank, worldSize, timeoutMs, ifname) -- blocks until all ranks joined or timeout.
EXPORT(distInit) {
  Napi::Env env = info.Env();
  if (g_dist) throw torchError(env, "distInit: this process already belongs to a process group");
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int64_t port = toInt(env, info[1], "port");
  int64_t rank = toInt(env, info[2], "rank");
  int64_t size = toInt(env, info[3], "worldSize");
  int64_t ms = toInt(env, info[4], "timeoutMs");
  std::string ifname = info.Length() > 5 && info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
  if (port < 1 || port > 65535) throw torchError(env, "distInit: port must be in [1, 65535], got " + std::to_string(port));
  if (size < 1 || rank < 0 || rank >= size)
    throw torchError(env, "distInit: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(size) + ")");
  if (ms < 1) throw torchError(env, "distInit: timeout must be positive");
  auto timeout = std::chrono::milliseconds(ms);
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<size_t>(size);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(host, so);
  auto store = c10::make_intrusive<c10d::PrefixStore>("freeadv/default_pg", tcp);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (host == "127.0.0.1" || host == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(size), opts);
  g_dist = new DistGroup{tcp, pg, static_cast<int>(rank), static_cast<int>(size), timeout, /*wrapped=*/{}};
  return env.Undefined();
}

EXPORT(distInfo) {
  Napi::Env env = info.Env();
  if (!g_dist) return env.Undefined();
  auto o = Napi::Object::New(env);
  o.Set("rank", Napi::Number::New(env, g_dist->rank));
  o.Set("worldSize", Napi::Number::New(env, g_dist->size));
  o.Set("backend", Napi::String::New(env, g_dist->pg->getBackendName()));
  o.Set("timeoutMs", Napi::Number::New(env, static_cast<double>(g_dist->timeout.count())));
  return o;
}

// Starts one c10d work per tensor (all in flight at once), then waits for them with the group's timeout.
template <typename Start>
void eachInFlight(DistGroup& g, std::vector<at::Tensor>& ts, const char* what, Start start) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t};
    works.push_back(start(one));
  }
  waitAll(g, works, what);
}

// distAllReduce(tensors[], op) -- in place; op 0 sum, 1 max, 2 min. One c10d work per tensor, all in flight.
EXPORT(distAllReduce) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseCpuList(env, info[0], "allReduce");
  int64_t op = info.Length() > 1 ? toInt(env, info[1], "op") : 0;
  c10d::AllreduceOptions o;
  o.reduceOp = op == 1 ? c10d::ReduceOp::MAX : op == 2 ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
  o.timeout = g.timeout;
  eachInFlight(g, ts, "allReduce", [&](std::vector<at::Tensor>& one) { return g.pg->allreduce(one, o); });
  return env.Undefined();
}

// distBroadcast(tensors[], root) -- in place.
EXPORT(distBroadcast) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseCpuList(env, info[0], "broadcast");
  int64_t root = toInt(env, info[1], "root");
  if (root < 0 || root >= g.size) throw torchError(env, "broadcast: root " + std::to_string(root) + " is not a rank");
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = g.timeout;
  eachInFlight(g, ts, "broadcast", [&](std::vector<at::Tensor>& one) { return g.pg->broadcast(one, o); });
  return env.Undefined();
}

// distAllGather(tensor) -> tensors[worldSize] (rank order).
EXPORT(distAllGather) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseCpuList(env, Napi::Value(info[0]).IsArray() ? info[0] : env.Undefined(), "allGather");
  if (ts.size() != 1) typeError(env, "allGather: expected [tensor]");
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < g.size; i++) out[0].push_back(at::empty_like(ts[0]));
  c10d::AllgatherOptions o;
  o.timeout = g.timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.pg->allgather(out, ts, o)};
  waitAll(g, works, "allGather");
  auto arr = Napi::Array::New(env, out[0].size());
  for (size_t i = 0; i < out[0].size(); i++) arr.Set(i, wrap(env, out[0][i]));
  return arr;
}

EXPORT(distBarrier) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  c10d::BarrierOptions o;
  o.timeout = g.timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.pg->barrier(o)};
  waitAll(g, works, "barrier");
  return env.Undefined();
}

// Leaves the group (after a final barrier by the caller). The group object is released only on success paths.
EXPORT(distDestroy) {
  if (g_dist) {
    DistGroup* g = g_dist;
    g_dist = nullptr;
    delete g;
  }
  return info.Env().Undefined();
}

#if FREEADV_REDUCER
// ---------------------------------------------------------------------------------------------------------------
// Gradient averaging overlapped with the backward pass: c10d's Reducer, the engine under PyTorch's
// DistributedDataParallel. It adds a post-hook to every parameter's gradient accumulator. In a backward pass
// armed by distReducerPrepare, each gradient is copied into its bucket (a flat buffer) as soon as it has been
// accumulated, and a bucket whose gradients are all in is all-reduced asynchronously while backward goes on
// (buckets start in a fixed order, the same on every rank). Once every bucket has started, the Reducer queues
// a final callback with the autograd engine, which waits for the buckets at the end of backward and copies the
// means back into .grad. Hooks that fire in an unarmed backward pass (attack steps) are ignored by the Reducer.
// After the first armed step the Reducer re-forms its buckets in the order the gradients arrived (rank 0's
// order, broadcast), as DDP does.
//
// The all-reduce is a C++ comm hook rather than the Reducer's default one so that it runs with the group's
// timeout, divides by the world size after summing (as distAllReduce's callers do), and leaves a failure
// message that says which collective failed. The hook's continuation runs on a Gloo thread.
// ---------------------------------------------------------------------------------------------------------------
struct ReducerState {
  std::mutex mu;
  std::string failure;  // the first failed bucket all-reduce since the last prepare
  bool lastStarted = false;
  std::chrono::steady_clock::time_point lastStart;
};

class AverageHook final : public c10d::CommHookInterface {
 public:
  AverageHook(c10::intrusive_ptr<c10d::ProcessGroupGloo> pg, std::chrono::milliseconds timeout,
              std::shared_ptr<ReducerState> st)
      : pg_(std::move(pg)), timeout_(timeout), st_(std::move(st)) {}

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    if (bucket.isLast()) {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->lastStarted = true;
      st_->lastStart = std::chrono::steady_clock::now();
    }
    at::Tensor buf = bucket.getBufferRef();
    std::vector<at::Tensor> one{buf};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    auto fut = pg_->allreduce(one, o)->getFuture();
    const int n = pg_->getSize();
    auto st = st_;
    return fut->then(
        [buf, n, st](c10::ivalue::Future& f) -> c10::IValue {
          if (f.hasError()) {
            std::string why = f.tryRetrieveErrorMessage();
            auto pos = why.find("\nException raised from");
            if (pos != std::string::npos) why = why.substr(0, pos);
            std::string msg = "allReduce of a gradient bucket failed (a peer process died, hung or was unreachable): " + why;
            {
              std::lock_guard<std::mutex> lock(st->mu);
              if (st->failure.empty()) st->failure = msg;
            }
            throw std::runtime_error(msg);
          }
          buf.div_(n);
          return buf;
        },
        c10::TensorType::get());
  }

  // (Not c10d::CppCommHookInterface: its version of this calls a function libtorch does not export.)
  at::Tensor parseHookResult(const c10::IValue& result) override { return result.toTensor(); }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<ReducerState> st_;
};

// The Reducer's bookkeeping is protected; this subclass only reads it.
class GradReducer final : public c10d::Reducer {
 public:
  using c10d::Reducer::Reducer;
  // True from prepare until the end-of-backward callback has started: false after a reduced backward pass.
  bool armed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return expect_autograd_hooks_;
  }
  std::vector<std::vector<size_t>> bucketIndices() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::vector<size_t>> out;
    for (const auto& b : buckets_) out.push_back(b.variable_indices);
    return out;
  }
};

// The group as the c10d::ProcessGroup the Reducer takes (null where this libtorch offers no known way).
c10::intrusive_ptr<c10d::ProcessGroup> asProcessGroup(DistGroup& g) {
#if TORCH_VERSION_MAJOR < 2
  return g.pg;
#else
  if (!g.wrapped) {
    if constexpr (std::is_constructible_v<c10d::ProcessGroup, c10::intrusive_ptr<c10d::Store>, int, int>) {
      auto pg = c10::make_intrusive<c10d::ProcessGroup>(g.store, g.rank, g.size);
      pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
      pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, c10::intrusive_ptr<c10d::Backend>(g.pg));
      g.wrapped = pg;
    }
  }
  return g.wrapped;
#endif
}

// The Reducer's constructor by libtorch version: the 1.13 form (per-bucket limits, then the group; also taken
// where later parameters have defaults) and the 2.13 form (no per-bucket limits; skip-unused and python-reducer
// flags and a cap list).
// Unused parameters are all-reduced like the rest (skip = false), as in 1.x.
using RParams = std::vector<at::Tensor>;
using RBuckets = std::vector<std::vector<size_t>>;
using RLimits = std::vector<size_t>;
using RGroup = c10::intrusive_ptr<c10d::ProcessGroup>;
using RSparse = std::vector<bool>;
using RNames = std::unordered_map<size_t, std::string>;
constexpr bool kReducer113 =
    std::is_constructible_v<GradReducer, RParams, RBuckets, RLimits, RGroup, RSparse, int64_t, bool, bool, RNames, int64_t>;
constexpr bool kReducer213 = std::is_constructible_v<GradReducer, RParams, RBuckets, RGroup, RSparse, int64_t, bool, bool,
                                                     RNames, int64_t, bool, bool, std::vector<int64_t>>;
constexpr bool kReducerKnown = kReducer113 || kReducer213;

std::unique_ptr<GradReducer> makeReducer(RParams params, RBuckets buckets, RLimits limits, RGroup pg, int64_t cap,
                                         bool findUnused, int64_t first) {
  const size_t n = params.size();
  if constexpr (kReducer113) {
    return std::make_unique<GradReducer>(std::move(params), std::move(buckets), std::move(limits), std::move(pg),
                                         RSparse(n, false), cap, findUnused, /*gradient_as_bucket_view=*/false,
                                         RNames(), first);
  } else if constexpr (kReducer213) {
    return std::make_unique<GradReducer>(std::move(params), std::move(buckets), std::move(pg), RSparse(n, false), cap,
                                         findUnused, /*gradient_as_bucket_view=*/false, RNames(), first,
                                         /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
                                         std::vector<int64_t>());
  } else {
    return nullptr;
  }
}

struct ReducerHolder {
  std::unique_ptr<GradReducer> reducer;
  std::shared_ptr<ReducerState> state;
};
const napi_type_tag kReducerTag = {0x6672656561647621ULL, 0x72656475636572bbULL};

void dropReducer(ReducerHolder* h) {
  try {
    h->reducer.reset();  // removes its hooks from the gradient accumulators
  } catch (...) {
  }
}

ReducerHolder& reducerOf(const Napi::Value& v) {
  Napi::Env env = v.Env();
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kReducerTag, &ok);
  if (!ok) typeError(env, "expected a reducer handle");
  auto* h = v.As<Napi::External<ReducerHolder>>().Data();
  if (!h->reducer) throw Napi::Error::New(env, "the gradient reducer was disposed");
  return *h;
}

// distReducerNew(params[], bucketBytes, firstBucketBytes, findUnused) -> handle. Initial buckets: parameters in
// reverse order (their gradients come first in backward), each bucket at most bucketBytes.
EXPORT(distReducerNew) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto params = tensorVec(info[0]);
  int64_t cap = toInt(env, info[1], "bucketBytes");
  int64_t first = toInt(env, info[2], "firstBucketBytes");
  bool findUnused = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (params.empty()) throw torchError(env, "gradient reducer: no parameters");
  if (cap < 1 || first < 1) throw torchError(env, "gradient reducer: bucket sizes must be positive");
  for (size_t i = 0; i < params.size(); i++) {
    const auto& p = params[i];
    if (!p.defined()) typeError(env, "gradient reducer: expected tensors");
    if (!p.requires_grad() || !p.is_leaf())
      throw torchError(env, "gradient reducer: parameter " + std::to_string(i) + " is not a leaf that requires grad");
    for (size_t j = 0; j < i; j++)
      if (params[j].unsafeGetTensorImpl() == p.unsafeGetTensorImpl())
        throw torchError(env, "gradient reducer: parameter " + std::to_string(i) + " is listed twice");
  }
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> limits;
  std::tie(buckets, limits) = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(cap)});
  std::reverse(buckets.begin(), buckets.end());
  std::reverse(limits.begin(), limits.end());
  auto st = std::make_shared<ReducerState>();
  auto wrapped = asProcessGroup(g);
  if (!wrapped) throw torchError(env, "gradient reducer: this libtorch cannot wrap the Gloo group for c10d's Reducer");
  auto r = makeReducer(std::move(params), std::move(buckets), std::move(limits), wrapped, cap, findUnused, first);
  if (!r) throw torchError(env, "gradient reducer: this libtorch's c10d::Reducer has an unknown constructor");
  r->register_comm_hook(std::make_unique<AverageHook>(g.pg, g.timeout, st));
  auto* h = new ReducerHolder{std::move(r), std::move(st)};
  auto ext = Napi::External<ReducerHolder>::New(env, h, [](Napi::Env, ReducerHolder* h) {
    dropReducer(h);
    delete h;
  });
  napi_type_tag_object(env, ext, &kReducerTag);
  return ext;
}

// distReducerPrepare(handle, outputs[]): arms the reducer for the next backward pass (call on every rank, once
// per step, before backward). From the second step on, first re-forms the buckets once (a broadcast).
EXPORT(distReducerPrepare) {
  ReducerHolder& h = reducerOf(info[0]);
  auto outputs = tensorVec(info[1]);
  {
    std::lock_guard<std::mutex> lock(h.state->mu);
    h.state->failure.clear();
    h.state->lastStarted = false;
  }
  h.reducer->prepare_for_forward();
  h.reducer->rebuild_buckets();
  h.reducer->prepare_for_backward(outputs);
  return info.Env().Undefined();
}

// distReducerStatus(handle) -> { armed, failure, tailMs }: after backward. armed: the pass did not finish its
// reduction (some parameter got no gradient); failure: a bucket's all-reduce failed; tailMs: milliseconds from
// the start of the last bucket's all-reduce to now (communication not hidden behind backward), or -1.
EXPORT(distReducerStatus) {
  Napi::Env env = info.Env();
  ReducerHolder& h = reducerOf(info[0]);
  auto o = Napi::Object::New(env);
  o.Set("armed", Napi::Boolean::New(env, h.reducer->armed()));
  std::lock_guard<std::mutex> lock(h.state->mu);
  o.Set("failure", h.state->failure.empty() ? env.Null() : Napi::String::New(env, h.state->failure));
  double ms = -1;
  if (h.state->lastStarted)
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - h.state->lastStart).count();
  o.Set("tailMs", Napi::Number::New(env, ms));
  return o;
}

// distReducerBuckets(handle) -> parameter indices of each bucket, in the order they are all-reduced.
EXPORT(distReducerBuckets) {
  Napi::Env env = info.Env();
  auto b = reducerOf(info[0]).reducer->bucketIndices();
  auto arr = Napi::Array::New(env, b.size());
  for (size_t i = 0; i < b.size(); i++) {
    auto a = Napi::Array::New(env, b[i].size());
    for (size_t j = 0; j < b[i].size(); j++) a.Set(j, Napi::Number::New(env, static_cast<double>(b[i][j])));
    arr.Set(i, a);
  }
  return arr;
}

// distReducerFree(handle): removes the hooks now (the finalizer is a backstop).
EXPORT(distReducerFree) {
  Napi::Env env = info.Env();
  bool ok = false;
  if (info[0].IsExternal()) napi_check_object_type_tag(env, info[0], &kReducerTag, &ok);
  if (!ok) typeError(env, "expected a reducer handle");
  dropReducer(info[0].As<Napi::External<ReducerHolder>>().Data());
  return env.Undefined();
}
#endif  // FREEADV_REDUCER
#endif
EXPORT(distAvailable) { return Napi::Boolean::New(info.Env(), FREEADV_GLOO ? true : false); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!g_alloc) {
    g_alloc = new CachingCPUAllocator();  // never freed: tensors may outlive the module
    const char* off = std::getenv("FREEADV_CACHING_ALLOCATOR");
    if (!(off && std::string(off) == "0")) c10::SetCPUAllocator(g_alloc, /*priority=*/100);
  }
#define REG(name) exports.Set(#name, Napi::Function::New(env, name, #name))
  REG(resolve); REG(call); REG(callVoid);
  REG(dispose); REG(isDisposed); REG(fromBuffer); REG(toBuffer);
  REG(shape); REG(strides); REG(dtype); REG(device); REG(numel); REG(dim); REG(isContiguous); REG(item);
  REG(sameStorage);
  REG(requiresGrad); REG(setRequiresGrad); REG(isLeaf); REG(getGrad); REG(setGrad); REG(backward); REG(grad);
  REG(isGradEnabled); REG(setGradEnabled); REG(enterInferenceMode); REG(exitInferenceMode); REG(isInferenceMode);
  REG(manualSeed); REG(getRngState); REG(setRngState); REG(setNumThreads); REG(getNumThreads);
  REG(cudaIsAvailable); REG(cudaDeviceCount);
  REG(liveTensors); REG(finalizedTensors); REG(memoryStats); REG(emptyCache); REG(setCacheLimit);
  REG(resetPeakMemory); REG(version);
  REG(distAvailable);
#if FREEADV_GLOO
  REG(distInit); REG(distInfo); REG(distAllReduce); REG(distBroadcast); REG(distAllGather); REG(distBarrier);
  REG(distDestroy);
#endif
#if FREEADV_REDUCER
  if (kReducerKnown) {
    REG(distReducerNew); REG(distReducerPrepare); REG(distReducerStatus); REG(distReducerBuckets); REG(distReducerFree);
  }
#endif
#undef REG
  return exports;
}

}  // namespace

NODE_API_MODULE(freeadv, Init)
