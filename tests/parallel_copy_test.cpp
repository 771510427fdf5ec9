// ParallelCopy (loader/parallel_copy.h) against std::memcpy: empty, tiny, just under and over a
// page, and a large odd size, split over 1, 2 and 5 threads, several copies on the same object
// (the workers wait between calls). The destinations are poisoned and a byte past the end guards
// against overruns.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "loader/parallel_copy.h"

using namespace nibble;

TEST_CASE("parallel copy: the bytes std::memcpy copies, over 1, 2 and 5 threads") {
  const size_t largest = (size_t(3) << 20) + 7, sizes[] = {0, 1, 4095, 4097, largest};
  const int rounds = 3;
  std::mt19937 rng(3);
  std::vector<uint8_t> src(largest + rounds);
  for (uint8_t& b : src) b = uint8_t(rng());
  for (unsigned threads : {1u, 2u, 5u}) {
    CAPTURE(threads);
    ParallelCopy copier(threads);
    for (int round = 0; round < rounds; ++round) {
      for (size_t bytes : sizes) {
        CAPTURE(bytes);
        const uint8_t* from = src.data() + round;  // another offset, other bytes, each round
        std::vector<uint8_t> want(bytes + 1, 0xa5), got(bytes + 1, 0xa5);
        if (bytes) std::memcpy(want.data(), from, bytes);
        copier.copy(got.data(), from, bytes);
        CHECK(got == want);
      }
    }
  }
}
