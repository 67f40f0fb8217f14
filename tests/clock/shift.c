/* Preloaded by tests/clock/on-day: the wall clock runs DO_BILLING_CLOCK_OFFSET_NS nanoseconds
 * away from the real one, in every process that inherits the environment. Only the wall clock
 * moves (CLOCK_REALTIME and what is built on it: gettimeofday, time, timespec_get); monotonic
 * clocks, sleeps and timed waits stay real, so a test that waits waits as long as it would. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn next_clock_gettime;
static long long offset_ns;

static void load(void) {
    if (next_clock_gettime) return;
    const char *text = getenv("DO_BILLING_CLOCK_OFFSET_NS");
    offset_ns = text ? strtoll(text, NULL, 10) : 0;
    next_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
}

static int moves(clockid_t clock) {
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    load();
    int rc = next_clock_gettime(clock, ts);
    if (rc == 0 && offset_ns != 0 && moves(clock)) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
        ts->tv_sec = (time_t)(ns / 1000000000LL);
        ts->tv_nsec = (long)(ns % 1000000000LL);
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    return base == TIME_UTC && clock_gettime(CLOCK_REALTIME, ts) == 0 ? base : 0;
}
