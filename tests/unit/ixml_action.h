/*
 * ixml_action.h - the tests' oracle for the SOAP argument rules (see
 * ixml_action.c): libixml's DOM, as pupnp's port was read before the XML
 * gate.
 */
#ifndef IWFD_TEST_IXML_ACTION_H
#define IWFD_TEST_IXML_ACTION_H

#include "upnp_soap.h"

/*
 * Copy the in-arguments of an action element (the children of
 * <u:ActionName>, whatever their namespace prefix; typed ones such as
 * dt:dt="ui2" included; whitespace-only text between elements ignored;
 * values trimmed of surrounding whitespace). `action_elem` is the
 * IXML_Node * of the action element (void * keeps ixml.h out of this
 * header). Fills act->name from the element's local name when it is
 * empty, the args, and sets act->malformed instead of failing. An
 * IXML_Document * (what UpnpActionRequest_get_ActionRequest returns) is
 * taken too: its first element child is the action element. Text and
 * CDATA children of an argument make its value (entities decoded by
 * ixml); an element inside an argument, non-blank text between the
 * arguments, a name given twice, more than UPNP_ARGS_MAX arguments or a
 * name or value too long make it malformed.
 */
void		 upnp_action_from_xml(const void *action_elem,
		    struct upnp_action *act);

#endif
