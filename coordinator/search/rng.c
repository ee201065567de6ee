/* coordinator/search/rng.c: the job's PRNG, xoshiro256** (Blackman and Vigna), seeded by
** splitmix64 so that any 64-bit seed, 0 included, gives a well-mixed state. */
#include "coordinator/search/search.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void lpq_rng_seed(lpq_rng_t *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&seed);
}

uint64_t lpq_rng_next(lpq_rng_t *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double lpq_rng_uniform(lpq_rng_t *rng) {
  return (double)(lpq_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t lpq_rng_below(lpq_rng_t *rng, uint64_t bound) {
  if (bound == 0)
    return 0;
  /* Rejection of the short last bucket keeps every value equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do
    x = lpq_rng_next(rng);
  while (x >= limit);
  return x % bound;
}

int lpq_rng_range(lpq_rng_t *rng, int lo, int hi) {
  if (hi <= lo)
    return lo;
  return lo + (int)lpq_rng_below(rng, (uint64_t)((int64_t)hi - lo + 1));
}
