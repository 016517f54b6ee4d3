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
// PacketBatch.ctEntry: (handle, gen) => CtEntry | undefined, reading `t` (the tuples and expiry behind a packet's
// ctHandle/ctGen, for --ctorig*/--ctrepl*/--ctexpire).
Napi::Function entryLookup(Napi::Env env, const std::shared_ptr<ct::ConnTable>& t);

}  // namespace nfqwall
