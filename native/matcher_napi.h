// What addon.cc and queue.cc take from the Matcher wrapper in matcher_napi.cc.
#pragma once

#include <napi.h>

#include <memory>

#include "matcher.h"

namespace nfqwall {

void registerMatcher(Napi::Env env, Napi::Object exports);
// The matcher behind a Matcher object, or null when `v` is not one.
std::shared_ptr<mt::Matcher> matcherOf(const Napi::Value& v);

}  // namespace nfqwall
