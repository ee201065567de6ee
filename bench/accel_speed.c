/* bench/accel_speed.c: how long the search waits for one candidate's cost. Prints the time of
** accel_cost_network for all of ResNet-50 and ViT-B/16 on every built-in accelerator, against
** the budget of issue 5 (under 1 ms for ResNet-50). */
#include "accel_sim/accel_sim.h"
#include "bench/bench_verdict.h"

#include <stdio.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
  lpq_error_t err;
  accel_arch_t *arch = accel_arch_default(&err);
  if (arch == NULL) {
    fprintf(stderr, "accel_speed: %s\n", err.msg);
    return 1;
  }
  int status = 0;
  double worst_resnet_us = 0;
  printf("%-10s %-13s %7s %12s %10s\n", "network", "accelerator", "layers", "us/candidate",
         "budget");
  for (const char *const *name = accel_builtin_networks; *name && status == 0; name++) {
    accel_network_t *net = accel_network_builtin(*name, &err);
    accel_layer_formats_t f[256];
    if (net == NULL || net->count > 256) {
      fprintf(stderr, "accel_speed: %s\n", net ? "too many layers" : err.msg);
      status = 1;
      accel_network_free(&net);
      break;
    }
    for (size_t i = 0; i < arch->count && status == 0; i++) {
      const accel_t *a = &arch->accels[i];
      const accel_mix_t *mix = accel_find_mix(a, net->name);
      const double uniform[3] = {0, 0, 1};
      accel_cost_t c;
      double sink = 0;
      if (accel_mix_formats(net, mix ? mix->share : uniform, a->family, f, &err) != 0) {
        fprintf(stderr, "accel_speed: %s\n", err.msg);
        status = 1;
        break;
      }
      /* Enough repetitions for ~0.2 s; the formats change every call, as in a search. */
      const int reps = 2000;
      double t0 = now_s();
      for (int r = 0; r < reps; r++) {
        f[(size_t)r % net->count].weight.bits = 2 + 2 * (r % 3);
        if (accel_cost_network(a, net, f, NULL, &c, &err) != 0) {
          fprintf(stderr, "accel_speed: %s\n", err.msg);
          status = 1;
          break;
        }
        sink += c.energy_pj;
      }
      double us = (now_s() - t0) / reps * 1e6;
      printf("%-10s %-13s %7zu %12.2f %10s%s\n", net->name, a->name, net->count, us,
             us < 1000 ? "< 1 ms" : "OVER", sink > 0 ? "" : " (no cost?)");
      if (net->name[0] == 'r' && us > worst_resnet_us)
        worst_resnet_us = us;
    }
    accel_network_free(&net);
  }
  accel_arch_free(&arch);
  if (status == 0)
    bench_verdict("accel_speed", "one ResNet-50 candidate's cost (slowest accelerator)",
                  worst_resnet_us / 1000.0, "<", 1.0, "ms");
  return status;
}
