/*
 * clock.h - the one clock interface (DESIGN.md "Time"): monotonic
 * milliseconds for timers and lifetimes. Core modules take `now` as a
 * parameter; only the daemon's loop reads the clock, so tests use a fake one.
 */
#ifndef IWFD_CLOCK_H
#define IWFD_CLOCK_H

#include <stdint.h>

uint64_t	clock_now_ms(void);

#endif
