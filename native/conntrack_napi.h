// What addon.cc (the Queue's options and verdicts) takes from the ConnTable wrapper in conntrack_napi.cc.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "conntrack.h"

namespace nfqwall {

void registerConnTable(Napi::Env env, Napi::Object exports);
// The table behind a ConnTable object, or null when `v` is not one.
std::shared_ptr<ct::ConnTable> connTableOf(const Napi::Value& v);
// Reads one CtNatRequest (native/index.d.ts) into `q`; throws a TypeError/RangeError prefixed with `where`.
void parseNatRequest(Napi::Object r, nat::Request& q, const std::string& where);

}  // namespace nfqwall
