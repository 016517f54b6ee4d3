// What addon.cc (the Queue's options) takes from the FlowCache wrapper in flowcache_napi.cc.
#pragma once

#include <napi.h>

#include <memory>

#include "flowcache.h"

namespace nfqwall {

void registerFlowCache(Napi::Env env, Napi::Object exports);
// The cache behind a FlowCache object, or null when `v` is not one.
std::shared_ptr<fc::FlowCache> flowCacheOf(const Napi::Value& v);

}  // namespace nfqwall
