// What differs between the libtorch builds the addon compiles against: Debian's libtorch-dev 1.13 and the 2.x
// libtorch of a pip-installed torch or an official (CUDA) download. The version switches live here; headers
// that a libtorch leaves out are stood in for under compat/ (added to the include path last, with -idirafter).
// The C++ standard is chosen by scripts/libtorch.cjs (`cxxstd`): C++17 for 1.x up to 2.13, C++20 from 2.14 on.
#pragma once

#include <torch/version.h>

// libtorch >= 2.3 (the pip wheels, CUDA builds included): the allocator's API changed (allocator.cc: allocate()
// non-const, copy_data() pure virtual), and c10d's Reducer takes a Gloo backend wrapped in a c10d::ProcessGroup
// (reducer.cc).
#define FREEADV_TORCH_2_3 (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3))

// Set by scripts/libtorch.cjs: whether gloo's headers are present (Debian: libgloo-dev), i.e. whether the addon
// has c10d's process groups (dist.cc) and gradient reducer (reducer.cc).
#ifndef FREEADV_GLOO
#define FREEADV_GLOO 0
#endif

// libtorch >= 2.4: autocast's state is set per device type (at::autocast::set_autocast_enabled(DeviceType, bool),
// set_autocast_dtype(DeviceType, ScalarType)); 1.13 up to 2.3 have one function per device (set_cpu_enabled,
// set_autocast_cpu_dtype for CPU; set_enabled, set_autocast_gpu_dtype for CUDA). runtime.cc uses either.
#define FREEADV_TORCH_2_4 (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
// Set by scripts/libtorch.cjs: whether libtorch_cuda and CUDA's headers are there (runtime.cc: cudaBuilt).
#ifndef FREEADV_CUDA
#define FREEADV_CUDA 0
#endif
