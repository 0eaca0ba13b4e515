/* stream.c — load a bundle and stream 32 greedy tokens after a prompt: libm64 in twenty lines. */
#include <m64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3) return fprintf(stderr, "usage: %s MODEL.m64 PROMPT\n", argv[0]), 2;
  m64_session_options o = {.verify_layers = 1, .verify_stamps = 1, .n_threads = 2};
  m64_session *s = NULL;
  m64_err e = {{0}};
  int32_t *ids = NULL, id = 0;
  uint32_t n = 0;
  int eog = 0, rc = m64_session_open(argv[1], &o, &s, &e) ||
                    m64_session_tokenize(s, argv[2], strlen(argv[2]), M64_TOKENIZE_ADD_BOS, &ids, &n, &e) ||
                    m64_session_eval_batch(s, ids, n, 0, NULL, &e);
  for (uint32_t pos = n; !rc && !eog && pos < n + 32; pos++) {
    char piece[1024];
    size_t len = 0;
    const int32_t prev = pos == n ? ids[n - 1] : id;
    rc = m64_session_sample(s, 0.0f, 0, 1.0f, &id, &e) || m64_session_is_eog(s, id, &eog, &e) ||
         (!eog && (m64_session_piece(s, prev, id, piece, sizeof piece, &len, &e) ||
                   m64_session_eval(s, id, pos, NULL, &e)));
    fwrite(piece, 1, rc || eog ? 0 : len, stdout), fflush(stdout);
  }
  if (rc) fprintf(stderr, "\nerror: %s\n", e.msg[0] ? e.msg : "failed");
  return free(ids), m64_session_close(s), putchar('\n'), rc;
}
