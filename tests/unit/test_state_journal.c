/*
 * test_state_journal.c - the state journal (docs/state.md "The journal")
 * and the table's change tracking it writes from: a group per commit with
 * map, peer and del lines; base + journal loaded back; a torn last group
 * (cut at every byte, or a damaged byte) ignored; damage before the last
 * group moves both files aside; a compaction cut short after its rename
 * (the old journal left) does not bring back what the new base dropped;
 * a failed append (the disk full) is cut back and retried; removal keys
 * of MAP and PEER mappings; the tracking's costs (sizeof, memory); links
 * planted as the temp file, the journal or the state file (never written
 * or read through).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcp_wire.h"
#include "state.h"
#include "table.h"
#include "test_file.h"

#define NOW_MS		5000000ULL	/* monotonic */
#define NOW_WALL	1700000000ULL
#define LIFETIME	3600

static char dir[64];

static struct in6_addr
addr(const char *s)
{
	struct in6_addr a;

	assert_true(pcp_addr_pton(s, &a));
	return a;
}

static struct map_req
req_make(const char *host, uint8_t proto, uint16_t port, uint8_t nonce)
{
	struct map_req r;

	memset(&r, 0, sizeof(r));
	r.origin = MAP_ORIGIN_PCP;
	r.requester = addr(host);
	r.internal_addr = r.requester;
	r.requester_port = 40000;
	r.protocol = proto;
	r.internal_port = port;
	r.lifetime = LIFETIME;
	memset(r.nonce, nonce, sizeof(r.nonce));
	return r;
}

static struct mapping *
add_granted(struct table *t, struct map_req *r, uint16_t ext)
{
	struct mapping *m;
	enum map_err err;

	assert_non_null(m = table_add(t, r, ext, LIFETIME, NOW_MS, &err));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	m->outer_addr = addr("198.51.100.7");
	m->outer_port = ext;
	m->upstream = STATE_UPSTREAM_NONE;
	return m;
}

static struct mapping *
add_peer(struct table *t, const char *host, uint16_t port,
    const char *remote, uint16_t rport, uint16_t ext)
{
	struct map_req r = req_make(host, MAP_PROTO_TCP, port, 0x55);

	r.flags |= MAP_F_PEER;
	r.peer_addr = addr(remote);
	r.peer_port = rport;
	return add_granted(t, &r, ext);
}

static struct table *
tracked_table(void)
{
	struct table *t;

	assert_non_null(t = table_new());
	table_set_seed(t, 1);
	assert_int_equal(table_track_changes(t, true), 0);
	return t;
}

static void
hdr_init(struct state_header *h)
{
	memset(h, 0, sizeof(*h));
	h->epoch = 1000;
	h->has_natpmp_key = true;
	memset(h->natpmp_key, 0xab, sizeof(h->natpmp_key));
}

static void
path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
	(void)unlink(buf);
	snprintf(buf + strlen(buf), size - strlen(buf), ".journal");
	(void)unlink(buf);
	snprintf(buf, size, "%s/%s", dir, name);
}

static void
spew(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static size_t
count_of(const char *text, const char *needle)
{
	size_t n = 0;

	for (; (text = strstr(text, needle)) != NULL; text++)
		n++;
	return n;
}

/* The record of that external port in img, or NULL. */
static const struct state_record *
find_ext(const struct state_image *img, uint8_t proto, uint16_t ext,
    bool peer)
{
	size_t i;

	for (i = 0; i < img->count; i++)
		if (img->rec[i].protocol == proto &&
		    img->rec[i].ext_port == ext &&
		    ((img->rec[i].flags & MAPPING_F_PEER) != 0) == peer)
			return &img->rec[i];
	return NULL;
}

static enum state_load_result
load(const char *path, struct state_image *img)
{
	struct state_errors errs;
	enum state_load_result rc;

	rc = state_load(path, NOW_WALL, img, &errs, NULL, 0);
	if (rc != STATE_LOAD_OK)
		state_errors_print(&errs, stdout);
	return rc;
}

/* ---- the table's change tracking ------------------------------------- */

static void
test_dirty_tracking(void **state)
{
	struct table *t;
	struct map_req r;
	struct mapping *a, *b;
	const struct table_key *k;
	enum map_err err;

	(void)state;
	/* the slot lives in what was padding */
	assert_int_equal(sizeof(struct mapping), 168);
	assert_non_null(t = table_new());
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	a = add_granted(t, &r, 8080);
	/* off by default: a table nobody commits keeps no log */
	assert_int_equal(table_dirty_count(t), 0);
	table_remove(t, a, NOW_MS);
	assert_int_equal(table_removed_count(t), 0);
	table_free(t);

	t = tracked_table();
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	a = add_granted(t, &r, 8080);
	table_set_expiry(t, a, NOW_MS + 1000);
	assert_int_equal(table_set_description(t, a, "x"), 0);
	assert_int_equal(table_dirty_count(t), 1);	/* once */
	assert_ptr_equal(table_dirty_at(t, 0), a);
	r = req_make("192.168.1.11", MAP_PROTO_UDP, 53, 2);
	b = add_granted(t, &r, 5353);
	assert_int_equal(table_dirty_count(t), 2);
	table_dirty_clear(t);
	assert_int_equal(table_dirty_count(t), 0);
	/* a caller's own fields */
	table_touch(t, b);
	assert_ptr_equal(table_dirty_at(t, 0), b);
	/* removed: out of the dirty set, its key logged */
	table_remove(t, b, NOW_MS);
	assert_int_equal(table_dirty_count(t), 0);
	assert_int_equal(table_removed_count(t), 1);
	k = table_removed_at(t, 0);
	assert_int_equal(k->protocol, MAP_PROTO_UDP);
	assert_int_equal(k->internal_port, 53);
	assert_false(k->peer);
	/* one never granted was never saved: no key */
	r = req_make("192.168.1.12", MAP_PROTO_TCP, 81, 3);
	assert_non_null(b = table_add(t, &r, 8181, LIFETIME, NOW_MS, &err));
	assert_int_equal(table_dirty_count(t), 1);
	table_remove(t, b, NOW_MS);
	assert_int_equal(table_removed_count(t), 1);
	assert_false(table_dirty_lost(t));
	table_free(t);
}

/* 10,000 mappings: what the tracking costs (printed) and that the
   dirty set stays right through swaps on removal. */
static void
test_dirty_many(void **state)
{
	struct table *t, *plain;
	struct map_req r;
	struct mapping *m;
	char host[32];
	size_t i, n = 10000, with, without;

	(void)state;
	t = tracked_table();
	assert_non_null(plain = table_new());
	for (i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "10.%zu.%zu.%zu", i >> 16,
		    (i >> 8) & 0xff, i & 0xff);
		r = req_make(host, MAP_PROTO_UDP, 4000, 1);
		(void)add_granted(t, &r, (uint16_t)(10000 + i));
		(void)add_granted(plain, &r, (uint16_t)(10000 + i));
	}
	with = table_memory_bytes(t);
	without = table_memory_bytes(plain);
	print_message("10000 mappings: %zu B/mapping tracked, %zu untracked\n",
	    with / n, without / n);
	assert_true(with - without <= n * 2 * sizeof(void *));
	assert_int_equal(table_dirty_count(t), n);
	table_dirty_clear(t);
	/* every other one changes, then a third of them go */
	for (i = 0; i < n; i += 2)
		table_touch(t, table_at(t, i));
	assert_int_equal(table_dirty_count(t), n / 2);
	for (i = 0; i < n / 3; i++)
		table_remove(t, table_at(t, 0), NOW_MS);
	for (i = 0; i < table_dirty_count(t); i++) {
		m = table_dirty_at(t, i);
		assert_non_null(m);
		assert_int_equal(m->dirty_slot, i + 1);
	}
	assert_int_equal(table_removed_count(t), n / 3);
	table_free(t);
	table_free(plain);
}

/* ---- append and load --------------------------------------------------- */

static void
test_append_and_load(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct state_image img;
	struct table *t;
	struct map_req r;
	struct mapping *a, *b, *c;
	char path[128], jpath[160], *text;
	size_t len, base_len;

	(void)state;
	path_in(path, sizeof(path), "a.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	a = add_granted(t, &r, 8080);
	r = req_make("192.168.1.11", MAP_PROTO_UDP, 3074, 2);
	b = add_granted(t, &r, 3074);
	/* the first commit of a writer is a compaction */
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_int_equal(state_journal_stats(j)->compactions, 1);
	assert_int_equal(table_dirty_count(t), 0);
	assert_non_null(text = test_slurp(jpath, &len));
	assert_int_equal(count_of(text, "\n"), 1);	/* header only */
	assert_true(strncmp(text, "pcp-iwfd-journal 1 ", 19) == 0);
	free(text);
	assert_non_null(text = test_slurp(path, &base_len));
	free(text);

	/* nothing changed: nothing written */
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_int_equal(state_journal_stats(j)->groups, 0);

	/* a turn: one new, one changed, one removed */
	r = req_make("192.168.1.12", MAP_PROTO_TCP, 22, 3);
	c = add_granted(t, &r, 2222);
	assert_int_equal(table_set_description(t, a, "web server"), 0);
	table_remove(t, b, NOW_MS);
	h.epoch = 1010;
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 10000,
	    NOW_WALL + 10, false), 0);
	assert_int_equal(state_journal_stats(j)->groups, 1);
	assert_int_equal(state_journal_stats(j)->compactions, 1);
	assert_non_null(text = test_slurp(jpath, &len));
	print_message("%s", text);
	assert_non_null(strstr(text, "\ngroup 1\nepoch 1010\nwritten "
	    "1700000010\n"));
	assert_non_null(strstr(text, "\ndel map udp 192.168.1.11 3074\n"));
	assert_non_null(strstr(text, " web%20server\n"));
	assert_non_null(strstr(text, "\ncommit 5 "));
	free(text);
	/* the base was not touched: cost of the change, not the table */
	assert_non_null(text = test_slurp(path, &len));
	assert_int_equal(len, base_len);
	free(text);

	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 2);
	assert_int_equal(img.hdr.epoch, 1010);
	assert_int_equal(img.hdr.written, NOW_WALL + 10);
	assert_non_null(find_ext(&img, MAP_PROTO_TCP, 8080, false));
	assert_string_equal(find_ext(&img, MAP_PROTO_TCP, 8080,
	    false)->description, "web server");
	assert_non_null(find_ext(&img, MAP_PROTO_TCP, 2222, false));
	assert_null(find_ext(&img, MAP_PROTO_UDP, 3074, false));
	/* expiry measured at the group's time */
	assert_int_equal(find_ext(&img, MAP_PROTO_TCP, 2222, false)->expiry,
	    NOW_WALL + LIFETIME);
	state_image_free(&img);
	(void)c;

	/* the whole file at shutdown: the journal emptied */
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 20000,
	    NOW_WALL + 20, true), 0);
	assert_non_null(text = test_slurp(jpath, &len));
	assert_int_equal(count_of(text, "\n"), 1);
	free(text);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 2);
	state_image_free(&img);
	state_journal_free(j);
	table_free(t);
}

/* PEER lines and their del lines; a MAP's del leaves the PEERs of the
   same internal endpoint; a key removed and added in one turn stays. */
static void
test_peer_and_removal_keys(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct state_image img;
	struct table *t;
	struct map_req r;
	struct mapping *m, *p1, *p2;
	char path[128], jpath[160], *text;
	size_t len;

	(void)state;
	path_in(path, sizeof(path), "p.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	r = req_make("2001:db8::20", MAP_PROTO_TCP, 5555, 7);
	m = add_granted(t, &r, 5555);
	p1 = add_peer(t, "2001:db8::20", 5555, "2001:db8:1::9", 443, 5555);
	p2 = add_peer(t, "2001:db8::20", 5555, "2001:db8:1::a", 443, 5555);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	table_remove(t, m, NOW_MS);
	table_remove(t, p1, NOW_MS);
	/* removed and made again in the same turn: it stays */
	r = req_make("2001:db8::20", MAP_PROTO_TCP, 5555, 8);
	m = add_granted(t, &r, 6666);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_non_null(text = test_slurp(jpath, &len));
	assert_int_equal(count_of(text, "\npeer tcp 2001:db8::20 5555 "), 2);
	assert_non_null(strstr(text, "\ndel peer tcp 2001:db8::20 5555 "
	    "2001:db8:1::9 443\n"));
	assert_non_null(strstr(text, "\ndel map tcp 2001:db8::20 5555\n"));
	/* the del comes before the map line that brings the key back */
	assert_true(strstr(text, "\ndel map tcp 2001:db8::20 5555\n") <
	    strstr(text, "\nmap tcp 2001:db8::20 5555 6666 "));
	free(text);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 2);
	assert_non_null(find_ext(&img, MAP_PROTO_TCP, 6666, false));
	assert_null(find_ext(&img, MAP_PROTO_TCP, 5555, false));
	assert_non_null(find_ext(&img, MAP_PROTO_TCP, 5555, true));
	assert_true(IN6_ARE_ADDR_EQUAL(&find_ext(&img, MAP_PROTO_TCP, 5555,
	    true)->peer_addr, &mapping_peer(p2)->addr));
	state_image_free(&img);
	state_journal_free(j);
	table_free(t);
}

/* A base and a journal of three groups; returns the text of the journal
   and where each group ends (ends[0] the header's end). */
static char *
three_groups(const char *path, size_t *len, size_t ends[4])
{
	struct state_journal *j;
	struct state_header h;
	struct table *t;
	struct map_req r;
	char jpath[160], *text, *p;
	int i;

	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	(void)add_granted(t, &r, 8080);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	for (i = 0; i < 3; i++) {
		r = req_make("192.168.1.20", MAP_PROTO_UDP, (uint16_t)(100 + i),
		    (uint8_t)i);
		(void)add_granted(t, &r, (uint16_t)(9100 + i));
		assert_int_equal(state_journal_commit(j, &h, t, NOW_MS,
		    NOW_WALL, false), 0);
	}
	state_journal_free(j);
	table_free(t);
	assert_non_null(text = test_slurp(jpath, len));
	ends[0] = (size_t)(strchr(text, '\n') - text) + 1;
	for (i = 1, p = text; i < 4; i++) {
		p = strstr(p, "\ncommit ");
		assert_non_null(p);
		p = strchr(p + 1, '\n');
		ends[i] = (size_t)(p - text) + 1;
	}
	assert_int_equal(ends[3], *len);
	return text;
}

/* A crash while the last group was written: cut at every byte of it,
   or a byte of it changed: the groups before it load, it is ignored. */
static void
test_torn_tail(void **state)
{
	struct state_image img;
	char path[128], jpath[160], *text, *copy;
	size_t len, ends[4], cut, i;

	(void)state;
	path_in(path, sizeof(path), "t.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	text = three_groups(path, &len, ends);
	for (cut = ends[2]; cut < ends[3]; cut++) {
		spew(jpath, text, cut);
		assert_int_equal(load(path, &img), STATE_LOAD_OK);
		assert_int_equal(img.count, 3);	/* base 1 + groups 1, 2 */
		assert_null(find_ext(&img, MAP_PROTO_UDP, 9102, false));
		assert_non_null(find_ext(&img, MAP_PROTO_UDP, 9101, false));
		state_image_free(&img);
	}
	/* each byte of the last group changed in turn (a sector that did
	   not make it): never loaded, never an error */
	assert_non_null(copy = malloc(len));
	for (i = ends[2]; i < len - 1; i++) {
		memcpy(copy, text, len);
		copy[i] = copy[i] == 'x' ? 'y' : 'x';
		spew(jpath, copy, len);
		assert_int_equal(load(path, &img), STATE_LOAD_OK);
		assert_int_equal(img.count, 3);
		state_image_free(&img);
	}
	/* the whole journal: all four */
	spew(jpath, text, len);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 4);
	state_image_free(&img);
	/* cut inside the header, or empty: the base alone */
	spew(jpath, text, ends[0] - 3);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 1);
	state_image_free(&img);
	spew(jpath, text, 0);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 1);
	state_image_free(&img);
	free(copy);
	free(text);
}

static size_t
files_starting(const char *prefix)
{
	struct dirent *de;
	DIR *d;
	size_t n = 0, plen = strlen(prefix);

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, prefix, plen) == 0;
	closedir(d);
	return n;
}

/* Damage before the last group is no crash: both files moved aside. */
static void
test_corrupt_middle(void **state)
{
	struct state_image img;
	struct state_errors errs;
	struct stat sb;
	char path[128], jpath[160], moved[256], *text;
	size_t len, ends[4];

	(void)state;
	path_in(path, sizeof(path), "c.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	text = three_groups(path, &len, ends);
	text[ends[0] + 20] ^= 1;	/* inside group 1 */
	spew(jpath, text, len);
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, moved,
	    sizeof(moved)), STATE_LOAD_CORRUPT);
	state_errors_print(&errs, stdout);
	assert_true(errs.count >= 2);
	assert_non_null(strstr(errs.msg[0], "c.state.journal:"));
	assert_non_null(strstr(errs.msg[0], ": group 1 (line 2): bad count "
	    "or checksum"));
	assert_int_equal(img.count, 0);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(stat(jpath, &sb), -1);
	assert_int_equal(stat(moved, &sb), 0);
	assert_int_equal(files_starting("c.state.corrupt-"), 1);
	assert_int_equal(files_starting("c.state.journal.corrupt-"), 1);
	state_image_free(&img);
	free(text);

	/* a committed group with a line the writer never writes (the
	   checksum made right): corrupt too */
	path_in(path, sizeof(path), "d.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	text = three_groups(path, &len, ends);
	spew(jpath, text, ends[0]);
	{
		char buf[512];
		uint64_t h;
		const char *g = "group 1\nbogus line\n";
		size_t k, n;
		char hdr_sum[17];

		memcpy(hdr_sum, text + ends[0] - 17, 16);
		hdr_sum[16] = '\0';
		h = strtoull(hdr_sum, NULL, 16);
		for (k = 0; g[k] != '\0'; k++) {
			h ^= (uint8_t)g[k];
			h *= 0x100000001b3ULL;
		}
		n = (size_t)snprintf(buf, sizeof(buf), "%.*s%scommit 1 "
		    "%016llx\n", (int)ends[0], text, g, (unsigned long long)h);
		spew(jpath, buf, n);
	}
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, moved,
	    sizeof(moved)), STATE_LOAD_CORRUPT);
	assert_non_null(strstr(errs.msg[0], "d.state.journal:3: unknown "
	    "journal line \"bogus\""));
	state_image_free(&img);
	free(text);
}

/*
 * Compaction order: the new base is renamed into place (and its directory
 * synced) before the journal is emptied. A crash in between leaves the
 * old journal next to the new base: bound to the old base's checksum, it
 * is ignored, so a mapping removed since its groups is not brought back.
 */
static void
test_compaction_order(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct state_image img;
	struct table *t;
	struct map_req r;
	struct mapping *x;
	char path[128], jpath[160], *old;
	size_t len;

	(void)state;
	path_in(path, sizeof(path), "o.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	r = req_make("192.168.1.30", MAP_PROTO_TCP, 25, 4);
	x = add_granted(t, &r, 2525);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_non_null(old = test_slurp(jpath, &len));
	/* X goes; the compaction writes a base without it, a second
	   later (other bytes than the first base) */
	table_remove(t, x, NOW_MS);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 1000,
	    NOW_WALL + 1, true), 0);
	/* ... and the crash came before the journal was emptied */
	spew(jpath, old, len);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 0);
	state_image_free(&img);
	free(old);

	/* The same again, the new base byte for byte the old one (same
	   records, same second): the journal is emptied before the rename
	   (state_journal_pre_rename), so no crash leaves the old groups
	   next to it. */
	x = add_granted(t, &r, 2525);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 1000,
	    NOW_WALL + 1, false), 0);
	table_remove(t, x, NOW_MS + 1000);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 1000,
	    NOW_WALL + 1, true), 0);
	assert_non_null(old = test_slurp(jpath, &len));
	assert_int_equal(count_of(old, "\n"), 1);
	free(old);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 0);
	state_image_free(&img);
	state_journal_free(j);
	table_free(t);
}

/* The disk is full: the append fails, nothing durable, the journal cut
   back to its last group; the change set is kept and goes out whole at
   the next commit. */
static void
test_append_failure(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct state_image img;
	struct table *t;
	struct map_req r;
	struct rlimit old, lim;
	struct stat sb;
	char path[128], jpath[160];
	off_t before;

	(void)state;
	path_in(path, sizeof(path), "f.state");
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	(void)add_granted(t, &r, 8080);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	r = req_make("192.168.1.11", MAP_PROTO_TCP, 81, 2);
	(void)add_granted(t, &r, 8181);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_int_equal(stat(jpath, &sb), 0);
	before = sb.st_size;

	r = req_make("192.168.1.12", MAP_PROTO_UDP, 82, 3);
	(void)add_granted(t, &r, 8282);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)before + 40;	/* half a group fits */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(state_journal_stats(j)->failures, 1);
	assert_int_equal(table_dirty_count(t), 1);	/* kept */
	assert_int_equal(stat(jpath, &sb), 0);
	assert_int_equal(sb.st_size, before);		/* cut back */
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 2);
	state_image_free(&img);

	/* room again: the next commit carries it */
	r = req_make("192.168.1.13", MAP_PROTO_UDP, 83, 4);
	(void)add_granted(t, &r, 8383);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	assert_int_equal(state_journal_stats(j)->compactions, 1);
	assert_int_equal(load(path, &img), STATE_LOAD_OK);
	assert_int_equal(img.count, 4);
	state_image_free(&img);
	state_journal_free(j);
	table_free(t);
}

/* What makes a commit a compaction: a header value a group does not
   carry (the NAT-PMP key), a wall-clock step. */
static void
test_compaction_triggers(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct table *t;
	struct map_req r;
	struct mapping *m;
	char path[128];

	(void)state;
	path_in(path, sizeof(path), "g.state");
	t = tracked_table();
	hdr_init(&h);
	assert_non_null(j = state_journal_new(path));
	r = req_make("192.168.1.10", MAP_PROTO_TCP, 80, 1);
	m = add_granted(t, &r, 8080);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    false), 0);
	table_touch(t, m);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 5000,
	    NOW_WALL + 5, false), 0);
	assert_int_equal(state_journal_stats(j)->compactions, 1);
	assert_int_equal(state_journal_stats(j)->groups, 1);
	/* the clock stepped by a minute */
	table_touch(t, m);
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 6000,
	    NOW_WALL + 66, false), 0);
	assert_int_equal(state_journal_stats(j)->compactions, 2);
	/* a new key */
	table_touch(t, m);
	h.natpmp_key[0] ^= 1;
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS + 7000,
	    NOW_WALL + 67, false), 0);
	assert_int_equal(state_journal_stats(j)->compactions, 3);
	state_journal_free(j);
	table_free(t);
}

/* ---- names planted in the directory (docs/security.md) ----------------- */

#define VICTIM_TEXT	"root's file: must never change\n"

/* A file outside the state's names, standing for /etc/shadow. */
static void
victim_make(char *victim, size_t size)
{
	FILE *f;

	snprintf(victim, size, "%s/victim", dir);
	assert_non_null(f = fopen(victim, "w"));
	assert_int_equal(fputs(VICTIM_TEXT, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
victim_untouched(const char *victim)
{
	struct stat st;
	size_t len;
	char *text;

	assert_int_equal(lstat(victim, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_non_null(text = test_slurp(victim, &len));
	assert_string_equal(text, VICTIM_TEXT);
	free(text);
}

static bool
errors_say(const struct state_errors *errs, const char *what)
{
	char *buf = NULL;
	size_t len = 0;
	bool found;
	FILE *f;

	assert_non_null(f = open_memstream(&buf, &len));
	state_errors_print(errs, f);
	assert_int_equal(fclose(f), 0);
	found = strstr(buf, what) != NULL;
	free(buf);
	return found;
}

/*
 * The first write of a start runs as root in a directory the user owns:
 * a symbolic link (or a hard link) the user planted as the temp file or
 * the journal must not make root write through it, and the loader must
 * not read through one. The temp name is removed and made anew; a linked
 * journal or state file is an error.
 */
static void
test_planted_links(void **state)
{
	struct state_journal *j;
	struct state_header h;
	struct state_image img;
	struct state_errors errs;
	struct table *t;
	struct stat st;
	char path[128], jpath[160], tmp[160], victim[128], other[128];

	(void)state;
	path_in(path, sizeof(path), "p.state");
	snprintf(jpath, sizeof(jpath), "%s%s", path, STATE_JOURNAL_SUFFIX);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	victim_make(victim, sizeof(victim));
	t = tracked_table();
	hdr_init(&h);

	/* the temp file as a link: removed, the write goes to a new file */
	(void)unlink(tmp);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_non_null(j = state_journal_new(path));
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    true), 0);
	victim_untouched(victim);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lstat(tmp, &st), -1);
	state_journal_free(j);

	/* the journal as a symbolic link: never opened (the compaction's
	   base holds everything, the journal's reset fails and is logged;
	   the next commit compacts again), the target not truncated */
	assert_int_equal(unlink(jpath), 0);
	assert_int_equal(symlink(victim, jpath), 0);
	assert_non_null(j = state_journal_new(path));
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    true), 0);
	victim_untouched(victim);
	assert_int_equal(lstat(jpath, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	state_journal_free(j);

	/* ... or as a second name of the target (no protected_hardlinks) */
	assert_int_equal(unlink(jpath), 0);
	assert_int_equal(link(victim, jpath), 0);
	assert_non_null(j = state_journal_new(path));
	assert_int_equal(state_journal_commit(j, &h, t, NOW_MS, NOW_WALL,
	    true), 0);
	victim_untouched(victim);
	state_journal_free(j);
	assert_int_equal(unlink(jpath), 0);

	/* the loader: a journal link is an error, nothing moved aside */
	assert_int_equal(symlink(victim, jpath), 0);
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, NULL, 0),
	    STATE_LOAD_ERROR);
	assert_true(errors_say(&errs, "symbolic link"));
	state_image_free(&img);
	assert_int_equal(lstat(jpath, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	victim_untouched(victim);
	assert_int_equal(unlink(jpath), 0);

	/* ... and so is a state file that is a link, even to a good one */
	snprintf(other, sizeof(other), "%s/elsewhere.state", dir);
	assert_int_equal(rename(path, other), 0);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, NULL, 0),
	    STATE_LOAD_ERROR);
	assert_true(errors_say(&errs, "symbolic link"));
	state_image_free(&img);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* the same file by its own name loads */
	assert_int_equal(state_load(other, NOW_WALL, &img, &errs, NULL, 0),
	    STATE_LOAD_OK);
	state_image_free(&img);
	(void)unlink(path);
	(void)unlink(other);
	(void)unlink(victim);
	table_free(t);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_state_journal.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	struct dirent *de;
	char p[sizeof(dir) + sizeof(de->d_name) + 1];
	DIR *d;

	(void)state;
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		(void)unlink(p);
	}
	closedir(d);
	(void)rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_tracking),
		cmocka_unit_test(test_dirty_many),
		cmocka_unit_test(test_append_and_load),
		cmocka_unit_test(test_peer_and_removal_keys),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_corrupt_middle),
		cmocka_unit_test(test_compaction_order),
		cmocka_unit_test(test_append_failure),
		cmocka_unit_test(test_compaction_triggers),
		cmocka_unit_test(test_planted_links),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
