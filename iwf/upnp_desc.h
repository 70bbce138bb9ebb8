/*
 * upnp_desc.h - the UPnP IGD device description and service descriptions
 * (SCPD) we serve (spec/iwf.md §3.1, §3.2; U-01, U-02), generated from the
 * configuration. Pure: no pupnp, no sockets; the glue (upnp.c) hands the
 * texts to pupnp.
 *
 * Tree (IGD:1 / IGD:2, spec/iwf.md §3.1):
 *   InternetGatewayDevice:N          service Layer3Forwarding:1
 *     WANDevice:N                    service WANCommonInterfaceConfig:1
 *       WANConnectionDevice:N        service WANIPConnection:N
 * In IGDv1 mode nothing in the description or an SCPD mentions version 2
 * (Windows and Xbox give up on an IGD:2 description).
 */
#ifndef IWFD_UPNP_DESC_H
#define IWFD_UPNP_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iwf_nonce.h"

enum upnp_service {
	UPNP_SVC_L3F = 0,	/* Layer3Forwarding:1 */
	UPNP_SVC_WANCIC,	/* WANCommonInterfaceConfig:1 */
	UPNP_SVC_WANIPC,	/* WANIPConnection:1 or :2 */
	UPNP_SVC_COUNT
};

/* The three devices of the tree, each with its own UDN. */
enum upnp_device {
	UPNP_DEV_ROOT = 0,	/* InternetGatewayDevice */
	UPNP_DEV_WAN,		/* WANDevice */
	UPNP_DEV_WANCONN,	/* WANConnectionDevice */
	UPNP_DEV_COUNT
};

/* "uuid:" + 36 characters of an RFC 4122 UUID. */
#define UPNP_UDN_LEN		41
/* Where pupnp 1.8.4 serves a description registered from memory
   (UPNPREG_BUF_DESC: upnpapi.c GetDescDocumentAndURL). */
#define UPNP_DESC_PATH		"/description.xml"
/* Virtual directory of the SCPDs (UpnpAddVirtualDir). */
#define UPNP_SCPD_DIR		"/scpd"

/* What a service is called and where it lives, for one IGD version. */
struct upnp_service_info {
	const char	*type;		/* urn:schemas-upnp-org:service:... */
	const char	*id;		/* urn:upnp-org:serviceId:... */
	const char	*scpd_path;	/* under UPNP_SCPD_DIR */
	const char	*control_path;
	const char	*event_path;
};

const struct upnp_service_info *upnp_service_info(unsigned int version,
		    enum upnp_service);
/* The service with that serviceId (pupnp hands requests over by id), or
   -1 when none. */
int		 upnp_service_by_id(unsigned int version, const char *id);
/* The device type (urn:schemas-upnp-org:device:...:N) of a tree node. */
const char	*upnp_device_type(unsigned int version, enum upnp_device);

struct upnp_desc_params {
	unsigned int	 version;		/* 1 or 2 */
	const char	*friendly_name;		/* UTF-8, escaped here */
	const char	*manufacturer;
	const char	*model_name;
	const char	*model_number;
	const char	*serial;
	const char	*presentation_url;	/* NULL: none */
	char		 udn[UPNP_DEV_COUNT][UPNP_UDN_LEN + 1];
	/* Optional (NULL or "": manufacturerURL left out, a generic
	   modelDescription). Required texts that are NULL or "" get a
	   generic value: UDA 1.0 §2.1 requires friendlyName, manufacturer
	   and modelName. */
	const char	*manufacturer_url;
	const char	*model_description;
	/* Where SOAP control is served: "http://ADDR:PORT" (no trailing
	   slash) makes every controlURL absolute on that server (our own
	   HTTP server on the loop, iwf/upnp_http.h); NULL or "": relative
	   to the description's base (pupnp's server). */
	const char	*control_base;
};

/* The Layer3Forwarding DefaultConnectionService value, "<UDN of the
   WANConnectionDevice>:WANConnectionDevice:N,<WANIPConnection
   serviceId>" (the form miniupnpd answers), for the action and its
   event. */
#define UPNP_DEFAULT_CONN_SERVICE_SIZE	128

/*
 * The UDNs of the three devices (U-02, X-10): random per install and
 * stable across restarts, derived from the per-install secret that the
 * state file keeps (the nonce key) - so no extra state. RFC 4122 version
 * 4 layout; no WAN-side or hardware identity in them.
 */
void		 upnp_desc_udns(const uint8_t key[IWF_NONCE_KEY_SIZE],
		    struct upnp_desc_params *);
/* The root description, NUL-terminated, malloc'd (the caller frees);
   *len without the NUL. NULL when memory runs out or the version is
   neither 1 nor 2. */
char		*upnp_desc_root(const struct upnp_desc_params *, size_t *len);
/* A service's SCPD for the version: static text, NUL-terminated. */
const char	*upnp_desc_scpd(unsigned int version, enum upnp_service,
		    size_t *len);
/* The SCPD served at a path under UPNP_SCPD_DIR ("/scpd/x.xml"), or NULL
   (the glue's virtual-directory callbacks). */
const char	*upnp_desc_scpd_at(unsigned int version, const char *path,
		    size_t *len);
/* The service's SCPD for the version lists an action of that name
   (exact, case-sensitive): what the soap layer may answer, everything
   else is 401 Invalid Action. */
bool		 upnp_desc_has_action(unsigned int version, enum upnp_service,
		    const char *name);
/* DefaultConnectionService (Layer3Forwarding) into buf; false when it
   does not fit or the version is unknown. */
bool		 upnp_desc_default_connection_service(
		    const struct upnp_desc_params *, char *buf, size_t size);

#endif
