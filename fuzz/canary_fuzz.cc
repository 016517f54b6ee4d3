// A libFuzzer target with two known bugs, so test/robust/fuzz.test.ts can show that scripts/fuzz.sh builds with the
// sanitizers it claims and that their findings stop the run: an input starting "UB!" overflows a signed int
// (UndefinedBehaviorSanitizer, fatal only with -fno-sanitize-recover), one starting "OOB" reads one byte past the
// input (AddressSanitizer). Any other input is fine. Never part of the default targets.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= 3 && std::memcmp(data, "UB!", 3) == 0) {
    volatile int big = INT_MAX;  // volatile: the overflow happens at run time, where UBSan checks it
    volatile int sum = big + int(size);
    (void)sum;
  }
  if (size >= 3 && std::memcmp(data, "OOB", 3) == 0) {
    volatile uint8_t past = data[size];  // libFuzzer's copy of the input is exactly `size` bytes
    (void)past;
  }
  return 0;
}
