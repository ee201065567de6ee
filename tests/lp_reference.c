/* tests/lp_reference.c: DESIGN section 1's decoding, step by step (see lp_reference.h). */
#include "tests/lp_reference.h"

#include <math.h>

double lp_reference_decode(int n, int es, int rs, int sf, unsigned code) {
  if (n < 2 || n > 31)
    return NAN;
  const double modulus = pow(2.0, n);
  double c = fmod((double)code, modulus);
  if (c == 0.0)
    return 0.0;
  if (c == modulus / 2) /* 100...0 */
    return NAN;
  int negative = c >= modulus / 2; /* the top bit */
  if (negative)
    c = modulus - c; /* -c mod 2^n */
  char bit[32] = {0}; /* bit[0] the sign, bit[n - 1] the last */
  for (int i = n - 1; i >= 0; i--) {
    bit[i] = fmod(c, 2.0) == 1.0 ? '1' : '0';
    c = floor(c / 2.0);
  }
  int pos = 1; /* the n - 1 bits after the sign, high to low */
  char r = bit[pos];
  int m = 0;
  while (pos < n && bit[pos] == r && m < rs) {
    m++;
    pos++;
  }
  if (pos < n && m < rs) /* ended by the opposite bit: consumed */
    pos++;
  int k = r == '1' ? m - 1 : -m;
  double e = 0.0;
  for (int i = 0; i < es; i++) { /* bits past the end count as 0 */
    e = 2.0 * e + (pos < n && bit[pos] == '1' ? 1.0 : 0.0);
    if (pos < n)
      pos++;
  }
  int frac_bits = n - pos;
  double f = 0.0;
  for (; pos < n; pos++)
    f = 2.0 * f + (bit[pos] == '1' ? 1.0 : 0.0);
  double phi = f / pow(2.0, frac_bits);
  double log2_abs = k * pow(2.0, es) + e + phi - sf;
  double v = pow(2.0, log2_abs);
  return negative ? -v : v;
}
