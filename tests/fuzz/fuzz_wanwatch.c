/*
 * fuzz_wanwatch.c - libFuzzer target for the rtnetlink address parse and
 * the debounce of the WAN address watcher (src/wanwatch.c).
 *
 * The input is one datagram as read from the NETLINK_ROUTE socket. It is
 * parsed three times: into room for every event, into room for one, and
 * from an odd address (the parse copies headers out, so alignment must not
 * matter). Invariants, any broken one aborts: the three agree on status
 * and count and on the events they wrote; every event is an IPv4-mapped
 * address with a known kind. Then the events drive the debounce on a fake
 * clock, each deadline being met with the event's address (or none for a
 * deletion): a change is reported exactly when the address read differs
 * from the last one reported, and the deadline is cleared by each settle.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp_wire.h"
#include "wanwatch.h"

#define FUZZ_MAX_EVENTS	256
#define FUZZ_STEP_MS	700

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct wanwatch_event ev_all[FUZZ_MAX_EVENTS];

static void
fuzz_check_events(const struct wanwatch_event *ev, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!pcp_addr_is_v4(&ev[i].addr) ||
		    (ev[i].kind != WANWATCH_ADDR_NEW &&
		    ev[i].kind != WANWATCH_ADDR_DEL))
			abort();
}

/* Feed the events to the debounce; check what it reports. */
static void
fuzz_debounce(const struct wanwatch_event *ev, size_t n)
{
	struct wanwatch_state s;
	struct wanwatch_change chg;
	struct in6_addr last;
	bool present = false, reported;
	uint64_t now = 0;
	size_t i;

	wanwatch_state_init(&s, NULL);
	for (i = 0; i < n; i++) {
		now += FUZZ_STEP_MS;
		wanwatch_state_note(&s, ev[i].kind, now);
		if (wanwatch_state_deadline(&s) <= now ||
		    wanwatch_state_deadline(&s) == UINT64_MAX)
			abort();
		if (ev[i].kind == WANWATCH_ADDR_DEL) {
			reported = wanwatch_state_settle(&s, NULL, &chg);
			if (reported != present || (reported && chg.has))
				abort();
			present = false;
		} else {
			reported = wanwatch_state_settle(&s, &ev[i].addr, &chg);
			if (reported != (!present ||
			    !IN6_ARE_ADDR_EQUAL(&last, &ev[i].addr)))
				abort();
			if (reported && (!chg.has ||
			    !IN6_ARE_ADDR_EQUAL(&chg.addr, &ev[i].addr)))
				abort();
			last = ev[i].addr;
			present = true;
		}
		if (wanwatch_state_deadline(&s) != UINT64_MAX)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wanwatch_event one;
	enum wanwatch_parse_status st, st1, st2;
	uint8_t *odd;
	size_t n, n1, n2, written;

	st = wanwatch_parse(data, size, ev_all, FUZZ_MAX_EVENTS, &n);
	written = n < FUZZ_MAX_EVENTS ? n : FUZZ_MAX_EVENTS;
	fuzz_check_events(ev_all, written);
	st1 = wanwatch_parse(data, size, &one, 1, &n1);
	if (st1 != st || n1 != n ||
	    (n > 0 && memcmp(&one, &ev_all[0], sizeof(one)) != 0))
		abort();
	if ((odd = malloc(size + 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(odd + 1, data, size);
	st2 = wanwatch_parse(odd + 1, size, NULL, 0, &n2);
	free(odd);
	if (st2 != st || n2 != n)
		abort();
	fuzz_debounce(ev_all, written);
	return 0;
}
