#ifndef PGFLOW_CLIBPQ_SHIM_H
#define PGFLOW_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#endif
