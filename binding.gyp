{
  "targets": [
    {
      "target_name": "freeadv",
      "sources": ["<!@(node -p \"require('fs').readdirSync('native').filter((f) => f.endsWith('.cc')).sort().map((f) => 'native/' + f).join(' ')\")"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.cjs include)"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "<!@(node scripts/libtorch.cjs defines)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<!@(node scripts/libtorch.cjs cxxstd)", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations",
                    "-idirafter", "<(module_root_dir)/native/compat"],
      "libraries": ["<!@(node scripts/libtorch.cjs libs)"],
      "ldflags": ["<!@(node scripts/libtorch.cjs ldflags)"]
    }
  ]
}
