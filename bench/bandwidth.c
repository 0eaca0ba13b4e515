/* bandwidth.c — streaming read bandwidth of this machine, the ceiling of a decode step
 * (each token reads every weight once). Reads a 1 GiB buffer with T threads, best of 5.
 *   bandwidth [THREADS...]   prints "threads GB/s" lines */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES (1ull << 30)
static const uint64_t *buf;
typedef struct part { size_t begin, end; uint64_t sum; } part;

static void *reader(void *arg) {
  part *p = arg;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = p->begin; i < p->end; i += 4) {
    s0 += buf[i];
    s1 += buf[i + 1];
    s2 += buf[i + 2];
    s3 += buf[i + 3];
  }
  p->sum = s0 + s1 + s2 + s3;
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  uint64_t *b = aligned_alloc(4096, BYTES);
  if (!b) return 1;
  memset(b, 1, BYTES);
  buf = b;
  const size_t words = BYTES / 8;
  for (int a = 1; a < argc || a == 1; a++) {
    int t = argc > 1 ? atoi(argv[a]) : 1;
    if (t < 1 || t > 64) return 1;
    double best = 1e30;
    uint64_t check = 0;
    for (int rep = 0; rep < 5; rep++) {
      pthread_t th[64];
      part parts[64];
      double t0 = now();
      for (int i = 0; i < t; i++) {
        parts[i] = (part){words * i / t & ~(size_t)3, words * (i + 1) / t & ~(size_t)3, 0};
        pthread_create(&th[i], NULL, reader, &parts[i]);
      }
      for (int i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        check += parts[i].sum;
      }
      double dt = now() - t0;
      if (dt < best) best = dt;
    }
    printf("%d %.2f\n", t, BYTES / best / 1e9 + (check == 42 ? 1e-9 : 0));
    if (argc == 1) break;
  }
  free(b);
  return 0;
}
