/*
 * state.h - the state file (DESIGN.md "State and durability", issue 7):
 * the whole mapping table, the proxy's Epoch, the NAT-PMP nonce secret and
 * what the proxy knows of each upstream server, in a versioned text format
 * (docs/state.md) that survives a restart and a reboot.
 *
 * Three layers:
 *   - pure: state_parse() text -> struct state_image, state_format()
 *     image -> text; no clock, no files, every field validated, errors
 *     "name:line: message";
 *   - I/O: state_write() (temp file, fsync, rename, fsync of the directory)
 *     and state_load() (a missing file is no state; a corrupt one is moved
 *     aside to <path>.corrupt-<time>, never overwritten);
 *   - the table: state_image_from_table() / state_write_table() save it,
 *     state_restore_table() puts the records back into an empty table.
 *
 * Time: the file holds wall-clock seconds (CLOCK_REALTIME): the monotonic
 * clock restarts at every boot. Every wall time in a file was computed at
 * one instant, `written`, from the monotonic clock, so a clock step while
 * the daemon ran does not skew it; only the downtime is measured with the
 * wall clock (state_epoch_resume, state_restore_table).
 */
#ifndef IWFD_STATE_H
#define IWFD_STATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "iwf_nonce.h"
#include "map.h"

struct table;
struct config_upstream;

/* Version 2 added the client lease (`lease`, after `expiry`); version-1
   files still load, every mapping without a lease. */
#define STATE_VERSION		2
#define STATE_VERSION_MIN	1
#define STATE_MAGIC		"pcp-iwfd-state"
/* Upstream servers a file describes (UPSTREAM_MAX_SERVERS). */
#define STATE_MAX_UPSTREAM	8
#define STATE_UPSTREAM_NONE	0xff	/* UPSTREAM_NO_SERVER */
/* A mapping that never expires (TABLE_EXPIRY_NEVER, static mappings). */
#define STATE_EXPIRY_NEVER	UINT64_MAX
/* state_record lease: no client lease (the client renews itself, as PCP
   and NAT-PMP clients do), or one that never ends (IGD:1 lease 0). */
#define STATE_LEASE_NONE	0
#define STATE_LEASE_FOREVER	UINT64_MAX
/* Wall times above this are refused (year ~36800): keeps every sum of a
   time and a lifetime in range. */
#define STATE_TIME_MAX		(UINT64_C(1) << 40)
/* A file larger than this is refused before it is read. */
#define STATE_FILE_MAX		(256u * 1024 * 1024)
/* How long a mapping whose grant ran out during the downtime but whose
   client lease still runs is kept after a restart, for the proxy to
   re-create it upstream (state_restore_table). */
#define STATE_LAPSED_GRACE_S	60
#define STATE_ERRORS_MAX	8
#define STATE_ERROR_LEN		256

/* What the proxy knows of one upstream server (RFC 6887 §8.5). */
struct state_upstream {
	struct in6_addr	 addr;
	uint16_t	 port;
	bool		 epoch_known;
	uint32_t	 epoch;		/* the last server Epoch seen */
	uint64_t	 epoch_age;	/* seconds between seeing it and
					   `written` */
};

struct state_header {
	uint32_t	 epoch;		/* our Epoch Time at `written` */
	uint64_t	 written;	/* wall seconds */
	bool		 has_natpmp_key;
	uint8_t		 natpmp_key[IWF_NONCE_KEY_SIZE];
	size_t		 n_upstream;
	struct state_upstream upstream[STATE_MAX_UPSTREAM];
};

/* One mapping, every field a restart needs (struct mapping). */
struct state_record {
	struct in6_addr	 internal_addr;
	struct in6_addr	 requester;
	struct in6_addr	 outer_addr;
	struct in6_addr	 peer_addr;	/* PEER only */
	uint64_t	 expiry;	/* wall seconds; STATE_EXPIRY_NEVER.
					   The real end of the grant, never
					   a renewal point (MAPPING_F_RENEW) */
	uint64_t	 lease;		/* the client's lease end (struct
					   mapping lease_end) in wall
					   seconds; STATE_LEASE_NONE,
					   STATE_LEASE_FOREVER */
	uint32_t	 lifetime;	/* granted */
	uint32_t	 requested_lifetime;
	uint8_t		 nonce[MAP_NONCE_SIZE];
	uint16_t	 internal_port;
	uint16_t	 ext_port;
	uint16_t	 outer_port;
	uint16_t	 requester_port;
	uint16_t	 peer_port;	/* PEER only */
	uint8_t		 protocol;
	uint8_t		 origin;	/* enum map_origin */
	uint8_t		 flags;		/* MAPPING_F_*, with MAPPING_F_PEER
					   for a PEER mapping; never
					   MAPPING_F_RENEW (the table's own) */
	uint8_t		 upstream;	/* header index; STATE_UPSTREAM_NONE */
	uint32_t	 line;		/* where it was parsed; 0 otherwise */
	char		 description[MAP_DESCRIPTION_MAX + 1]; /* "" none */
};

struct state_image {
	struct state_header	 hdr;
	struct state_record	*rec;
	size_t			 count, cap;
	/* the base file's end-line checksum (state_parse); a journal
	   names the base it follows by it */
	uint64_t		 checksum;
};

struct state_errors {
	size_t		 count;		/* messages in msg[] */
	size_t		 dropped;	/* beyond STATE_ERRORS_MAX */
	char		 msg[STATE_ERRORS_MAX][STATE_ERROR_LEN];
};

void	state_image_init(struct state_image *);
void	state_image_free(struct state_image *);
/* Append a record (copied); -1 when memory runs out. */
int	state_image_add(struct state_image *, const struct state_record *);

void	state_errors_init(struct state_errors *);
/* One message a line, then a count of the dropped ones if any. */
void	state_errors_print(const struct state_errors *, FILE *);

/*
 * Parse a whole file, version 1 (no lease field: every record gets
 * STATE_LEASE_NONE) or 2. 0 on success; -1 with errs filled ("name:line:
 * message", every bad line reported) and *img emptied on any error,
 * including a truncated file, a checksum or count mismatch, an unknown
 * version, a duplicate mapping or upstream line. img is initialised here;
 * free it with state_image_free() either way.
 */
int	state_parse(const char *name, const char *text, size_t len,
	    struct state_image *, struct state_errors *errs);
/*
 * Write the image as text, always version STATE_VERSION: header, one
 * line a record, the end line with the count and checksum. -1 on a write
 * error (ferror) or when a record would not parse back (a bug; nothing
 * partial is meant to be kept: write to a temp file). Output of
 * state_format parses to the same image.
 */
int	state_format(const struct state_image *, FILE *);

/*
 * Durable write: <path>.tmp in the same directory, fsync, rename over
 * path, fsync the directory. On any failure -1 (errno set, logged); the
 * temp file is removed and the old file at path untouched, except when
 * only the directory fsync failed (the new file is then in place but its
 * rename may not survive a crash).
 */
int	state_write(const char *path, const struct state_image *);

enum state_load_result {
	STATE_LOAD_OK = 0,	/* *img holds the file */
	STATE_LOAD_NONE,	/* no file: no state, not an error */
	STATE_LOAD_CORRUPT,	/* errs say where; moved to *moved_to */
	STATE_LOAD_ERROR,	/* could not read (or move) it: errs say
				   why; the file is left where it is */
};
/*
 * Read and parse path, then replay <path>.journal onto it
 * (state_journal_apply). A corrupt file is renamed to
 * <path>.corrupt-<now_wall> (-<n> appended while that exists; never
 * replacing a file), and the new name copied to moved_to (may be NULL).
 * A corrupt journal moves both aside (the journal to
 * <path>.journal.corrupt-<now_wall>, named in errs); so does a corrupt
 * base with its journal. A torn last group or a stale journal is logged
 * and ignored.
 */
enum state_load_result state_load(const char *path, uint64_t now_wall,
	    struct state_image *, struct state_errors *errs,
	    char *moved_to, size_t moved_to_size);

/*
 * The journal (docs/state.md "The journal"): <path>.journal, next to the
 * state file (the base). Each loop turn that changed mappings appends one
 * group: the changed mappings as their map/peer lines, the removed ones
 * as del lines by their key (table_key), the Epoch and `written`, then a
 * commit line with a count and a checksum chained from the base's; then
 * fdatasync. The cost is the changes, not the table. A compaction
 * rewrites the base whole (state_write's temp, fsync, rename, directory
 * fsync) and only then empties the journal, binding it to the new base
 * by its checksum.
 */
#define STATE_JOURNAL_SUFFIX	".journal"
/* A journal larger than this and than the base is compacted. */
#define STATE_JOURNAL_COMPACT_MIN	(4u * 1024 * 1024)
/* The wall clock moved against the monotonic one by more than this since
   the base was written (NTP, a clock set late): compact, so that the
   wall times of one file stay those of one instant. */
#define STATE_JOURNAL_CLOCK_SLACK_MS	2000

struct state_journal_info {
	size_t		 groups;	/* committed groups applied */
	uint32_t	 torn_line;	/* the unfinished last group's
					   line, ignored; 0 none */
	bool		 stale;		/* bound to another base: ignored */
};
/*
 * Replay a journal's text onto img, the base as state_parse() left it
 * (its checksum names the base). A journal of another base (a compaction
 * cut short after the rename) is ignored (info->stale), as is a torn last
 * group (no commit line, a bad count or checksum, a last line cut short:
 * a crash while it was written, its replies never sent). 0 then; -1 with
 * errs ("name:line: message") and img emptied on any other damage, on a
 * bad line in a committed group, and when the result holds duplicate
 * keys or external ports.
 */
int	state_journal_apply(const char *name, const char *text, size_t len,
	    struct state_image *img, struct state_errors *errs,
	    struct state_journal_info *info);

struct state_journal_stats {
	uint64_t	 groups;	/* appended */
	uint64_t	 bytes;		/* appended */
	uint64_t	 compactions;
	uint64_t	 failures;
};
struct state_journal;
/* The writer for the state file path; touches no file yet. NULL on
   memory. */
struct state_journal *state_journal_new(const char *path);
void	state_journal_free(struct state_journal *);
/*
 * Make the table's changes (table_dirty_at, table_removed_at) durable:
 * one appended group, or a compaction when asked (whole: start-up,
 * shutdown, a change the table could not track), when no base was
 * written by this writer yet, when the journal outgrew
 * max(STATE_JOURNAL_COMPACT_MIN, the base's size), when the NAT-PMP key
 * or the upstream list changed, or after a wall-clock step. Nothing
 * changed: 0 without writing. On success the table's change set is
 * cleared. -1 (logged) on a failure: nothing was made durable, the
 * change set is kept for the next try, and the journal is cut back to
 * its last complete group.
 */
int	state_journal_commit(struct state_journal *,
	    const struct state_header *, struct table *, uint64_t now_ms,
	    uint64_t now_wall, bool whole);
const struct state_journal_stats *state_journal_stats(
	    const struct state_journal *);
/* The journal's file, and the state file (base) it follows. */
const char *state_journal_path(const struct state_journal *);
const char *state_journal_base(const struct state_journal *);

/*
 * RFC 6887 §8.5: the Epoch a clean restart continues with: the stored
 * Epoch plus the downtime. False (start a fresh Epoch) when the downtime
 * cannot be known (the wall clock is behind `written`: stepped back, or a
 * router without a real-time clock before NTP) or the Epoch would wrap.
 */
bool	state_epoch_resume(const struct state_header *, uint64_t now_wall,
	    uint32_t *epoch_now);

/*
 * The records of every mapping a client was told about: GRANTED or
 * RENEWING, or once granted and now being re-created upstream (what is
 * only REQUESTED or PENDING_UPSTREAM and never granted got no SUCCESS; the
 * client retries), and neither expired nor past its client lease. expiry
 * is the real end of the grant (mapping_remaining: grant_end while the
 * proxy renews by itself) and MAPPING_F_RENEW is never saved; the lease
 * end goes to wall seconds like expiry. Sets hdr.written = now_wall; the
 * rest of the header is the caller's. O(n). -1 when memory runs out (img
 * emptied).
 */
int	state_image_from_table(const struct table *, uint64_t now_ms,
	    uint64_t now_wall, struct state_image *);
/*
 * The same records as state_image_from_table, written straight from the
 * table (no image: a group commit of 50,000 mappings allocates nothing
 * per mapping) with state_write's durability. hdr->written is replaced
 * by now_wall.
 */
int	state_write_table(const char *path, const struct state_header *,
	    const struct table *, uint64_t now_ms, uint64_t now_wall);

/*
 * Map the file's upstream indexes to the configured servers by address
 * and port: map[i] is the configured index of file server i, or
 * STATE_UPSTREAM_NONE when it is gone. Returns how many are gone.
 */
size_t	state_upstream_remap(const struct state_header *,
	    const struct config_upstream *, size_t n_conf,
	    uint8_t map[STATE_MAX_UPSTREAM]);

struct state_restore_stats {
	size_t		 restored;	/* in the table, state GRANTED */
	size_t		 expired;	/* dropped: expired while down */
	size_t		 failed;	/* dropped: conflict or memory;
					   state was lost (errs say which) */
};
/*
 * Put the records back into a table (meant to be empty): table_add, then
 * the fields the table leaves to its caller (outer address and port,
 * upstream through upstream_map, or as stored when NULL), the stored
 * flags, the remaining lifetime as expiry and state GRANTED. Records whose
 * expiry <= now_wall, or whose client lease ended by then, are dropped
 * (counted expired). The remaining lifetime and lease are measured from
 * max(now_wall, written), so a clock stepped back does not lengthen a
 * mapping; a running lease becomes the mapping's lease_end on the
 * monotonic clock of now_ms (map_req.lease = the seconds left, RFC 6970
 * §5.9: the proxy keeps renewing upstream until it ends). NAT-PMP
 * mappings go in last: the table refuses a port whose other-protocol twin
 * is another host's NAT-PMP mapping (RFC 6886 §3.3), which the live table
 * only checked when the later one was made. O(n).
 * Returns 0 when every live record was restored, -1 when some failed.
 */
int	state_restore_table(const struct state_image *, struct table *,
	    const uint8_t *upstream_map, uint64_t now_ms, uint64_t now_wall,
	    const char *name, struct state_restore_stats *,
	    struct state_errors *errs);

#endif
