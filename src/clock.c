/*
 * clock.c - CLOCK_MONOTONIC in milliseconds (never goes backwards, RFC 6887
 * §8.5: the client clock MUST NOT go backwards).
 */
#include <time.h>

#include "clock.h"

uint64_t
clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
