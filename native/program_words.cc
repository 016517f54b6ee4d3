#include "program_words.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace nfqwall {
namespace mt {
namespace {

// Blocks by where their memory starts: JavaScript gives back a view of a block, which load() must recognise.
std::mutex registryMu;
std::unordered_map<const void*, std::weak_ptr<WordBlock>>& registry() {
  static auto* r = new std::unordered_map<const void*, std::weak_ptr<WordBlock>>();
  return *r;
}

}  // namespace

std::shared_ptr<WordBlock> WordBlock::allocate(size_t words, std::string& err) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  if (words == 0) words = 1;
  if (words > (SIZE_MAX - size_t(page)) / sizeof(uint32_t)) {
    err = "program too large";
    return nullptr;
  }
  size_t bytes = (words * sizeof(uint32_t) + size_t(page) - 1) / size_t(page) * size_t(page);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    err = std::string("cannot map ") + std::to_string(bytes) + " bytes for a program: " + strerror(errno);
    return nullptr;
  }
  std::shared_ptr<WordBlock> b(new WordBlock(static_cast<uint32_t*>(p), bytes / sizeof(uint32_t), bytes));
  std::lock_guard<std::mutex> lock(registryMu);
  registry()[p] = b;
  return b;
}

std::shared_ptr<WordBlock> WordBlock::find(const void* base) {
  std::lock_guard<std::mutex> lock(registryMu);
  auto it = registry().find(base);
  return it == registry().end() ? nullptr : it->second.lock();
}

WordBlock::~WordBlock() {
  {
    std::lock_guard<std::mutex> lock(registryMu);
    registry().erase(data_);
  }
  munmap(data_, bytes_);
}

bool WordBlock::seal(std::string& err) {
  if (sealed_.exchange(true, std::memory_order_acq_rel)) {
    err = "a program already runs on these words";
    return false;
  }
  if (mprotect(data_, bytes_, PROT_READ) != 0) {
    err = std::string("cannot seal the program's words: ") + strerror(errno);
    sealed_.store(false, std::memory_order_release);
    return false;
  }
  return true;
}

void WordBlock::unseal() {
  if (mprotect(data_, bytes_, PROT_READ | PROT_WRITE) != 0) return;  // stays sealed: never written again
  // Failing, the pages stay in memory; recycle zeroes them by hand.
  (void)madvise(data_, bytes_, MADV_DONTNEED);
  sealed_.store(false, std::memory_order_release);
}

bool WordBlock::recycle() {
  if (sealed_.load(std::memory_order_acquire)) return false;
  if (madvise(data_, bytes_, MADV_DONTNEED) != 0) std::memset(data_, 0, bytes_);
  return true;
}

}  // namespace mt
}  // namespace nfqwall
