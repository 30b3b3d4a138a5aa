// freeadv native layer: a thin, uniform bridge from Node-API to libtorch.
//
// There is no per-op C++ here. Every ATen operator is reached through the libtorch dispatcher's boxed call
// path (dispatch.cc): `resolve(name, overload)` looks an operator schema up once and returns an integer id;
// `call(id, ...)` converts the JavaScript arguments to IValues according to that schema, runs the operator
// (autograd included) and converts the results back. The other files are the small set of things that are not
// operators, one concern each:
//
//   common.h     what the files share: tensor handles, the error mapping (EXPORT, TorchError), argument helpers
//   compat.h     what differs between libtorch versions (compat/: headers a libtorch leaves out)
//   allocator.cc the caching CPU allocator and its statistics
//   dispatch.cc  operators: resolve/call and the conversions between JS values and IValues
//   tensors.cc   tensor handles and their lifetime, data in and out, metadata
//   autograd.cc  autograd entry points, grad mode and inference mode
//   runtime.cc   RNG, threads, CUDA queries, version
//   jpeg.cc      JPEG decoding and resizing of crops for the input pipeline (libjpeg-turbo; no libtorch)
//   dist.cc      process groups (c10d: ProcessGroupGloo, or NCCL) and collectives; dist.h
//   store.cc     the TCP rendezvous: a c10d::Store served by rank 0 on --master-addr only
//   reducer.cc   gradient averaging overlapped with backward (c10d's Reducer)
//   interrupt.cc a flag set by SIGINT/SIGTERM as they arrive (a watcher thread), read between attack iterations
//   module.cc    this file: the module's init, which adds every file's exports
//
// Threading contract: every function here must be called from the main JavaScript thread (interrupt.cc's
// watcher thread touches only its own libuv loop and an atomic), except jpeg.cc's, which touch no libtorch state
// and are called from the input pipeline's worker threads too: the module loads in any thread (Init runs once per
// thread that loads it; the allocator is installed once per process).

#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  freeadv::installAllocator();
  freeadv::registerDispatch(env, exports);
  freeadv::registerTensors(env, exports);
  freeadv::registerAutograd(env, exports);
  freeadv::registerRuntime(env, exports);
  freeadv::registerAllocator(env, exports);
  freeadv::registerDist(env, exports);
  freeadv::registerReducer(env, exports);
  freeadv::registerInterrupt(env, exports);
  freeadv::registerJpeg(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(freeadv, Init)
