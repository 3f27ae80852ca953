// gomp_throttle: switches libgomp's spin-waiting to its short "throttled" spin
// count at run time, from inside the process, without OMP_WAIT_POLICY or
// GOMP_SPINCOUNT (which libgomp reads once, in its constructor initialize_env,
// before main).
//
// Build and use (LD_PRELOAD, so that ctk itself is unchanged):
//   gcc -O2 -shared -fPIC -fopenmp bench/contention/gomp_throttle.c -o libgomp_throttle.so -lpthread
//   LD_PRELOAD=$PWD/libgomp_throttle.so GOMP_THROTTLE=auto ctk bench ...
//
// The lever (libgomp, gcc 12; config/linux/wait.h do_spin, team.c):
//   do_spin() spins gomp_spin_count_var times (300000 when OMP_WAIT_POLICY is
//   unset) before futex_wait, but only gomp_throttled_spin_count_var times
//   (100) while gomp_managed_threads > gomp_available_cpus. Both counts are
//   fixed at start-up; gomp_managed_threads is not: it counts the threads of
//   every libgomp thread pool in the process and is re-read on every wait.
//   A thread pool belongs to the (non-OpenMP) thread that starts a parallel
//   region, and stays alive, its workers docked (asleep in futex_wait after
//   the throttled spin), until that thread exits (gomp_free_thread, the
//   pthread key destructor, then lowers gomp_managed_threads again).
//   So: "throttle on" = start a parking thread that runs one parallel region
//   of omp_get_num_procs()+1 threads and then blocks, which lifts
//   gomp_managed_threads above the CPU count; "throttle off" = let it exit.
//   The docked workers cost no CPU; the main team is not touched.
//
// GOMP_THROTTLE=always    throttle for the whole run (what passive-like waiting costs on a quiet machine)
// GOMP_THROTTLE=auto      a monitor thread samples /proc/stat and this process's getrusage every
//                         GOMP_THROTTLE_PERIOD_MS (default 100) and throttles while the other
//                         processes used more than GOMP_THROTTLE_ON cores (default 0.5) in the last
//                         period; it stops throttling after 5 periods below GOMP_THROTTLE_OFF (0.25).
// GOMP_THROTTLE_VERBOSE=1 prints each switch on stderr.
// Anything else (or unset): does nothing.
#define _GNU_SOURCE
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_want_on = 0;       // guarded by g_mu
static int g_parked = 0;        // a parking thread holds a pool (guarded by g_mu)
static int g_verbose = 0;
static atomic_int g_switches = 0;

static void* park_main(void* arg) {
  (void)arg;
  const int n = omp_get_num_procs() + 1;
#pragma omp parallel num_threads(n)
  {
    (void)omp_get_thread_num();
  }
  pthread_mutex_lock(&g_mu);
  g_parked = 1;
  pthread_cond_broadcast(&g_cv);
  while (g_want_on) pthread_cond_wait(&g_cv, &g_mu);
  g_parked = 0;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  return NULL;  // thread exit -> gomp_free_thread -> gomp_managed_threads drops back
}

static void set_throttle(int on) {
  pthread_mutex_lock(&g_mu);
  if (on == g_want_on) {
    pthread_mutex_unlock(&g_mu);
    return;
  }
  g_want_on = on;
  if (on) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, park_main, NULL) != 0) g_want_on = 0;
    pthread_attr_destroy(&attr);
  } else {
    pthread_cond_broadcast(&g_cv);
  }
  pthread_mutex_unlock(&g_mu);
  atomic_fetch_add(&g_switches, 1);
  if (g_verbose) fprintf(stderr, "gomp_throttle: %s\n", on ? "on" : "off");
}

struct sample {
  double machine_busy_s, self_s, at_s;
};

static int take_sample(struct sample* s, double tick) {
  FILE* f = fopen("/proc/stat", "r");
  if (!f) return 0;
  long long user = 0, nice = 0, sys = 0, idle = 0, iow = 0, irq = 0, sirq = 0, steal = 0;
  int ok = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &user, &nice, &sys, &idle, &iow, &irq, &sirq,
                  &steal) == 8;
  fclose(f);
  if (!ok) return 0;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  s->machine_busy_s = (double)(user + nice + sys + irq + sirq + steal) / tick;
  s->self_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
              ru.ru_stime.tv_usec / 1e6;
  s->at_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
  return 1;
}

static double env_double(const char* name, double dflt) {
  const char* v = getenv(name);
  return v && *v ? atof(v) : dflt;
}

static void* monitor_main(void* arg) {
  (void)arg;
  const double tick = (double)sysconf(_SC_CLK_TCK);
  const double on_cores = env_double("GOMP_THROTTLE_ON", 0.5);
  const double off_cores = env_double("GOMP_THROTTLE_OFF", 0.25);
  const long period_ms = (long)env_double("GOMP_THROTTLE_PERIOD_MS", 100);
  struct sample prev, cur;
  if (tick <= 0 || !take_sample(&prev, tick)) return NULL;
  int quiet_periods = 0, on = 0;
  for (;;) {
    struct timespec d = {period_ms / 1000, (period_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    if (!take_sample(&cur, tick)) return NULL;
    const double dt = cur.at_s - prev.at_s;
    const double others = dt > 0 ? ((cur.machine_busy_s - prev.machine_busy_s) - (cur.self_s - prev.self_s)) / dt : 0;
    prev = cur;
    if (others > on_cores) {
      quiet_periods = 0;
      if (!on) set_throttle(on = 1);
    } else if (others < off_cores) {
      if (on && ++quiet_periods >= 5) {
        set_throttle(on = 0);
        quiet_periods = 0;
      }
    } else {
      quiet_periods = 0;
    }
    if (g_verbose > 1) fprintf(stderr, "gomp_throttle: others %.2f cores, %s\n", others, on ? "on" : "off");
  }
  return NULL;
}

__attribute__((constructor)) static void gomp_throttle_init(void) {
  const char* mode = getenv("GOMP_THROTTLE");
  const char* verbose = getenv("GOMP_THROTTLE_VERBOSE");
  g_verbose = verbose ? atoi(verbose) : 0;
  if (!mode) return;
  // Child processes (ctk may spawn some) do not inherit the policy.
  unsetenv("LD_PRELOAD");
  if (strcmp(mode, "always") == 0) {
    set_throttle(1);
  } else if (strcmp(mode, "auto") == 0) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_create(&t, &attr, monitor_main, NULL);
    pthread_attr_destroy(&attr);
  }
}

__attribute__((destructor)) static void gomp_throttle_fini(void) {
  if (g_verbose) fprintf(stderr, "gomp_throttle: %d switches\n", atomic_load(&g_switches));
}
