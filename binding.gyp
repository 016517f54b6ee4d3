{
  "targets": [
    {
      "target_name": "nfqwall",
      "sources": ["native/addon.cc", "native/queue.cc", "native/late_budget.cc", "native/notify.cc", "native/rawsend.cc", "native/caps.cc", "native/packet.cc", "native/nat.cc", "native/conntrack.cc", "native/conntrack_napi.cc", "native/flowcache.cc", "native/flowcache_napi.cc", "native/matcher.cc", "native/matcher_napi.cc", "native/program_words.cc", "native/heapguard.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags!": ["-fno-exceptions", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20", "-O3"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions"],
      "libraries": ["<!@(pkg-config --libs libnetfilter_queue libmnl)"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
