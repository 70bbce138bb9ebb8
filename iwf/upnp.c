/*
 * upnp.c - the UPnP IGD front-end on pupnp 1.8.4 (upnp.h; spec/iwf.md §5,
 * DESIGN.md "Threads and the loop", docs/upnp.md).
 *
 * Two kinds of threads meet here:
 *   - pupnp's: its miniserver hands each HTTP request to a worker of its
 *     thread pool (at most 12), which calls upnp_callback() and answers
 *     the control point when the callback returns (soap_device.c
 *     handle_invoke_action, gena_device.c
 *     gena_process_subscription_request). Neither calls us with a pupnp
 *     lock held (both unlock HandleLock first);
 *   - the libevent loop, which owns every mapping, the proxy and the
 *     action layer (upnp_soap).
 * A worker copies the action (the arguments the XML gate read:
 * upnp_xml_gate.h), puts a job on the locked queue, wakes the loop
 * through an eventfd and waits on a condition with a deadline. The
 * eventfd is an ordinary EV_READ event of the loop, so the loop's
 * libevent needs no thread support (evthread) at all; a write(2) of 8
 * bytes is the only thing a worker does to the loop.
 *
 * Job life (every field shared by the two sides is read and written under
 * u->lock; job->reply is written by the loop before it sets answered and
 * read by the worker only after it saw answered):
 *   worker: job made with refs = 2 (worker + loop) -> queued -> wait until
 *     answered, closing or the deadline -> if not answered: abandoned =
 *     true -> answer the control point -> unref.
 *   loop: dequeue -> abandoned already: unref -> else upnp_soap_run:
 *     answered at once: finish; else in flight until done (finish) or,
 *     once the worker abandoned it, upnp_soap_cancel + unref.
 *     finish = under the lock: not abandoned -> the reply moves into the
 *     job, answered = true, broadcast; abandoned -> the reply is freed;
 *     then unref.
 * The interleavings:
 *   1. answer before the deadline: the worker sees answered, answers with
 *      job->reply, unrefs; whichever unref is last frees the job.
 *   2. deadline while the job is queued: the loop dequeues it, sees
 *      abandoned, never runs it, unrefs.
 *   3. deadline while in flight: the worker sets abandoned and wakes the
 *      loop; at the wake the loop takes the job off in_flight,
 *      upnp_soap_cancel()s it (done will not come) and unrefs. If done
 *      came first (same loop thread, so strictly before), done took it
 *      off in_flight and unref'd: the wake finds nothing to cancel.
 *   4. deadline and answer race: both decisions are made under the lock;
 *      the worker tests answered before it sets abandoned, the loop tests
 *      abandoned before it sets answered: exactly one side wins.
 *   5. close: closing = true under the lock and a broadcast; waiting
 *      workers leave as in 3, new ones answer 501 without making a job;
 *      the loop frees the action layer (cancelling everything), drops its
 *      references of queued and in-flight jobs, and only then does
 *      UpnpFinish join the workers.
 * No job memory is touched after the last unref, and the last unref is
 * decided under the lock.
 *
 * Eventing (U-11): the loop keeps the evented values last notified in
 * u->vars under u->lock and holds the lock across UpnpNotify; a worker
 * accepting a subscription holds it across UpnpAcceptSubscription. So a
 * new subscriber either gets the old values and then the NOTIFY of the
 * change, or the new values: it never misses a change. Lock order is
 * always u->lock, then pupnp's HandleLock.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* pupnp's own headers by their directory: iwf/upnp.h shadows <upnp.h>. */
#include <upnp/ixml.h>
#include <upnp/upnp.h>
#include <upnp/upnptools.h>

#include "log.h"
#include "map_err.h"
#include "outbox.h"
#include "policy.h"
#include "ratelimit.h"
#include "upnp.h"
#include "upnp_guard.h"
#include "upnp_http.h"
#include "upnp_xml_gate.h"
#include "util.h"

/* The worker's own deadline: the action layer answers by
   UPNP_CLIENT_WAIT_MS; this margin only covers a stalled loop. */
#define UPNP_WORKER_MARGIN_MS	1500
#define UPNP_WORKER_WAIT_MS	(UPNP_CLIENT_WAIT_MS + UPNP_WORKER_MARGIN_MS)
/* Where pupnp serves a description given as a buffer (upnpapi.c
   GetDescDocumentAndURL, UPNPREG_BUF_DESC: "description.xml" under the
   URLBase it writes into the document). */
#define UPNP_PUPNP_DESC_PATH	"/description.xml"
#define UPNP_URL_MAX		128
/* The evented variables of one service (spec/iwf.md §3.5; the SCPDs of
   upnp_desc.c mark these sendEvents="yes"). */
#define UPNP_EVENT_VARS_MAX	5
#define UPNP_EVENT_VALUE_MAX	(UPNP_UDN_LEN + 96)
#define UPNP_MS_PER_S		1000
#define UPNP_NS_PER_MS		1000000
/* ConnectionType (IGD WANIPConnection §2.2.1) and link status values. */
#define UPNP_LINK_UP		"Up"
#define UPNP_LINK_DOWN		"Down"
#define UPNP_CONNECTED		"Connected"
#define UPNP_CONNECTION_TYPES	"IP_Routed"
#define UPNP_SERVICE_URN	"urn:schemas-upnp-org:service:"

struct upnp_job {
	struct upnp		*u;
	struct upnp_job		*next;		/* queue, then in_flight */
	struct upnp_action	 act;
	struct upnp_reply	 reply;		/* loop -> worker */
	struct upnp_reply	 held;		/* loop only: the answer
						   waiting for the commit */
	unsigned int		 refs;		/* under u->lock */
	bool			 answered;	/* under u->lock */
	bool			 abandoned;	/* under u->lock */
};

/* A file of the virtual directory being read by a web server thread. */
struct upnp_vfile {
	const char		*data;		/* static SCPD text */
	size_t			 len;
	size_t			 pos;
};

struct upnp {
	struct event_base	*base;
	struct upnp_soap	*soap;
	struct upnp_http	*http;		/* SOAP control on the loop */
	unsigned int		 version;
	char			 udn[UPNP_DEV_COUNT][UPNP_UDN_LEN + 1];
	uint64_t		(*now)(void *);
	void			*clock_arg;
	void			(*kick)(void *);
	void			*kick_arg;

	bool			 initialised;	/* UpnpInit2 succeeded */
	bool			 registered;	/* the root device */
	UpnpDevice_Handle	 hnd;
	uint16_t		 port;
	char			 desc_url[UPNP_URL_MAX];
	time_t			 started;	/* Last-Modified of the SCPDs */

	int			 wake_fd;	/* eventfd: workers -> loop */
	struct event		*ev_wake;

	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;		/* a job answered, or closing */
	bool			 sync_ready;	/* lock and cond initialised */
	struct upnp_job		*queue;		/* under lock: FIFO */
	struct upnp_job		**queue_tail;
	bool			 closing;	/* under lock */
	/* The evented values last notified (under lock). */
	struct upnp_event_vars	 vars;
	uint32_t		 system_update_id;	/* IGD:2 */

	/* Split horizon: written in upnp_open before pupnp starts, then
	   only read (by the workers too). */
	struct policy_prefix	*lan;
	size_t			 n_lan;
	uint64_t		 not_lan;	/* under lock */
	struct upnp_report	 not_lan_report; /* under lock */
	struct ratelimit	*ratelimit;	/* loop only */
	uint64_t		 rate_limited;	/* loop only */
	struct upnp_report	 rate_report;	/* loop only */

	struct upnp_job		*in_flight;	/* loop only */
	/* answers held until the turn's state commit (outbox.h), through
	   job->next; loop only */
	struct outbox		*outbox;
	struct upnp_job		*held;
};

static void
upnp_job_unref(struct upnp *u, struct upnp_job *job)
{
	bool last;

	pthread_mutex_lock(&u->lock);
	last = --job->refs == 0;
	pthread_mutex_unlock(&u->lock);
	if (!last)
		return;
	upnp_reply_free(&job->reply);
	free(job);
}

static void
upnp_reply_error(struct upnp_reply *reply, enum map_err err,
    unsigned int version)
{
	const struct map_err_row *row = map_err_row(err);

	memset(reply, 0, sizeof(*reply));
	reply->err = version == 2 ? row->upnp_v2 : row->upnp_v1;
	reply->err_desc = map_err_upnp_name((unsigned int)reply->err);
}

/* Split horizon (spec/iwf.md X-02): is the control point inside a LAN
   prefix? Any thread: under the lock, which upnp_set_lan swaps them in. */
static bool
upnp_is_lan(struct upnp *u, const struct in6_addr *a)
{
	bool lan;

	pthread_mutex_lock(&u->lock);
	lan = policy_prefixes_match(u->lan, u->n_lan, a);
	pthread_mutex_unlock(&u->lock);
	return lan;
}

/* ---- the loop side -------------------------------------------------- */

static void
upnp_kick(struct upnp *u)
{
	if (u->kick != NULL)
		u->kick(u->kick_arg);
}

/* Remove job from the in-flight list; false when it was not there. */
static bool
upnp_in_flight_remove(struct upnp *u, struct upnp_job *job)
{
	struct upnp_job **pp;

	for (pp = &u->in_flight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			job->next = NULL;
			return true;
		}
	return false;
}

/* The answer is known: hand it to the worker (reply's long values move
   into the job) unless it gave up; drop the loop's reference. */
static void
upnp_job_hand_over(struct upnp *u, struct upnp_job *job,
    struct upnp_reply *reply)
{
	pthread_mutex_lock(&u->lock);
	if (!job->abandoned) {
		job->reply = *reply;
		memset(reply, 0, sizeof(*reply));
		job->answered = true;
		pthread_cond_broadcast(&u->cond);
	}
	pthread_mutex_unlock(&u->lock);
	upnp_reply_free(reply);		/* what was not moved */
	upnp_job_unref(u, job);
}

/* outbox_release_fn: the turn's commit is over; the worker may answer. */
static void
upnp_job_release(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	struct upnp_job *job = arg, **pp;
	struct upnp *u = job->u;
	struct upnp_reply failed;

	(void)data;
	(void)len;
	for (pp = &u->held; *pp != NULL; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			break;
		}
	job->next = NULL;
	switch (fate) {
	case OUTBOX_SEND:
		upnp_job_hand_over(u, job, &job->held);
		break;
	case OUTBOX_NOT_DURABLE:
		/* as upnp_http_release: 501 rather than a success a
		   restart could take back */
		upnp_reply_free(&job->held);
		upnp_reply_error(&failed, MAP_ERR_INTERNAL, u->version);
		upnp_job_hand_over(u, job, &failed);
		break;
	case OUTBOX_DISCARD:
		upnp_reply_free(&job->held);
		upnp_job_unref(u, job);
		break;
	}
}

/*
 * DESIGN.md "State and durability": the worker is woken only after the
 * turn's state commit (the outbox), so that a success reaches the
 * client only once its mapping is durable.
 */
static void
upnp_job_finish(struct upnp *u, struct upnp_job *job, struct upnp_reply *reply)
{
	if (u->outbox == NULL) {
		upnp_job_hand_over(u, job, reply);
		return;
	}
	job->held = *reply;
	memset(reply, 0, sizeof(*reply));
	job->next = u->held;
	u->held = job;
	(void)outbox_hold(u->outbox, upnp_job_release, job,
	    job->held.err == 0 && upnp_http_action_changes(job->act.name),
	    NULL, 0);
}

/* A deep copy: the action layer keeps its own reply (upnp_soap.h). */
static void
upnp_reply_copy(struct upnp_reply *dst, const struct upnp_reply *src,
    unsigned int version)
{
	size_t i;

	*dst = *src;
	for (i = 0; i < dst->nout && i < UPNP_OUT_MAX; i++) {
		if (src->out[i].long_value == NULL)
			continue;
		dst->out[i].long_value = strdup(src->out[i].long_value);
		if (dst->out[i].long_value == NULL) {
			log_warn("upnp: reply");
			/* the ones copied so far are ours to free */
			dst->nout = i;
			upnp_reply_free(dst);
			upnp_reply_error(dst, MAP_ERR_INTERNAL, version);
			return;
		}
	}
}

/* upnp_soap_done_fn: the answer that came later (loop thread). */
static void
upnp_job_done(void *arg, const struct upnp_reply *reply)
{
	struct upnp_job *job = arg;
	struct upnp *u = job->u;
	struct upnp_reply copy;

	if (!upnp_in_flight_remove(u, job))
		return;		/* cancelled: upnp_soap.h says never */
	upnp_reply_copy(&copy, reply, u->version);
	upnp_job_finish(u, job, &copy);
	upnp_kick(u);
}

/* Take the queue, and the in-flight jobs whose worker gave up. */
static struct upnp_job *
upnp_take(struct upnp *u, struct upnp_job **gone)
{
	struct upnp_job *queue, **pp, *job;

	*gone = NULL;
	pthread_mutex_lock(&u->lock);
	queue = u->queue;
	u->queue = NULL;
	u->queue_tail = &u->queue;
	for (pp = &u->in_flight; (job = *pp) != NULL; ) {
		if (job->abandoned) {
			*pp = job->next;
			job->next = *gone;
			*gone = job;
		} else
			pp = &job->next;
	}
	pthread_mutex_unlock(&u->lock);
	return queue;
}

static bool
upnp_job_abandoned(struct upnp *u, struct upnp_job *job)
{
	bool gone;

	pthread_mutex_lock(&u->lock);
	gone = job->abandoned;
	pthread_mutex_unlock(&u->lock);
	return gone;
}

/* Run one job on the action layer. */
static void
upnp_job_run(struct upnp *u, struct upnp_job *job, uint64_t now)
{
	struct upnp_reply reply;

	if (upnp_job_abandoned(u, job)) {
		upnp_job_unref(u, job);
		return;
	}
	/* issue 8: the same per-host rate as on our HTTP server; over it
	   501 ActionFailed, and the action layer never sees the job */
	if (!ratelimit_allow(u->ratelimit, &job->act.requester, now)) {
		u->rate_limited++;
		upnp_report(&u->rate_report, now, "upnp", "over its request rate: "
		    "501 to", &job->act.requester);
		upnp_reply_error(&reply, MAP_ERR_INTERNAL, u->version);
		upnp_job_finish(u, job, &reply);
		return;
	}
	/* listed first: done must find it even if it came at once */
	job->next = u->in_flight;
	u->in_flight = job;
	memset(&reply, 0, sizeof(reply));
	if (upnp_soap_run(u->soap, &job->act, now, upnp_job_done, job,
	    &reply)) {
		if (upnp_in_flight_remove(u, job))
			upnp_job_finish(u, job, &reply);
		else
			upnp_reply_free(&reply);
	}
}

/* The eventfd: workers queued jobs or gave up on some. */
static void
upnp_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upnp *u = arg;
	struct upnp_job *queue, *gone, *job;
	uint64_t count, now;

	(void)what;
	if (read(fd, &count, sizeof(count)) == -1 && errno != EAGAIN)
		log_warn("upnp: eventfd");
	queue = upnp_take(u, &gone);
	while ((job = gone) != NULL) {
		gone = job->next;
		upnp_soap_cancel(u->soap, job);
		upnp_job_unref(u, job);
	}
	now = u->now(u->clock_arg);
	while ((job = queue) != NULL) {
		queue = job->next;
		job->next = NULL;
		upnp_job_run(u, job, now);
	}
	upnp_kick(u);
}

/* ---- eventing (U-11) ------------------------------------------------ */

struct upnp_event_set {
	const char	*names[UPNP_EVENT_VARS_MAX];
	const char	*values[UPNP_EVENT_VARS_MAX];
	char		 text[UPNP_EVENT_VARS_MAX][UPNP_EVENT_VALUE_MAX];
	int		 n;
};

static void
upnp_event_add(struct upnp_event_set *set, const char *name,
    const char *value)
{
	if (set->n >= UPNP_EVENT_VARS_MAX)
		return;
	snprintf(set->text[set->n], sizeof(set->text[set->n]), "%s", value);
	set->names[set->n] = name;
	set->values[set->n] = set->text[set->n];
	set->n++;
}

static const char *
upnp_link_status(const struct upnp_event_vars *v)
{
	return strcmp(v->connection_status, UPNP_CONNECTED) == 0 ?
	    UPNP_LINK_UP : UPNP_LINK_DOWN;
}

/* Layer3Forwarding's DefaultConnectionService: "<UDN of the
   WANConnectionDevice>:WANConnectionDevice:<v>,<serviceId>", as miniupnpd
   answers GetDefaultConnectionService. */
static void
upnp_default_connection(const struct upnp *u, char *buf, size_t len)
{
	const struct upnp_service_info *ipc =
	    upnp_service_info(u->version, UPNP_SVC_WANIPC);

	snprintf(buf, len, "%s:WANConnectionDevice:%u,%s",
	    u->udn[UPNP_DEV_WANCONN], u->version, ipc->id);
}

/* Every evented variable of a service with its value now: what
   UpnpAcceptSubscription sends first (UDA 1.0 §4.2: the initial event
   carries all of them). Under u->lock. */
static void
upnp_event_all(const struct upnp *u, enum upnp_service svc,
    struct upnp_event_set *set)
{
	char buf[UPNP_EVENT_VALUE_MAX];

	memset(set, 0, sizeof(*set));
	switch (svc) {
	case UPNP_SVC_L3F:
		upnp_default_connection(u, buf, sizeof(buf));
		upnp_event_add(set, "DefaultConnectionService", buf);
		break;
	case UPNP_SVC_WANCIC:
		upnp_event_add(set, "PhysicalLinkStatus",
		    upnp_link_status(&u->vars));
		break;
	case UPNP_SVC_WANIPC:
		upnp_event_add(set, "PossibleConnectionTypes",
		    UPNP_CONNECTION_TYPES);
		upnp_event_add(set, "ConnectionStatus",
		    u->vars.connection_status);
		upnp_event_add(set, "ExternalIPAddress", u->vars.external_ip);
		snprintf(buf, sizeof(buf), "%" PRIu32,
		    u->vars.port_mapping_entries);
		upnp_event_add(set, "PortMappingNumberOfEntries", buf);
		if (u->version == 2) {
			snprintf(buf, sizeof(buf), "%" PRIu32,
			    u->system_update_id);
			upnp_event_add(set, "SystemUpdateID", buf);
		}
		break;
	default:
		break;
	}
}

static void
upnp_notify(struct upnp *u, enum upnp_service svc, enum upnp_device dev,
    struct upnp_event_set *set)
{
	const struct upnp_service_info *info = upnp_service_info(u->version,
	    svc);
	int rc;

	if (set->n == 0 || !u->registered)
		return;
	rc = UpnpNotify(u->hnd, u->udn[dev], info->id, set->names,
	    set->values, set->n);
	if (rc != UPNP_E_SUCCESS)
		log_warnx("upnp: notify %s: %s", info->id,
		    UpnpGetErrorMessage(rc));
}

static bool
upnp_vars_equal(const struct upnp_event_vars *a,
    const struct upnp_event_vars *b)
{
	return strcmp(a->external_ip, b->external_ip) == 0 &&
	    strcmp(a->connection_status, b->connection_status) == 0 &&
	    a->port_mapping_entries == b->port_mapping_entries;
}

void
upnp_update(struct upnp *u)
{
	struct upnp_event_vars now;
	struct upnp_event_set ipc, cic;
	char buf[UPNP_EVENT_VALUE_MAX];
	bool link_changed;

	if (u == NULL)
		return;
	memset(&now, 0, sizeof(now));
	upnp_soap_event_vars(u->soap, u->now(u->clock_arg), &now);
	memset(&ipc, 0, sizeof(ipc));
	memset(&cic, 0, sizeof(cic));
	pthread_mutex_lock(&u->lock);
	if (upnp_vars_equal(&now, &u->vars)) {
		pthread_mutex_unlock(&u->lock);
		return;
	}
	link_changed = strcmp(upnp_link_status(&now),
	    upnp_link_status(&u->vars)) != 0;
	if (strcmp(now.connection_status, u->vars.connection_status) != 0)
		upnp_event_add(&ipc, "ConnectionStatus",
		    now.connection_status);
	if (strcmp(now.external_ip, u->vars.external_ip) != 0) {
		log_info("upnp: ExternalIPAddress \"%s\" -> \"%s\"",
		    u->vars.external_ip, now.external_ip);
		upnp_event_add(&ipc, "ExternalIPAddress", now.external_ip);
	}
	if (now.port_mapping_entries != u->vars.port_mapping_entries) {
		snprintf(buf, sizeof(buf), "%" PRIu32,
		    now.port_mapping_entries);
		upnp_event_add(&ipc, "PortMappingNumberOfEntries", buf);
		/* IGD:2 SystemUpdateID: changes with the mapping list (we
		   see its size; a changed entry of the same count is not
		   counted) */
		if (u->version == 2) {
			u->system_update_id++;
			snprintf(buf, sizeof(buf), "%" PRIu32,
			    u->system_update_id);
			upnp_event_add(&ipc, "SystemUpdateID", buf);
		}
	}
	if (link_changed)
		upnp_event_add(&cic, "PhysicalLinkStatus",
		    upnp_link_status(&now));
	u->vars = now;
	/* under the lock: see "Eventing" at the top */
	upnp_notify(u, UPNP_SVC_WANIPC, UPNP_DEV_WANCONN, &ipc);
	upnp_notify(u, UPNP_SVC_WANCIC, UPNP_DEV_WAN, &cic);
	pthread_mutex_unlock(&u->lock);
}

/* ---- pupnp's worker threads ------------------------------------------ */

/* The control point's address, IPv4-mapped (U-04's requester). */
static void
upnp_requester(const struct sockaddr_storage *ss, struct in6_addr *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(a, 0, sizeof(*a));
	if (ss == NULL)
		return;
	if (ss->ss_family == AF_INET) {
		memcpy(&sin, ss, sizeof(sin));
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &sin.sin_addr, sizeof(sin.sin_addr));
	} else if (ss->ss_family == AF_INET6) {
		memcpy(&sin6, ss, sizeof(sin6));
		*a = sin6.sin6_addr;
	}
}

/* The action element: the document element of the copy pupnp parsed. */
static IXML_Node *
upnp_action_element(IXML_Document *doc)
{
	IXML_Node *n;

	if (doc == NULL)
		return NULL;
	for (n = ixmlNode_getFirstChild(&doc->n); n != NULL;
	    n = ixmlNode_getNextSibling(n))
		if (ixmlNode_getNodeType(n) == eELEMENT_NODE)
			return n;
	return NULL;
}

/* Copy the request out of pupnp's structures; false: answer 401. */
static bool
upnp_action_copy(const struct upnp *u, UpnpActionRequest *req,
    struct upnp_action *act)
{
	const char *name = UpnpActionRequest_get_ActionName_cstr(req);
	const char *sid = UpnpActionRequest_get_ServiceID_cstr(req);
	int svc;

	memset(act, 0, sizeof(*act));
	svc = upnp_service_by_id(u->version, sid);
	/* a name longer than any action we know is no action of ours */
	if (svc < 0 || name == NULL || strlen(name) > UPNP_NAME_MAX)
		return false;
	act->service = (enum upnp_service)svc;
	memcpy(act->name, name, strlen(name) + 1);
	upnp_requester(UpnpActionRequest_get_CtrlPtIPAddr(req),
	    &act->requester);
	/* the arguments as our own reader read them from the body; pupnp's
	   DOM is the gate's canonical envelope, with no arguments in it
	   (upnp_xml_gate.h). No body read by the gate: no action. */
	if (!upnp_xml_gate_take(act)) {
		/* cannot happen with the gate in (upnp_start checks) */
		log_debug("upnp: %s on pupnp's port: no body from the XML "
		    "gate; refused", act->name);
		return false;
	}
	return true;
}

/* The namespace of the response: the service type the control point
   addressed (pupnp accepts a lower version of our type), else ours. */
static const char *
upnp_response_type(const struct upnp *u, UpnpActionRequest *req,
    enum upnp_service svc)
{
	IXML_Node *elem;
	const char *ns;

	elem = upnp_action_element(UpnpActionRequest_get_ActionRequest(req));
	ns = elem != NULL ? ixmlNode_getNamespaceURI(elem) : NULL;
	if (ns != NULL && strncmp(ns, UPNP_SERVICE_URN,
	    strlen(UPNP_SERVICE_URN)) == 0 && strlen(ns) <= UPNP_URL_MAX)
		return ns;
	return upnp_service_info(u->version, svc)->type;
}

/*
 * An out argument that is an XML document of its own (IGD:2
 * NewPortListing) goes in a CDATA section, as miniupnpd sends it:
 * miniupnpc's parser (upnpreplyparse.c) reads CDATA or raw markup but
 * does not decode entities, and for an XML parser both are the same
 * string. A value that contains "]]>" cannot be CDATA: escaped text then.
 */
static int
upnp_add_cdata(IXML_Document **resp, const char *action, const char *type,
    const char *name, char *value)
{
	char tag[UPNP_NAME_MAX + 1];
	IXML_Node *act;
	IXML_Element *elem;
	IXML_CDATASection *cdata;

	if (strstr(value, "]]>") != NULL || strlen(name) > UPNP_NAME_MAX)
		return UpnpAddToActionResponse(resp, action, type, name, value);
	if (*resp == NULL &&
	    (*resp = UpnpMakeActionResponse(action, type, 0, NULL)) == NULL)
		return UPNP_E_OUTOF_MEMORY;
	memcpy(tag, name, strlen(name) + 1);
	act = ixmlNode_getFirstChild(&(*resp)->n);
	if (act == NULL ||
	    (elem = ixmlDocument_createElement(*resp, tag)) == NULL)
		return UPNP_E_OUTOF_MEMORY;
	if ((cdata = ixmlDocument_createCDATASection(*resp, value)) == NULL) {
		ixmlElement_free(elem);
		return UPNP_E_OUTOF_MEMORY;
	}
	if (ixmlNode_appendChild(&elem->n, &cdata->n) != IXML_SUCCESS) {
		ixmlCDATASection_free(cdata);
		ixmlElement_free(elem);
		return UPNP_E_OUTOF_MEMORY;
	}
	if (ixmlNode_appendChild(act, &elem->n) != IXML_SUCCESS) {
		ixmlElement_free(elem);
		return UPNP_E_OUTOF_MEMORY;
	}
	return UPNP_E_SUCCESS;
}

static int
upnp_add_out(IXML_Document **resp, const char *action, const char *type,
    const struct upnp_out *out)
{
	if (out->long_value != NULL)
		return upnp_add_cdata(resp, action, type, out->name,
		    out->long_value);
	return UpnpAddToActionResponse(resp, action, type, out->name,
	    out->value);
}

/* Give pupnp the answer. spec/iwf.md §5.3: ErrCode with an empty ErrStr
   becomes 501, and no result at all too: always set both. */
static void
upnp_answer(const struct upnp *u, UpnpActionRequest *req,
    const struct upnp_action *act, const struct upnp_reply *reply)
{
	IXML_Document *resp = NULL;
	const char *type, *desc;
	size_t i;

	/* no action (refused before it was read): only an error can answer */
	if (reply->err != 0 || act == NULL) {
		desc = reply->err_desc;
		if (desc == NULL || desc[0] == '\0')
			desc = map_err_upnp_name((unsigned int)reply->err);
		if (desc == NULL)
			desc = map_err_upnp_name(
			    map_err_row(MAP_ERR_INTERNAL)->upnp_v1);
		UpnpActionRequest_set_ErrCode(req, reply->err);
		UpnpActionRequest_strcpy_ErrStr(req, desc);
		return;
	}
	type = upnp_response_type(u, req, act->service);
	/* pupnp parses "<u:NAMEResponse xmlns:u=TYPE>" to start the answer:
	   our XML (an action we ran, a type the gate let through) */
	upnp_xml_gate_trust(true);
	if (reply->nout == 0)
		resp = UpnpMakeActionResponse(act->name, type, 0, NULL);
	for (i = 0; i < reply->nout && i < UPNP_OUT_MAX; i++)
		if (upnp_add_out(&resp, act->name, type, &reply->out[i]) !=
		    UPNP_E_SUCCESS)
			break;
	upnp_xml_gate_trust(false);
	if (resp == NULL || i < reply->nout) {
		log_warnx("upnp: %s: cannot build the response", act->name);
		ixmlDocument_free(resp);
		UpnpActionRequest_set_ErrCode(req,
		    map_err_row(MAP_ERR_INTERNAL)->upnp_v1);
		UpnpActionRequest_strcpy_ErrStr(req, map_err_upnp_name(
		    map_err_row(MAP_ERR_INTERNAL)->upnp_v1));
		return;
	}
	/* pupnp frees it after sending (soap_device.c) */
	UpnpActionRequest_set_ActionResult(req, resp);
}

static void
upnp_wake(struct upnp *u)
{
	uint64_t one = 1;

	if (write(u->wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("upnp: eventfd");
}

static void
upnp_deadline(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / UPNP_MS_PER_S);
	ts->tv_nsec += (long)(ms % UPNP_MS_PER_S) * UPNP_NS_PER_MS;
	if (ts->tv_nsec >= UPNP_MS_PER_S * UPNP_NS_PER_MS) {
		ts->tv_sec++;
		ts->tv_nsec -= UPNP_MS_PER_S * UPNP_NS_PER_MS;
	}
}

enum upnp_wait {
	UPNP_WAIT_ANSWERED,	/* job->reply is the answer */
	UPNP_WAIT_GAVE_UP,	/* deadline or close: the job is abandoned */
	UPNP_WAIT_CLOSED,	/* never queued: the job is the worker's */
};

/* Queue the job and wait for the loop's answer (see the top of the
   file). */
static enum upnp_wait
upnp_job_wait(struct upnp *u, struct upnp_job *job)
{
	struct timespec deadline;
	bool answered;
	int rc = 0;

	upnp_deadline(&deadline, UPNP_WORKER_WAIT_MS);
	pthread_mutex_lock(&u->lock);
	if (u->closing) {
		pthread_mutex_unlock(&u->lock);
		return UPNP_WAIT_CLOSED;
	}
	job->refs = 2;
	*u->queue_tail = job;
	u->queue_tail = &job->next;
	pthread_mutex_unlock(&u->lock);
	upnp_wake(u);

	pthread_mutex_lock(&u->lock);
	while (!job->answered && !u->closing && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&u->cond, &u->lock, &deadline);
	answered = job->answered;
	if (!answered)
		job->abandoned = true;
	pthread_mutex_unlock(&u->lock);
	if (answered)
		return UPNP_WAIT_ANSWERED;
	log_warnx("upnp: %s: no answer within %d ms: 501", job->act.name,
	    UPNP_WORKER_WAIT_MS);
	upnp_wake(u);	/* the loop cancels what it started */
	return UPNP_WAIT_GAVE_UP;
}

/* A worker's monotonic ms (u->now is the loop's). */
static uint64_t
upnp_worker_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UPNP_MS_PER_S +
	    (uint64_t)ts.tv_nsec / UPNP_NS_PER_MS;
}

/*
 * Split horizon on pupnp's port (spec/iwf.md X-02): a control point
 * outside the LAN prefixes gets 606 "Action not authorized" at once,
 * nothing of its request reaches the loop. pupnp has read and parsed the
 * request already and answers whatever we say (soap_device.c
 * handle_invoke_action), so the fault is the least it can be told; our
 * own HTTP server closes such a connection before reading it.
 */
static bool
upnp_worker_lan(struct upnp *u, UpnpActionRequest *req)
{
	struct in6_addr requester;
	struct upnp_reply reply;

	upnp_requester(UpnpActionRequest_get_CtrlPtIPAddr(req), &requester);
	if (upnp_is_lan(u, &requester))
		return true;
	pthread_mutex_lock(&u->lock);
	u->not_lan++;
	upnp_report(&u->not_lan_report, upnp_worker_now(), "upnp",
	    "refused a control point outside the LAN:", &requester);
	pthread_mutex_unlock(&u->lock);
	upnp_reply_error(&reply, MAP_ERR_ACTION_DENIED, u->version);
	upnp_answer(u, req, NULL, &reply);
	return false;
}

static void
upnp_action_request(struct upnp *u, UpnpActionRequest *req)
{
	struct upnp_job *job;
	struct upnp_reply reply;

	if (!upnp_worker_lan(u, req))
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warn("upnp: action");
		upnp_reply_error(&reply, MAP_ERR_INTERNAL, u->version);
		upnp_answer(u, req, NULL, &reply);
		return;
	}
	job->u = u;
	if (!upnp_action_copy(u, req, &job->act)) {
		upnp_reply_error(&reply, MAP_ERR_INVALID_ACTION, u->version);
		upnp_answer(u, req, &job->act, &reply);
		free(job);
		return;
	}
	switch (upnp_job_wait(u, job)) {
	case UPNP_WAIT_ANSWERED:
		upnp_answer(u, req, &job->act, &job->reply);
		upnp_job_unref(u, job);
		break;
	case UPNP_WAIT_GAVE_UP:
		/* I-13: a clean 501 instead of a hung control point */
		upnp_reply_error(&reply, MAP_ERR_NETWORK_FAILURE, u->version);
		upnp_answer(u, req, &job->act, &reply);
		upnp_job_unref(u, job);
		break;
	case UPNP_WAIT_CLOSED:
		upnp_reply_error(&reply, MAP_ERR_NETWORK_FAILURE, u->version);
		upnp_answer(u, req, &job->act, &reply);
		free(job);
		break;
	}
}

static void
upnp_subscription_request(struct upnp *u, const UpnpSubscriptionRequest *req)
{
	const char *sid = UpnpSubscriptionRequest_get_ServiceId_cstr(req);
	const char *udn = UpnpSubscriptionRequest_get_UDN_cstr(req);
	struct upnp_event_set set;
	int svc, rc;

	if ((svc = upnp_service_by_id(u->version, sid)) < 0)
		return;		/* never accepted: no NOTIFY (§5.4) */
	/* Under the lock across the accept (see "Eventing" at the top).
	   The callback URL is not ours to see: the guard (upnp_guard.c)
	   refuses the NOTIFY connection when it leads outside the LAN. */
	pthread_mutex_lock(&u->lock);
	if (u->closing) {
		pthread_mutex_unlock(&u->lock);
		return;
	}
	upnp_event_all(u, (enum upnp_service)svc, &set);
	rc = UpnpAcceptSubscription(u->hnd, udn, sid, set.names, set.values,
	    set.n, UpnpSubscriptionRequest_get_SID_cstr(req));
	pthread_mutex_unlock(&u->lock);
	if (rc != UPNP_E_SUCCESS)
		log_warnx("upnp: subscription to %s: %s", sid,
		    UpnpGetErrorMessage(rc));
	else
		log_debug("upnp: subscription %s to %s",
		    UpnpSubscriptionRequest_get_SID_cstr(req), sid);
}

/* pupnp's one callback, on its worker threads. */
static int
upnp_callback(Upnp_EventType type, const void *event, void *cookie)
{
	struct upnp *u = cookie;

	switch (type) {
	case UPNP_CONTROL_ACTION_REQUEST:
		/* pupnp passes its request to be filled in */
		upnp_action_request(u, (UpnpActionRequest *)(uintptr_t)event);
		/* refused before the arguments were taken: drop them here */
		upnp_xml_gate_forget();
		break;
	case UPNP_EVENT_SUBSCRIPTION_REQUEST:
		upnp_subscription_request(u, event);
		break;
	case UPNP_CONTROL_GET_VAR_REQUEST:
		/* QueryStateVariable is deprecated (UDA 1.1); pupnp answers
		   it with an error when we leave CurrentVal unset */
	default:
		break;
	}
	return 0;
}

/* ---- the SCPDs from memory (spec/iwf.md §5.1, X-10) ------------------ */

/* The web server's threads call these; they read only static texts and
   u->version, which never changes after upnp_open. */
static int
upnp_vdir_get_info(const char *path, UpnpFileInfo *info, const void *cookie)
{
	const struct upnp *u = cookie;
	static char content_type[] = "text/xml; charset=\"utf-8\"";
	size_t len;

	if (upnp_desc_scpd_at(u->version, path, &len) == NULL)
		return -1;	/* 404 */
	UpnpFileInfo_set_FileLength(info, (off_t)len);
	UpnpFileInfo_set_LastModified(info, u->started);
	UpnpFileInfo_set_IsDirectory(info, 0);
	UpnpFileInfo_set_IsReadable(info, 1);
	UpnpFileInfo_set_ContentType(info, content_type);
	return UPNP_E_SUCCESS;
}

static UpnpWebFileHandle
upnp_vdir_open(const char *path, enum UpnpOpenFileMode mode,
    const void *cookie)
{
	const struct upnp *u = cookie;
	struct upnp_vfile *f;
	const char *text;
	size_t len;

	/* Nothing is ever written (CVE-2016-6255: POST made files):
	   pupnp answers a POST here 500. */
	if (mode != UPNP_READ ||
	    (text = upnp_desc_scpd_at(u->version, path, &len)) == NULL)
		return NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->data = text;
	f->len = len;
	return f;
}

static int
upnp_vdir_read(UpnpWebFileHandle h, char *buf, size_t buflen,
    const void *cookie)
{
	struct upnp_vfile *f = h;
	size_t n;

	(void)cookie;
	n = f->len - f->pos;
	if (n > buflen)
		n = buflen;
	memcpy(buf, f->data + f->pos, n);
	f->pos += n;
	return (int)n;
}

static int
upnp_vdir_seek(UpnpWebFileHandle h, off_t offset, int origin,
    const void *cookie)
{
	struct upnp_vfile *f = h;
	off_t base;

	(void)cookie;
	switch (origin) {
	case SEEK_SET:
		base = 0;
		break;
	case SEEK_CUR:
		base = (off_t)f->pos;
		break;
	case SEEK_END:
		base = (off_t)f->len;
		break;
	default:
		return -1;
	}
	if (offset < -base || base + offset > (off_t)f->len)
		return -1;
	f->pos = (size_t)(base + offset);
	return 0;
}

static int
upnp_vdir_close(UpnpWebFileHandle h, const void *cookie)
{
	(void)cookie;
	free(h);
	return 0;
}

static int
upnp_vdir_setup(struct upnp *u)
{
	if (UpnpEnableWebserver(1) != UPNP_E_SUCCESS ||
	    UpnpVirtualDir_set_GetInfoCallback(upnp_vdir_get_info) !=
	    UPNP_E_SUCCESS ||
	    UpnpVirtualDir_set_OpenCallback(upnp_vdir_open) !=
	    UPNP_E_SUCCESS ||
	    UpnpVirtualDir_set_ReadCallback(upnp_vdir_read) !=
	    UPNP_E_SUCCESS ||
	    UpnpVirtualDir_set_SeekCallback(upnp_vdir_seek) !=
	    UPNP_E_SUCCESS ||
	    UpnpVirtualDir_set_CloseCallback(upnp_vdir_close) !=
	    UPNP_E_SUCCESS ||
	    UpnpAddVirtualDir(UPNP_SCPD_DIR, u, NULL) != UPNP_E_SUCCESS)
		return -1;
	/* no UpnpSetWebServerRootDir and no write callback */
	return 0;
}

/* ---- open and close -------------------------------------------------- */

static int
upnp_sync_init(struct upnp *u)
{
	pthread_condattr_t attr;

	if (pthread_condattr_init(&attr) != 0)
		return -1;
	/* the deadline must not move with the wall clock */
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&u->cond, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		return -1;
	}
	pthread_condattr_destroy(&attr);
	if (pthread_mutex_init(&u->lock, NULL) != 0) {
		pthread_cond_destroy(&u->cond);
		return -1;
	}
	u->sync_ready = true;
	return 0;
}

static int
upnp_loop_init(struct upnp *u, const struct upnp_params *p)
{
	u->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->wake_fd == -1) {
		log_warn("upnp: eventfd");
		return -1;
	}
	u->ev_wake = event_new(p->base, u->wake_fd, EV_READ | EV_PERSIST,
	    upnp_wake_cb, u);
	if (u->ev_wake == NULL || event_add(u->ev_wake, NULL) == -1) {
		log_warnx("upnp: cannot watch the eventfd");
		return -1;
	}
	return 0;
}

/* pupnp up on the interface, the SCPDs served. */
static int
upnp_init(struct upnp *u, const struct upnp_params *p)
{
	int rc;

	/* spec/iwf.md §5.1: one interface; HTTP binds to its address */
	if ((rc = UpnpInit2(p->ifname, p->port)) != UPNP_E_SUCCESS) {
		log_warnx("upnp: cannot start on %s: %s", p->ifname,
		    UpnpGetErrorMessage(rc));
		return -1;
	}
	u->initialised = true;
	(void)UpnpSetMaxContentLength(UPNP_MAX_CONTENT);	/* */
	if (upnp_vdir_setup(u) == -1) {
		log_warnx("upnp: cannot serve %s", UPNP_SCPD_DIR);
		return -1;
	}
	return 0;
}

/*
 * SOAP control on our own HTTP server on the loop (iwf/upnp_http.h), on
 * the address pupnp serves: pupnp 1.8.4's own SOAP server refuses shapes
 * deployed clients send (an unquoted SOAPACTION, a default-namespace
 * envelope), waits without end for a body shorter than its
 * Content-Length, and lets a few stalled connections take all its
 * workers (docs/upnp.md). control_base (the description's absolute
 * controlURLs) is filled in.
 */
static int
upnp_http_start(struct upnp *u, const struct upnp_params *p,
    char *control_base, size_t size)
{
	struct upnp_http_params hp;
	struct in_addr a4;
	const char *ip = UpnpGetServerIpAddress();

	if (ip == NULL || inet_pton(AF_INET, ip, &a4) != 1) {
		log_warnx("upnp: pupnp has no IPv4 address on %s", p->ifname);
		return -1;
	}
	memset(&hp, 0, sizeof(hp));
	hp.base = p->base;
	hp.bind_addr.s6_addr[10] = 0xff;
	hp.bind_addr.s6_addr[11] = 0xff;
	memcpy(&hp.bind_addr.s6_addr[12], &a4, sizeof(a4));
	hp.port = 0;
	hp.version = u->version;
	hp.soap = u->soap;
	hp.now = p->now;
	hp.clock_arg = p->clock_arg;
	hp.kick = p->kick;
	hp.kick_arg = p->kick_arg;
	hp.outbox = p->outbox;
	hp.lan = u->lan;
	hp.n_lan = u->n_lan;
	hp.ratelimit = p->ratelimit;
	if ((u->http = upnp_http_open(&hp)) == NULL)
		return -1;
	snprintf(control_base, size, "http://%s:%u", ip,
	    upnp_http_port(u->http));
	return 0;
}

/* The device registered and advertised. */
static int
upnp_start(struct upnp *u, const char *desc, size_t desc_len)
{
	struct upnp_xml_gate_stats gate_before, gate_after;
	const char *ip;
	int rc;

	/* Callbacks may come as soon as it returns: u->hnd is written under
	   the lock the subscription callback reads it under. */
	upnp_xml_gate_stats(&gate_before);
	pthread_mutex_lock(&u->lock);
	upnp_xml_gate_trust(true);	/* our description */
	rc = UpnpRegisterRootDevice2(UPNPREG_BUF_DESC, desc, desc_len, 1,
	    upnp_callback, u, &u->hnd);
	upnp_xml_gate_trust(false);
	u->registered = rc == UPNP_E_SUCCESS;
	pthread_mutex_unlock(&u->lock);
	upnp_xml_gate_stats(&gate_after);
	/* fail closed: without the gate libixml would read every SOAP body
	   sent to pupnp's port (upnp_xml_gate.h); upnp_close unregisters */
	if (rc == UPNP_E_SUCCESS && gate_after.parses == gate_before.parses) {
		log_warnx("upnp: the XML gate is not in this executable: "
		    "libixml would parse SOAP from the LAN; UPnP not started "
		    "(docs/security.md)");
		return -1;
	}
	if (rc != UPNP_E_SUCCESS) {
		log_warnx("upnp: cannot register the device: %s",
		    UpnpGetErrorMessage(rc));
		return -1;
	}
	/* bounded in number and time (else "Second-infinite") */
	if (UpnpSetMaxSubscriptions(u->hnd, UPNP_MAX_SUBSCRIPTIONS) !=
	    UPNP_E_SUCCESS || UpnpSetMaxSubscriptionTimeOut(u->hnd,
	    UPNP_SUBSCRIPTION_TIMEOUT) != UPNP_E_SUCCESS) {
		log_warnx("upnp: cannot limit the subscriptions");
		return -1;
	}
	u->port = UpnpGetServerPort();
	ip = UpnpGetServerIpAddress();
	snprintf(u->desc_url, sizeof(u->desc_url), "http://%s:%u%s",
	    ip != NULL ? ip : "?", u->port, UPNP_PUPNP_DESC_PATH);
	if ((rc = UpnpSendAdvertisement(u->hnd, UPNP_ADVERT_EXPIRE)) !=
	    UPNP_E_SUCCESS)
		log_warnx("upnp: advertisement: %s", UpnpGetErrorMessage(rc));
	return 0;
}

/* The LAN prefixes, copied (the caller's are rebuilt in place on a
   reload; upnp_set_lan replaces ours). */
static int
upnp_copy_lan(struct upnp *u, const struct upnp_params *p)
{
	if ((u->lan = policy_prefixes_dup(p->lan, p->n_lan)) == NULL)
		return -1;
	u->n_lan = p->n_lan;
	return 0;
}

int
upnp_set_lan(struct upnp *u, const struct policy_prefix *lan, size_t n_lan)
{
	struct policy_prefix *copy, *old;

	if ((copy = policy_prefixes_dup(lan, n_lan)) == NULL) {
		log_warn("upnp: LAN prefixes");
		return -1;
	}
	if (u->http != NULL && upnp_http_set_lan(u->http, lan, n_lan) == -1) {
		free(copy);
		return -1;
	}
	/* the workers read them under the lock (upnp_is_lan) */
	pthread_mutex_lock(&u->lock);
	old = u->lan;
	u->lan = copy;
	u->n_lan = n_lan;
	pthread_mutex_unlock(&u->lock);
	free(old);
	return 0;
}

struct upnp *
upnp_open(const struct upnp_params *p)
{
	struct upnp_soap_params sp;
	struct upnp_desc_params dp;
	struct upnp *u;
	char *desc, control_base[UPNP_URL_MAX];
	size_t desc_len;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		log_warn("upnp");
		return NULL;
	}
	u->wake_fd = -1;
	u->base = p->base;
	u->version = p->desc.version;
	memcpy(u->udn, p->desc.udn, sizeof(u->udn));
	u->now = p->now;
	u->clock_arg = p->clock_arg;
	u->kick = p->kick;
	u->kick_arg = p->kick_arg;
	u->outbox = p->outbox;
	u->started = time(NULL);
	u->queue_tail = &u->queue;
	u->system_update_id = 1;
	u->ratelimit = p->ratelimit;
	/* the action layer's UDN lives as long as u */
	sp = p->soap;
	sp.wanconn_udn = u->udn[UPNP_DEV_WANCONN];
	if (upnp_copy_lan(u, p) == -1 || upnp_sync_init(u) == -1 ||
	    upnp_loop_init(u, p) == -1 ||
	    (u->soap = upnp_soap_new(&sp)) == NULL) {
		log_warnx("upnp: out of resources");
		upnp_close(u);
		return NULL;
	}
	upnp_soap_event_vars(u->soap, u->now(u->clock_arg), &u->vars);
	/* the guard before the first NOTIFY can go out */
	if (upnp_guard_arm(p->lan, p->n_lan) == -1 || upnp_init(u, p) == -1 ||
	    upnp_http_start(u, p, control_base, sizeof(control_base)) == -1) {
		upnp_close(u);
		return NULL;
	}
	dp = p->desc;
	dp.control_base = control_base;
	if ((desc = upnp_desc_root(&dp, &desc_len)) == NULL) {
		log_warnx("upnp: out of memory");
		upnp_close(u);
		return NULL;
	}
	if (upnp_start(u, desc, desc_len) == -1) {
		free(desc);
		upnp_close(u);
		return NULL;
	}
	free(desc);	/* pupnp parsed its own copy */
	log_info("upnp: IGD:%u on %s, description %s, control %s", u->version,
	    p->ifname, u->desc_url, control_base);
	return u;
}

/* Close step 1: no worker waits any longer, none starts waiting. */
static void
upnp_release_workers(struct upnp *u)
{
	pthread_mutex_lock(&u->lock);
	u->closing = true;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

/* Close step 2: the loop's references, the action layer's first. */
static void
upnp_drop_jobs(struct upnp *u)
{
	struct upnp_job *job, *gone;

	if (u->soap != NULL)
		upnp_soap_free(u->soap);	/* cancels: no done any more */
	u->soap = NULL;
	while ((job = u->in_flight) != NULL) {
		u->in_flight = job->next;
		upnp_job_unref(u, job);
	}
	job = upnp_take(u, &gone);
	while (job != NULL) {
		gone = job->next;
		upnp_job_unref(u, job);
		job = gone;
	}
}

void
upnp_close(struct upnp *u)
{
	int rc;

	if (u == NULL)
		return;
	/* our HTTP server's pending actions go first, before the action
	   layer (upnp_http.h) */
	upnp_http_close(u->http);
	u->http = NULL;
	/* answers held for workers: dropped (the workers leave below) */
	while (u->held != NULL)
		outbox_forget(u->outbox, u->held);
	if (u->sync_ready) {
		upnp_release_workers(u);
		upnp_drop_jobs(u);
	} else if (u->soap != NULL)
		upnp_soap_free(u->soap);
	if (u->registered &&
	    (rc = UpnpUnRegisterRootDevice(u->hnd)) != UPNP_E_SUCCESS)
		log_warnx("upnp: unregister: %s", UpnpGetErrorMessage(rc));
	/* byebye sent; joins pupnp's threads (they wait for nothing of
	   ours any more) */
	if (u->initialised)
		(void)UpnpFinish();
	upnp_guard_disarm();
	if (u->ev_wake != NULL)
		event_free(u->ev_wake);
	if (u->wake_fd != -1)
		close(u->wake_fd);
	if (u->sync_ready) {
		pthread_cond_destroy(&u->cond);
		pthread_mutex_destroy(&u->lock);
	}
	free(u->lan);
	free(u);
}

void
upnp_tick(struct upnp *u, uint64_t now)
{
	if (u != NULL)
		upnp_soap_tick(u->soap, now);
}

uint64_t
upnp_next_deadline(const struct upnp *u)
{
	return u == NULL ? UINT64_MAX : upnp_soap_next_deadline(u->soap);
}

uint16_t
upnp_port(const struct upnp *u)
{
	return u->port;
}

void
upnp_ports(const struct upnp *u, uint16_t *desc_port,
    uint16_t *control_port)
{
	*desc_port = u->port;
	*control_port = u->http != NULL ? upnp_http_port(u->http) : 0;
}

const char *
upnp_desc_url(const struct upnp *u)
{
	return u->desc_url;
}

void
upnp_stats(struct upnp *u, struct upnp_stats *st)
{
	struct upnp_http_stats hs;

	memset(st, 0, sizeof(*st));
	if (u == NULL)
		return;
	if (u->http != NULL) {
		upnp_http_stats(u->http, &hs);
		st->rate_limited = hs.rate_limited;
		st->host_refused = hs.host_refused;
		st->not_lan = hs.not_lan;
	}
	st->rate_limited += u->rate_limited;
	if (u->sync_ready) {
		pthread_mutex_lock(&u->lock);
		st->not_lan += u->not_lan;
		pthread_mutex_unlock(&u->lock);
	}
}
