/* uring_ceiling: the C ceiling of uringq's workload W1 (SPEC section 6).
 *
 * Random reads of BS bytes (4 KiB in W1) from a file held in the page cache, two ways,
 * over the same offsets:
 *   1. a plain pread() loop, one read at a time;
 *   2. io_uring with the file and DEPTH buffers registered, DEPTH reads kept in flight
 *      (READ_FIXED on a fixed file; a single-issuer ring with DEFER_TASKRUN where the
 *      kernel has it, as uringq's batch API uses a private ring).
 * Every read must return BS bytes; anything else ends the run with exit status 1.
 *
 * build: cc -O2 -Wall -o uring_ceiling uring_ceiling.c -luring   (apt-get install liburing-dev;
 *        ceiling.h, next to this file, is included)
 * run:   uring_ceiling FILE OPS DEPTH BS [OFFSETS]
 *        OFFSETS: a file of OPS native 64-bit offsets (the bench passes the ones its Python
 *        paths read); without it the offsets are drawn here, uniform over the file's whole
 *        BS-byte blocks, with a fixed seed.
 * prints one line of key=value figures (rates in operations per second):
 *        pread_ops_s=R uring_ops_s=R ops=OPS depth=DEPTH bs=BS setup=defer_taskrun|plain
 */
#define _GNU_SOURCE
#define PROG "uring_ceiling"
#define USAGE "FILE OPS DEPTH BS [OFFSETS]"
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ceiling.h"

static long positive(const char *text, const char *name) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || *end || value <= 0) {
        char why[128];
        snprintf(why, sizeof(why), "%s must be a positive integer, not '%s'", name, text);
        usage(why);
    }
    return value;
}

/* splitmix64: small, fixed-seed, good enough to spread offsets over the file. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t *make_offsets(const char *from, long ops, off_t size, size_t bs) {
    uint64_t *offsets = malloc(sizeof(*offsets) * (size_t)ops);
    if (!offsets) fail("malloc", ENOMEM);
    uint64_t blocks = (uint64_t)size / bs;
    if (blocks == 0) usage("the file is smaller than one block");
    if (from == NULL) {
        uint64_t state = 42;
        for (long i = 0; i < ops; i++) offsets[i] = (next_random(&state) % blocks) * bs;
        return offsets;
    }
    FILE *f = fopen(from, "rb");
    if (!f) fail(from, errno);
    if (fread(offsets, sizeof(*offsets), (size_t)ops, f) != (size_t)ops)
        usage("OFFSETS holds fewer than OPS offsets");
    fclose(f);
    for (long i = 0; i < ops; i++)
        if (offsets[i] + bs > (uint64_t)size) usage("an offset in OFFSETS is past the end of FILE");
    return offsets;
}

static void check_read(long result, size_t bs, uint64_t offset) {
    if (result == (long)bs) return;
    if (result < 0) fail("read", (int)-result);
    fprintf(stderr, "%s: read at %llu returned %ld bytes, not %zu\n", PROG,
            (unsigned long long)offset, result, bs);
    exit(1);
}

static double pread_loop(int fd, const uint64_t *offsets, long ops, char *buf, size_t bs) {
    double start = now();
    for (long i = 0; i < ops; i++) {
        ssize_t n = pread(fd, buf, bs, (off_t)offsets[i]);
        check_read(n < 0 ? -errno : (long)n, bs, offsets[i]);
    }
    return (double)ops / (now() - start);
}

static double uring_loop(int fd, const uint64_t *offsets, long ops, char *mem, size_t bs,
                         unsigned depth, const char **setup) {
    struct io_uring ring;
    *setup = setup_ring(&ring, depth);
    int ret = io_uring_register_files(&ring, &fd, 1);
    if (ret < 0) fail("io_uring_register_files", -ret);
    struct iovec *iov = calloc(depth, sizeof(*iov));
    unsigned *free_slots = calloc(depth, sizeof(*free_slots));
    if (!iov || !free_slots) fail("calloc", ENOMEM);
    for (unsigned i = 0; i < depth; i++) {
        iov[i].iov_base = mem + (size_t)i * bs;
        iov[i].iov_len = bs;
        free_slots[i] = i;
    }
    ret = io_uring_register_buffers(&ring, iov, depth);
    if (ret < 0) fail("io_uring_register_buffers", -ret);
    io_uring_register_ring_fd(&ring); /* optional (5.18+): saves an fd lookup per enter */

    unsigned nfree = depth;
    long issued = 0, done = 0;
    double start = now();
    while (done < ops) {
        while (nfree > 0 && issued < ops) {
            unsigned slot = free_slots[--nfree];
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_read_fixed(sqe, 0, mem + (size_t)slot * bs, (unsigned)bs,
                                     offsets[issued], (int)slot);
            sqe->flags |= IOSQE_FIXED_FILE;
            /* user_data: the slot in the low 32 bits, the request number above */
            io_uring_sqe_set_data64(sqe, ((uint64_t)issued << 32) | slot);
            issued++;
        }
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR) fail("io_uring_submit_and_wait", -ret);
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            check_read(cqe->res, bs, offsets[cqe->user_data >> 32]);
            free_slots[nfree++] = (unsigned)(cqe->user_data & 0xffffffffu);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        done += seen;
    }
    double rate = (double)ops / (now() - start);
    io_uring_queue_exit(&ring);
    free(iov);
    free(free_slots);
    return rate;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) usage("wrong number of arguments");
    long ops = positive(argv[2], "OPS");
    long depth = positive(argv[3], "DEPTH");
    long bs = positive(argv[4], "BS");
    if (depth > 4096) usage("DEPTH must be at most 4096");
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(argv[1], errno);
    struct stat st;
    if (fstat(fd, &st) < 0) fail("fstat", errno);
    uint64_t *offsets = make_offsets(argc == 6 ? argv[5] : NULL, ops, st.st_size, (size_t)bs);
    char *mem;
    if (posix_memalign((void **)&mem, 4096, (size_t)bs * (size_t)depth)) fail("memalign", ENOMEM);

    double pread_rate = pread_loop(fd, offsets, ops, mem, (size_t)bs);
    const char *setup;
    double uring_rate = uring_loop(fd, offsets, ops, mem, (size_t)bs, (unsigned)depth, &setup);
    printf("pread_ops_s=%.0f uring_ops_s=%.0f ops=%ld depth=%ld bs=%ld setup=%s\n", pread_rate,
           uring_rate, ops, depth, bs, setup);
    free(mem);
    free(offsets);
    close(fd);
    return 0;
}
