#pragma once
#include <string>

namespace nfqwall {
// 1: sent; 0: NOTIFY_SOCKET unset; -errno: the send failed.
int sdNotify(const std::string& state);
}  // namespace nfqwall
