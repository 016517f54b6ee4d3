// Memory for a program's words that JavaScript writes and the matcher then runs in place, without a copy
// (docs/matcher.md, "Program memory"). No N-API here: matcher_napi.cc hands blocks to JavaScript.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace nfqwall {
namespace mt {

// Page-aligned memory of its own (mmap). While a program runs on it, it is sealed read-only (mprotect): a validated
// program cannot change under the receive threads, and a write from JavaScript faults instead of corrupting it. When
// that program goes, the block is unsealed and its pages given back (they read as zeros when next written).
class WordBlock {
 public:
  // Null, with `err` set, when the memory cannot be had.
  static std::shared_ptr<WordBlock> allocate(size_t words, std::string& err);
  // The live block whose memory starts at `base`; null when there is none.
  static std::shared_ptr<WordBlock> find(const void* base);
  ~WordBlock();
  WordBlock(const WordBlock&) = delete;
  WordBlock& operator=(const WordBlock&) = delete;

  uint32_t* data() const { return data_; }
  size_t words() const { return words_; }
  // Read-only from now on, for a program that runs on it; false (with `err`) when it cannot be, or one already does.
  bool seal(std::string& err);
  // The program that sealed it is gone: writable again, pages given back. A block that cannot be made writable
  // again stays sealed for good (recycle refuses it).
  void unseal();
  // Zeros it for JavaScript to write a new program into; false when a program runs on it.
  bool recycle();

 private:
  WordBlock(uint32_t* data, size_t words, size_t bytes) : data_(data), words_(words), bytes_(bytes) {}
  uint32_t* data_;
  size_t words_;
  size_t bytes_;
  // Set by seal and cleared by unseal, which may run on a receive thread (where a program's last holder lets go).
  std::atomic<bool> sealed_{false};
};

}  // namespace mt
}  // namespace nfqwall
