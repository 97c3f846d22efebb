/* cleanup-maps.h: address masquerading, pure for the message code and the unit test. (The map lookups are
 * address-map.h's.) */
#pragma once

/* Postfix's masquerading: user@host.sub.example.org becomes user@example.org when example.org is listed;
 * "!sub.example.org" before it keeps that domain and its subdomains as they are; local parts in
 * exceptions are never masqueraded. 1 and *ret when changed, 0 when not. */
int cleanup_masquerade(char **domains, char **exceptions, const char *addr, char **ret);
