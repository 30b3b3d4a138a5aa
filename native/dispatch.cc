// Operators: every ATen operator is reached through the libtorch dispatcher's boxed call path; there is no
// per-op C++. `resolve(name, overload)` looks an operator schema up once and returns an integer id; `call(id, ...)`
// converts the JavaScript arguments to IValues according to that schema (filling in schema defaults for
// trailing arguments that were left out), runs the operator (autograd included) and converts the results back.

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace freeadv {

// JS numbers as integers (declared in common.h: the other files' arguments use them too).
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

std::vector<int64_t> toIntVec(Napi::Env env, const Napi::Value& v, const std::string& what, int32_t n) {
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

namespace {

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

}  // namespace

void registerDispatch(Napi::Env env, Napi::Object exports) {
  REG(resolve); REG(call); REG(callVoid);
}

}  // namespace freeadv
