/* smallfiles_ceiling: the C ceiling of uringq's workload W2, many small files
 * (SPEC sections 6 and 9). Reads every file of a list whole, two ways:
 *   1. a loop of open() / read() / close(), one file at a time;
 *   2. io_uring, one linked chain per file: OPENAT into a direct descriptor (a slot of a
 *      sparse registered file table) -> READ from that fixed file -> CLOSE of the slot,
 *      INFLIGHT chains in flight: a slot gets the next file as soon as its chain has
 *      completed (a sliding window, not lock-step batches).
 *      The OPENAT carries IOSQE_IO_LINK: if it fails, the READ and the CLOSE are
 *      cancelled (there is nothing to close). The READ carries IOSQE_IO_HARDLINK: every
 *      file smaller than the buffer is a short read, which must not cancel the CLOSE.
 *      O_CLOEXEC is not passed: direct descriptors refuse it (EINVAL).
 * Each file is read into a BUFSZ (64 KiB) buffer in one read; a file that fills it is an
 * error here (this ceiling is for small files; uringq follows up with more reads).
 * Each way runs in two modes:
 *   reuse: the buffers are reused for every file and nothing is kept (the bare I/O);
 *   keep:  as read_files must (and every Python row does: a list of bytes objects), each
 *          file's content is copied into a malloc'd buffer of its exact size, kept until
 *          the end of the pass and only then freed (outside the timing). Fresh memory
 *          costs a page fault per 4 KiB page touched, which the reuse mode never pays.
 * The kept results of the two ways are compared byte for byte.
 * Any failure (open, read, close, a mismatch between the two ways) ends with status 1.
 *
 * build: cc -O2 -Wall -o smallfiles_ceiling smallfiles_ceiling.c -luring
 *        (apt-get install liburing-dev; ceiling.h, next to this file, is included)
 * run:   smallfiles_ceiling LIST|DIR INFLIGHT [reuse|keep|both]
 *        LIST: a file of paths, one per line (the bench writes the paths its Python rows
 *        read); DIR: every regular file directly in that directory, sorted by name.
 *        The modes to run (default both: reuse, then keep).
 * prints one line of key=value figures (rates in files per second), those of the modes
 * not run left out:
 *        files=N bytes=B loop_files_s=R uring_files_s=R loop_keep_files_s=R
 *        uring_keep_files_s=R inflight=INFLIGHT setup=defer_taskrun|plain
 */
#define _GNU_SOURCE
#define PROG "smallfiles_ceiling"
#define USAGE "LIST|DIR INFLIGHT [reuse|keep|both]"
#include <dirent.h>
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

#define BUFSZ (64 * 1024)
enum { OP_OPEN, OP_READ, OP_CLOSE };

struct paths {
    char **items;
    size_t count, capacity;
};

static void add_path(struct paths *list, char *path) {
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 1024;
        list->items = realloc(list->items, list->capacity * sizeof(*list->items));
        if (!list->items) fail("realloc", ENOMEM);
    }
    list->items[list->count++] = path;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void paths_of_dir(const char *dir, struct paths *list) {
    DIR *d = opendir(dir);
    if (!d) fail(dir, errno);
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        char *path;
        if (asprintf(&path, "%s/%s", dir, entry->d_name) < 0) fail("asprintf", ENOMEM);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            add_path(list, path);
        else
            free(path);
    }
    closedir(d);
    qsort(list->items, list->count, sizeof(*list->items), by_name);
}

static void paths_of_list(const char *file, struct paths *list) {
    FILE *f = fopen(file, "r");
    if (!f) fail(file, errno);
    char *line = NULL;
    size_t size = 0;
    ssize_t n;
    while ((n = getline(&line, &size, f)) > 0) {
        if (line[n - 1] == '\n') line[--n] = '\0';
        if (n > 0) add_path(list, strdup(line));
    }
    free(line);
    fclose(f);
}

static void file_error(const char *what, const char *path, int err) {
    fprintf(stderr, "%s: %s %s: %s\n", PROG, what, path, strerror(err));
    exit(1);
}

static void too_big(const char *path) {
    fprintf(stderr, "%s: %s has %d bytes or more: this ceiling reads files under 64 KiB\n",
            PROG, path, BUFSZ);
    exit(1);
}

/* One file's kept content (keep mode). */
struct kept {
    char *data;
    size_t len;
};

/* Copies the `n` bytes read for a file into a new buffer of that size (keep mode). */
static void keep(struct kept *kept, const char *buf, ssize_t n) {
    kept->data = malloc(n > 0 ? (size_t)n : 1);
    if (!kept->data) fail("malloc", ENOMEM);
    memcpy(kept->data, buf, (size_t)n);
    kept->len = (size_t)n;
}

static void free_kept(struct kept *kept, size_t count) {
    for (size_t i = 0; i < count; i++) free(kept[i].data);
}

/* `kept`: NULL to reuse `buf` for every file (reuse mode), else where each file's copy
 * goes (keep mode). */
static double loop_read(const struct paths *list, char *buf, struct kept *kept,
                        long long *bytes) {
    long long total = 0;
    double start = now();
    for (size_t i = 0; i < list->count; i++) {
        int fd = open(list->items[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) file_error("open", list->items[i], errno);
        ssize_t n = read(fd, buf, BUFSZ);
        if (n < 0) file_error("read", list->items[i], errno);
        if (n == BUFSZ) too_big(list->items[i]);
        if (kept) keep(&kept[i], buf, n);
        if (close(fd) < 0) file_error("close", list->items[i], errno);
        total += n;
    }
    double rate = (double)list->count / (now() - start);
    *bytes = total;
    return rate;
}

/* Queues the chain OPENAT -> READ -> CLOSE of `path` on direct descriptor `slot`.
 * user_data: the file's index << 2 | the operation; the slot is the index's slot. */
static void queue_chain(struct io_uring *ring, const char *path, unsigned slot, uint64_t index,
                        char *buf) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_openat_direct(sqe, AT_FDCWD, path, O_RDONLY, 0, slot);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, index << 2 | OP_OPEN);

    sqe = io_uring_get_sqe(ring);
    io_uring_prep_read(sqe, (int)slot, buf, BUFSZ, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, index << 2 | OP_READ);

    sqe = io_uring_get_sqe(ring);
    io_uring_prep_close_direct(sqe, slot);
    io_uring_sqe_set_data64(sqe, index << 2 | OP_CLOSE);
}

/* `kept` as for loop_read. */
static double uring_read(const struct paths *list, unsigned inflight, char *bufs,
                         struct kept *kept, long long *bytes, const char **setup) {
    struct io_uring ring;
    *setup = setup_ring(&ring, 3 * inflight);
    int ret = io_uring_register_files_sparse(&ring, inflight);
    if (ret < 0) fail("io_uring_register_files_sparse", -ret);
    io_uring_register_ring_fd(&ring); /* optional (5.18+) */
    unsigned *slot_of = calloc(list->count, sizeof(*slot_of));
    unsigned *free_slots = calloc(inflight, sizeof(*free_slots));
    if (!slot_of || !free_slots) fail("calloc", ENOMEM);
    for (unsigned i = 0; i < inflight; i++) free_slots[i] = i;

    unsigned nfree = inflight;
    size_t next = 0, done = 0;
    long long total = 0;
    double start = now();
    while (done < list->count) {
        while (nfree > 0 && next < list->count) {
            unsigned slot = free_slots[--nfree];
            slot_of[next] = slot;
            queue_chain(&ring, list->items[next], slot, next, bufs + (size_t)slot * BUFSZ);
            next++;
        }
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR) fail("io_uring_submit_and_wait", -ret);
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            size_t index = (size_t)(cqe->user_data >> 2);
            const char *path = list->items[index];
            switch (cqe->user_data & 3) {
            case OP_OPEN:
                if (cqe->res < 0) file_error("openat", path, -cqe->res);
                break;
            case OP_READ:
                if (cqe->res < 0) file_error("read", path, -cqe->res);
                if (cqe->res == BUFSZ) too_big(path);
                if (kept) keep(&kept[index], bufs + (size_t)slot_of[index] * BUFSZ, cqe->res);
                total += cqe->res;
                break;
            default: /* the CLOSE comes last in its chain: the slot is free again */
                if (cqe->res < 0) file_error("close", path, -cqe->res);
                free_slots[nfree++] = slot_of[index];
                done++;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    double rate = (double)list->count / (now() - start);
    io_uring_queue_exit(&ring);
    free(slot_of);
    free(free_slots);
    *bytes = total;
    return rate;
}

static double kept_bytes(const struct kept *kept, size_t count) {
    double total = 0;
    for (size_t i = 0; i < count; i++) total += (double)kept[i].len;
    return total;
}

/* The two ways must have read the same bytes for every file. */
static void compare_kept(const struct paths *list, const struct kept *a, const struct kept *b) {
    for (size_t i = 0; i < list->count; i++) {
        if (a[i].len != b[i].len || memcmp(a[i].data, b[i].data, a[i].len) != 0) {
            fprintf(stderr, "%s: the loop and io_uring read different bytes of %s\n", PROG,
                    list->items[i]);
            exit(1);
        }
    }
}

static void same_bytes(long long loop_bytes, long long uring_bytes) {
    if (loop_bytes != uring_bytes) {
        fprintf(stderr, "%s: the loop read %lld bytes, io_uring %lld\n", PROG, loop_bytes,
                uring_bytes);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) usage("wrong number of arguments");
    char *end;
    long inflight = strtol(argv[2], &end, 10);
    if (*end || inflight < 1 || inflight > 4096) usage("INFLIGHT must be 1 to 4096");
    const char *mode = argc == 4 ? argv[3] : "both";
    int reuse = !strcmp(mode, "reuse") || !strcmp(mode, "both");
    int keeping = !strcmp(mode, "keep") || !strcmp(mode, "both");
    if (!reuse && !keeping) usage("the mode is reuse, keep or both");
    struct paths list = {0};
    struct stat st;
    if (stat(argv[1], &st) < 0) fail(argv[1], errno);
    if (S_ISDIR(st.st_mode))
        paths_of_dir(argv[1], &list);
    else
        paths_of_list(argv[1], &list);
    if (list.count == 0) usage("no files to read");
    /* Page-aligned buffers: on some CPUs (this project's AMD EPYC VM) the kernel copies
     * into a destination 16 bytes off a 32-byte boundary about 1.5x slower. */
    char *bufs;
    if (posix_memalign((void **)&bufs, 4096, (size_t)inflight * BUFSZ)) fail("memalign", ENOMEM);

    long long loop_bytes = 0, uring_bytes = 0;
    const char *setup = "plain";
    printf("files=%zu", list.count);
    if (reuse) {
        double loop_rate = loop_read(&list, bufs, NULL, &loop_bytes);
        double uring_rate = uring_read(&list, (unsigned)inflight, bufs, NULL, &uring_bytes, &setup);
        same_bytes(loop_bytes, uring_bytes);
        printf(" loop_files_s=%.0f uring_files_s=%.0f", loop_rate, uring_rate);
    }
    if (keeping) {
        struct kept *by_loop = calloc(list.count, sizeof(*by_loop));
        struct kept *by_uring = calloc(list.count, sizeof(*by_uring));
        if (!by_loop || !by_uring) fail("calloc", ENOMEM);
        double loop_rate = loop_read(&list, bufs, by_loop, &loop_bytes);
        double uring_rate =
            uring_read(&list, (unsigned)inflight, bufs, by_uring, &uring_bytes, &setup);
        same_bytes(loop_bytes, uring_bytes);
        if (kept_bytes(by_uring, list.count) != (double)uring_bytes) fail("kept bytes", EIO);
        compare_kept(&list, by_loop, by_uring);
        free_kept(by_loop, list.count);
        free_kept(by_uring, list.count);
        free(by_loop);
        free(by_uring);
        printf(" loop_keep_files_s=%.0f uring_keep_files_s=%.0f", loop_rate, uring_rate);
    }
    printf(" bytes=%lld inflight=%ld setup=%s\n", uring_bytes, inflight, setup);
    for (size_t i = 0; i < list.count; i++) free(list.items[i]);
    free(list.items);
    free(bufs);
    return 0;
}
