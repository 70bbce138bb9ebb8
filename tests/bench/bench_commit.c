/*
 * bench_commit.c - what the end-of-turn state commit costs a reply
 * (docs/state.md "The journal", "Replies wait for the commit";
 * tests/bench/README.md "bench_commit").
 *
 * Every reply of a loop turn waits for the turn's commit, so the commit's
 * time is the latency it adds to each of them, and changes per turn /
 * commit time bounds the requests per second. For table sizes N (default
 * 1,000, 10,000, 50,000) and K changed mappings per turn (1, 10, 100), on
 * tmpfs (/dev/shm: a gateway's /run) and on the disk (/var/tmp), it times
 *   journal: K mappings changed (table_set_expiry, as a refresh does), K
 *            60-octet replies held in the outbox, state_journal_commit()
 *            (one group appended + fdatasync; a compaction when the
 *            journal outgrows the base, counted where it falls), release;
 *   rewrite: the same turn with the whole file rewritten
 *            (state_write_table: temp, fsync, rename, directory fsync),
 *            what the daemon did before the journal.
 * and checks the work: the files load back (base + journal) with N
 * mappings, the last expiry of every changed one as set.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "map.h"
#include "outbox.h"
#include "pcp_wire.h"
#include "state.h"
#include "table.h"

#define BENCH_NOW_MS		1000000ULL
#define BENCH_NOW_WALL		1700000000ULL
#define BENCH_LIFETIME		3600
#define BENCH_REPLY_SIZE	60	/* a PCP MAP response */
#define BENCH_MAX_SIZES		8
#define BENCH_MAX_TURNS		2000
#define BENCH_MAX_SAMPLES	BENCH_MAX_TURNS
#define BENCH_RESERVED_SHIFT	40000	/* past every port of 50,000 */

static const size_t bench_sizes[] = { 1000, 10000, 50000 };
static const size_t bench_changes[] = { 1, 10, 100 };

struct bench_medium {
	const char	*name;
	const char	*parent;
	/* turns timed: the rewrite at 50,000 takes tens of ms a turn */
	size_t		 journal_turns;
	size_t		 rewrite_turns;
};

static const struct bench_medium bench_media[] = {
	{ "tmpfs", "/dev/shm", 1000, 40 },
	{ "disk", "/var/tmp", 200, 20 },
};

static int failures;

static uint64_t
bench_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct table *
bench_table(size_t n)
{
	struct table *t;
	struct mapping *m;
	struct map_req r;
	enum map_err err;
	uint16_t ext;
	size_t i;

	if ((t = table_new()) == NULL || table_track_changes(t, true) == -1)
		abort();
	table_set_seed(t, 1);
	table_set_hold(t, 0);
	for (i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.origin = MAP_ORIGIN_PCP;
		/* 10.x.y.z, 64 mappings a host, TCP and UDP */
		r.internal_addr.s6_addr[10] = 0xff;
		r.internal_addr.s6_addr[11] = 0xff;
		r.internal_addr.s6_addr[12] = 10;
		r.internal_addr.s6_addr[13] = (uint8_t)(i >> 14);
		r.internal_addr.s6_addr[14] = (uint8_t)(i >> 6);
		r.internal_addr.s6_addr[15] = 1;
		r.requester = r.internal_addr;
		r.requester_port = 5350;
		r.protocol = i % 2 == 0 ? MAP_PROTO_TCP : MAP_PROTO_UDP;
		r.internal_port = (uint16_t)(2000 + (i & 63));
		r.lifetime = BENCH_LIFETIME;
		memcpy(r.nonce, &i, sizeof(i));
		ext = (uint16_t)(1024 + i / 2);
		/* RFC 6887 §11.3: UDP 5350/5351 are never mapped */
		if (table_port_reserved(r.protocol, ext))
			ext += BENCH_RESERVED_SHIFT;
		m = table_add(t, &r, ext, BENCH_LIFETIME, BENCH_NOW_MS, &err);
		if (m == NULL || !mapping_set_state(t, m, MAP_STATE_GRANTED))
			abort();
		m->upstream = STATE_UPSTREAM_NONE;
	}
	return t;
}

static void
bench_reply_release(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	size_t *sent = arg;

	(void)data;
	(void)len;
	if (fate == OUTBOX_SEND)
		(*sent)++;
}

static int
bench_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct bench_result {
	double		 mean_us;
	double		 p50_us;
	double		 p99_us;
	double		 max_us;
	uint64_t	 compactions;
	double		 bytes_per_turn;
	bool		 ok;
};

static void
bench_stats(uint64_t *ns, size_t n, struct bench_result *res)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += ns[i];
	qsort(ns, n, sizeof(ns[0]), bench_u64_cmp);
	res->mean_us = (double)sum / (double)n / 1000.0;
	res->p50_us = (double)ns[n / 2] / 1000.0;
	res->p99_us = (double)ns[(n * 99) / 100] / 1000.0;
	res->max_us = (double)ns[n - 1] / 1000.0;
}

/* The files hold N mappings, each changed one with its last expiry. */
static bool
bench_check(const char *path, struct table *t, size_t n, uint64_t wall)
{
	struct state_image img;
	struct state_errors errs;
	size_t i;
	bool ok;

	if (state_load(path, wall, &img, &errs, NULL, 0) != STATE_LOAD_OK) {
		state_errors_print(&errs, stderr);
		return false;
	}
	ok = img.count == n;
	for (i = 0; ok && i < img.count; i++) {
		struct mapping *m = table_find_internal(t, img.rec[i].protocol,
		    &img.rec[i].internal_addr, img.rec[i].internal_port);

		ok = m != NULL && img.rec[i].expiry == wall +
		    mapping_remaining(m, BENCH_NOW_MS + (wall -
		    BENCH_NOW_WALL) * 1000);
	}
	state_image_free(&img);
	return ok;
}

/*
 * Turns of K changes. The mappings changed walk through the table, so a
 * group never repeats the previous one; every turn moves the clocks by 1 s
 * (one wall second, one monotonic second: no clock step).
 */
static void
bench_run(const char *path, size_t n, size_t k, size_t turns, bool journal,
    struct bench_result *res)
{
	static uint64_t ns[BENCH_MAX_SAMPLES];
	uint8_t reply[BENCH_REPLY_SIZE];
	struct state_journal *j = NULL;
	struct state_header h;
	struct outbox *ob;
	struct table *t = bench_table(n);
	uint64_t now_ms = BENCH_NOW_MS, wall = BENCH_NOW_WALL, t0;
	size_t turn, i, next = 0, sent = 0;
	int rc;

	memset(&h, 0, sizeof(h));
	memset(reply, 0x5a, sizeof(reply));
	if ((ob = outbox_new(NULL)) == NULL)
		abort();
	if (journal && (j = state_journal_new(path)) == NULL)
		abort();
	/* the start: a whole file */
	if ((journal ? state_journal_commit(j, &h, t, now_ms, wall, true) :
	    state_write_table(path, &h, t, now_ms, wall)) != 0)
		abort();
	table_dirty_clear(t);
	for (turn = 0; turn < turns; turn++) {
		now_ms += 1000;
		wall++;
		h.epoch++;
		t0 = bench_ns();
		for (i = 0; i < k; i++) {
			table_set_expiry(t, table_at(t, next),
			    now_ms + BENCH_LIFETIME * 1000ULL);
			next = (next + 1) % n;
			(void)outbox_hold(ob, bench_reply_release, &sent, true,
			    reply, sizeof(reply));
		}
		if (journal)
			rc = state_journal_commit(j, &h, t, now_ms, wall,
			    false);
		else {
			rc = state_write_table(path, &h, t, now_ms, wall);
			table_dirty_clear(t);
		}
		outbox_release(ob, rc == 0);
		ns[turn] = bench_ns() - t0;
		if (rc != 0)
			abort();
	}
	bench_stats(ns, turns, res);
	res->compactions = journal ? state_journal_stats(j)->compactions - 1 :
	    0;
	res->bytes_per_turn = journal ?
	    (double)state_journal_stats(j)->bytes / (double)turns : 0;
	res->ok = sent == turns * k && bench_check(path, t, n, wall);
	if (!res->ok)
		failures++;
	state_journal_free(j);
	outbox_free(ob);
	table_free(t);
}

static void
bench_clean(const char *dir)
{
	char p[512];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		(void)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		(void)unlink(p);
	}
	closedir(d);
}

static void
bench_row(const char *medium, size_t n, size_t k, const char *how,
    size_t turns, const struct bench_result *r)
{
	printf("| %-5s | %6zu | %3zu | %-7s | %5zu | %9.1f | %9.1f | %9.1f | "
	    "%9.1f | %9.0f | %4" PRIu64 " | %8.0f |%s\n", medium, n, k, how,
	    turns, r->mean_us, r->p50_us, r->p99_us, r->max_us,
	    r->mean_us > 0 ? (double)k * 1e6 / r->mean_us : 0,
	    r->compactions, r->bytes_per_turn,
	    r->ok ? "" : " FAILED: the files do not hold the table");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	size_t sizes[BENCH_MAX_SIZES], nsizes = 0, m, s, c;
	struct bench_result r;
	char dir[256], path[300];
	int i;

	for (i = 1; i < argc && nsizes < BENCH_MAX_SIZES; i++)
		sizes[nsizes++] = strtoul(argv[i], NULL, 10);
	if (nsizes == 0)
		for (s = 0; s < sizeof(bench_sizes) / sizeof(bench_sizes[0]);
		    s++)
			sizes[nsizes++] = bench_sizes[s];
	printf("Commit cost per loop turn: every reply of the turn waits for "
	    "it (us; req/s = K / mean)\n\n");
	printf("| medium| N      | K   | commit  | turns | mean us   | "
	    "p50 us    | p99 us    | max us    | req/s max | cmp  | B/turn   |"
	    "\n");
	printf("|-------|--------|-----|---------|-------|-----------|"
	    "-----------|-----------|-----------|-----------|------|----------|"
	    "\n");
	for (m = 0; m < sizeof(bench_media) / sizeof(bench_media[0]); m++) {
		(void)snprintf(dir, sizeof(dir), "%s/bench_commit.XXXXXX",
		    bench_media[m].parent);
		if (mkdtemp(dir) == NULL) {
			printf("| %-5s | skipped: %s: %s\n", bench_media[m].name,
			    bench_media[m].parent, strerror(errno));
			continue;
		}
		(void)snprintf(path, sizeof(path), "%s/state", dir);
		for (s = 0; s < nsizes; s++)
			for (c = 0; c < sizeof(bench_changes) /
			    sizeof(bench_changes[0]); c++) {
				bench_run(path, sizes[s], bench_changes[c],
				    bench_media[m].journal_turns, true, &r);
				bench_row(bench_media[m].name, sizes[s],
				    bench_changes[c], "journal",
				    bench_media[m].journal_turns, &r);
				bench_clean(dir);
				bench_run(path, sizes[s], bench_changes[c],
				    bench_media[m].rewrite_turns, false, &r);
				bench_row(bench_media[m].name, sizes[s],
				    bench_changes[c], "rewrite",
				    bench_media[m].rewrite_turns, &r);
				bench_clean(dir);
			}
		(void)rmdir(dir);
	}
	return failures == 0 ? 0 : 1;
}
