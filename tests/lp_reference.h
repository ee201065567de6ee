/* tests/lp_reference.h: an LP decoder written from DESIGN section 1 alone, for the tests to
** check lp/ against (it shares no code with lp/: the code is read as a string of bit
** characters, the value computed in double by the arithmetic formula). */
#ifndef LPQ_TESTS_LP_REFERENCE_H
#define LPQ_TESTS_LP_REFERENCE_H

/* The value of the n-bit code `code` of LP<n, es, rs, sf>: 0 for zero, NaN for NaR. */
double lp_reference_decode(int n, int es, int rs, int sf, unsigned code);

#endif
