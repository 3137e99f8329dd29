/* What uring_ceiling.c and smallfiles_ceiling.c share: a clock, how they fail, and the
 * ring they set up. Each defines PROG (its name) and USAGE (its arguments) first. */
#ifndef URINGQ_CEILING_H
#define URINGQ_CEILING_H

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A failure while measuring: status 1. */
static void fail(const char *what, int err) {
    fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(err));
    exit(1);
}

/* Bad arguments: status 2. */
static void usage(const char *why) {
    fprintf(stderr, "%s: %s\nusage: %s %s\n", PROG, why, PROG, USAGE);
    exit(2);
}

/* A single-issuer ring with DEFER_TASKRUN (6.1+), as uringq's private rings use where
 * they can, else a plain one; returns which. */
static const char *setup_ring(struct io_uring *ring, unsigned entries) {
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(entries, ring, &params) == 0) return "defer_taskrun";
    memset(&params, 0, sizeof(params));
    int ret = io_uring_queue_init_params(entries, ring, &params);
    if (ret < 0) fail("io_uring_queue_init", -ret);
    return "plain";
}

#endif
