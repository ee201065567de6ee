/*
** tests/fuzz/fuzz_api.c: the JSON-RPC request handling of the API server (nesting limit,
** parsing, batches, notifications, the request checks, method lookup and schema validation
** of every method's params), one line after another on one connection, through
** lpq_api_fuzz_line (coordinator/api/fuzz.c).
*/
#include "tests/fuzz/fuzz.h"

#include "coordinator/api/api_internal.h"

void fuzz_api(const uint8_t *data, size_t size) {
  int rc = lpq_api_fuzz_line((const char *)data, size);
  FUZZ_CHECK(rc == 0, "lpq_api_fuzz_line: %d", rc);
}

LPQ_FUZZ_MAIN(fuzz_api)
