/*
 * map.c - names and parsing for the common mapping model.
 */
#include <stdlib.h>
#include <strings.h>

#include "map.h"

const char *
map_origin_name(enum map_origin origin)
{
	static const char *const names[MAP_ORIGIN_COUNT] = {
		[MAP_ORIGIN_PCP] = "pcp",
		[MAP_ORIGIN_NATPMP] = "natpmp",
		[MAP_ORIGIN_UPNP] = "upnp",
		[MAP_ORIGIN_CONTROL] = "control",
	};

	if ((unsigned int)origin >= MAP_ORIGIN_COUNT)
		return "unknown";
	return names[origin];
}

const char *
map_proto_name(uint8_t proto)
{
	switch (proto) {
	case MAP_PROTO_TCP:
		return "tcp";
	case MAP_PROTO_UDP:
		return "udp";
	default:
		return NULL;
	}
}

int
map_proto_parse(const char *s)
{
	char *end;
	long v;

	if (strcasecmp(s, "tcp") == 0)
		return MAP_PROTO_TCP;
	if (strcasecmp(s, "udp") == 0)
		return MAP_PROTO_UDP;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 0 || v > 255)
		return -1;
	return (int)v;
}
