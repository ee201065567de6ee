/*
** tests/fuzz/fuzz_wire.c: the worker pool's message decoders (common/wire.c): every frame goes
** to lpq_wire_peek and to every decoder (each must check the type itself). What decodes must
** encode again, and the encoding must be a fixed point: decoding it and encoding again gives
** the same bytes.
*/
#include "tests/fuzz/fuzz.h"

#include "common/common.h"

/* Decodes frame as message type `type` into a fresh struct and encodes that into out.
** Returns the decoder's code; a decoded message that does not encode is a failed check. */
static int fuzz_wire_roundtrip(int type, const uint8_t *frame, size_t len, lpq_wire_buf_t *out) {
  lpq_error_t err;
  int rc;
  lpq_wire_buf_reset(out);
  switch (type) {
  case LPQ_MSG_READY: {
    lpq_ready_t m;
    if ((rc = lpq_wire_decode_ready(frame, len, &m, &err)) == 0)
      FUZZ_CHECK(lpq_wire_encode_ready(out, &m, &err) == 0, "READY: %s", err.msg);
    break;
  }
  case LPQ_MSG_TASK: {
    lpq_task_t m;
    if ((rc = lpq_wire_decode_task(frame, len, &m, &err)) == 0) {
      FUZZ_CHECK(m.settings_json != NULL, "TASK without settings");
      FUZZ_CHECK(lpq_wire_encode_task(out, &m, &err) == 0, "TASK: %s", err.msg);
      lpq_task_clear(&m);
    }
    break;
  }
  case LPQ_MSG_RESULT: {
    lpq_result_t m;
    if ((rc = lpq_wire_decode_result(frame, len, &m, &err)) == 0) {
      FUZZ_CHECK(m.status <= 0 && memchr(m.error, '\0', sizeof m.error) != NULL, "RESULT");
      FUZZ_CHECK(lpq_wire_encode_result(out, &m, &err) == 0, "RESULT: %s", err.msg);
    }
    break;
  }
  case LPQ_MSG_BLOB_GET: {
    lpq_blob_get_t m;
    if ((rc = lpq_wire_decode_blob_get(frame, len, &m, &err)) == 0)
      FUZZ_CHECK(lpq_wire_encode_blob_get(out, &m, &err) == 0, "BLOB_GET: %s", err.msg);
    break;
  }
  case LPQ_MSG_BLOB: {
    lpq_blob_chunk_t m;
    if ((rc = lpq_wire_decode_blob(frame, len, &m, &err)) == 0) {
      FUZZ_CHECK(m.len == 0 || (m.data >= frame && m.data + m.len <= frame + len),
                 "BLOB data outside the frame");
      FUZZ_CHECK(lpq_wire_encode_blob(out, &m, &err) == 0, "BLOB: %s", err.msg);
    }
    break;
  }
  default:
    FUZZ_CHECK(0, "no decoder for type %d", type);
    rc = 0;
    break;
  }
  if (rc != 0)
    FUZZ_CHECK(rc < 0 && err.msg[0] != '\0', "type %d: error %d without a message", type, rc);
  return rc;
}

void fuzz_wire(const uint8_t *data, size_t size) {
  lpq_msg_type_t type;
  lpq_error_t err;
  int peeked = lpq_wire_peek(data, size, &type, &err) == 0;
  lpq_wire_buf_t first = {0}, second = {0};
  static const int types[] = {LPQ_MSG_READY, LPQ_MSG_TASK, LPQ_MSG_RESULT, LPQ_MSG_BLOB_GET,
                              LPQ_MSG_BLOB};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (fuzz_wire_roundtrip(types[i], data, size, &first) != 0)
      continue;
    FUZZ_CHECK(peeked && (int)type == types[i], "%s decoded a frame of another type",
               lpq_msg_type_name(types[i]));
    FUZZ_CHECK(fuzz_wire_roundtrip(types[i], first.data, first.len, &second) == 0,
               "%s: its own encoding does not decode", lpq_msg_type_name(types[i]));
    FUZZ_CHECK(first.len == second.len && memcmp(first.data, second.data, first.len) == 0,
               "%s: encoding is not a fixed point", lpq_msg_type_name(types[i]));
  }
  lpq_wire_buf_clear(&first);
  lpq_wire_buf_clear(&second);
}

LPQ_FUZZ_MAIN(fuzz_wire)
