#ifndef GRPCTOP_CARES_SHIM_H
#define GRPCTOP_CARES_SHIM_H
// c-ares 1.18 (Debian libc-ares-dev), the resolver gRPC C-core uses. nameser.h first: ares.h
// needs ns_c_in / ns_t_a.
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <ares.h>
#endif
