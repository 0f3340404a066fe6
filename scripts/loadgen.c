/*
 * loadgen.c -- Handle protocol (2.11) RESOLUTION load generator for benchmarks.
 *
 * Built and driven by scripts/bench_resolution.py (see scripts/README-bench.md):
 *   cc -O2 -o loadgen scripts/loadgen.c
 *   loadgen --host 127.0.0.1 --port 2641 --mode udp|tcp --window 32 --duration 10 \
 *           --warmup 1 --handles FILE [--missing-percent 10] [--connections 4] [--seed 1]
 *
 * UDP: one non-blocking socket keeps WINDOW requests in flight; answers are matched by request
 * id; nothing is retransmitted: a request without an answer after 1 s counts as lost.
 * TCP: first probes whether the server keeps a connection open for a second request. If it does,
 * CONNECTIONS persistent connections share the window with pipelined requests ("pipelined");
 * if it closes after each answer (the Java server, wire.md 12.1), WINDOW connections each carry
 * one request and reconnect after every answer ("reconnect").
 *
 * Requests are the Java client's layout (wire.md section 14, first vector): envelope 2.11
 * (suggested 2.11), header with flags 0x19000000 (REC|CA|PO), serial 0xFFFF, body = handle,
 * empty index list, empty type list, then a zero credential length. Names that exist must
 * answer RC 1, the generated missing names RC 100; any other answer counts as an error.
 *
 * Only requests sent inside the measured interval (after the warmup) are counted. Sending stops
 * when the interval ends; answers are awaited for at most 1 s more, so the run takes at most
 * probe (<= 3 s) + warmup + duration + 1 s. Latency goes into a fixed log-linear histogram
 * (no per-request allocation). The result is one JSON line on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ENVELOPE_LEN 20
#define HEADER_LEN 24
#define MAX_MESSAGE_LEN 262144 /* wire.md 3: larger messageLength is a protocol error */
#define UDP_MAX_DATAGRAM 512
#define MAX_WINDOW 4096
#define MAX_HANDLE_LEN 400 /* keeps every request in one UDP datagram */
#define LOST_AFTER_NS 1000000000LL
#define MISSING_NAMES 1024
#define OP_RESOLUTION 1
#define RC_SUCCESS 1
#define RC_HANDLE_NOT_FOUND 100
#define UDP_BATCH 64
#define TIMEOUT_SCAN_NS 10000000LL

/* ---------- time ---------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------- big-endian helpers ---------- */

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---------- latency histogram: 1 us buckets below 1024 us, then 64 sub-buckets per power of two ---------- */

#define HIST_LINEAR 1024
#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_EXP - 10 + 1) * HIST_SUB)

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count;
static uint64_t hist_max_us;
static double hist_sum_us;

static int hist_index(uint64_t us) {
    if (us < HIST_LINEAR) return (int)us;
    if (us >= (1ULL << HIST_MAX_EXP)) us = (1ULL << HIST_MAX_EXP) - 1;
    int e = 63 - __builtin_clzll(us);
    int sub = (int)((us >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
    return HIST_LINEAR + (e - 10) * HIST_SUB + sub;
}

/* Upper edge of a bucket, so a reported percentile never understates the latency. */
static uint64_t hist_upper(int idx) {
    if (idx < HIST_LINEAR) return (uint64_t)idx;
    int e = (idx - HIST_LINEAR) / HIST_SUB + 10;
    int sub = (idx - HIST_LINEAR) % HIST_SUB;
    return ((uint64_t)(HIST_SUB + sub + 1) << (e - HIST_SUB_BITS)) - 1;
}

static void hist_record(int64_t ns) {
    uint64_t us = ns > 0 ? (uint64_t)(ns / 1000) : 0;
    hist[hist_index(us)]++;
    hist_count++;
    hist_sum_us += (double)us;
    if (us > hist_max_us) hist_max_us = us;
}

static uint64_t hist_percentile(double p) {
    if (hist_count == 0) return 0;
    uint64_t target = (uint64_t)(p * (double)hist_count);
    if (target < 1) target = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= target) {
            uint64_t v = hist_upper(i);
            return v > hist_max_us ? hist_max_us : v;
        }
    }
    return hist_max_us;
}

/* ---------- options ---------- */

struct options {
    const char *host;
    int port;
    const char *mode;
    int window;
    double duration;
    double warmup;
    const char *handles;
    double missing_percent;
    int connections;
    uint64_t seed;
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: loadgen --host H --port P --mode udp|tcp --handles FILE [--window N=32]\n"
            "               [--duration S=10] [--warmup S=1] [--missing-percent P=0]\n"
            "               [--connections C=4] [--seed N=1]\n"
            "Sends Handle protocol 2.11 RESOLUTION requests and prints one JSON result line.\n");
}

static int parse_options(int argc, char **argv, struct options *o) {
    o->host = "127.0.0.1";
    o->port = 0;
    o->mode = "udp";
    o->window = 32;
    o->duration = 10;
    o->warmup = 1;
    o->handles = NULL;
    o->missing_percent = 0;
    o->connections = 4;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--port")) o->port = atoi(v);
        else if (!strcmp(a, "--mode")) o->mode = v;
        else if (!strcmp(a, "--window")) o->window = atoi(v);
        else if (!strcmp(a, "--duration")) o->duration = atof(v);
        else if (!strcmp(a, "--warmup")) o->warmup = atof(v);
        else if (!strcmp(a, "--handles")) o->handles = v;
        else if (!strcmp(a, "--missing-percent")) o->missing_percent = atof(v);
        else if (!strcmp(a, "--connections")) o->connections = atoi(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "loadgen: unknown option %s\n", a);
            return -1;
        }
    }
    if (o->port <= 0 || o->port > 65535 || !o->handles) {
        fprintf(stderr, "loadgen: --port and --handles are required\n");
        return -1;
    }
    if (strcmp(o->mode, "udp") && strcmp(o->mode, "tcp")) {
        fprintf(stderr, "loadgen: --mode must be udp or tcp\n");
        return -1;
    }
    if (o->window < 1 || o->window > MAX_WINDOW) {
        fprintf(stderr, "loadgen: --window must be 1..%d\n", MAX_WINDOW);
        return -1;
    }
    if (o->duration <= 0 || o->duration > 3600 || o->warmup < 0 || o->warmup > 600) {
        fprintf(stderr, "loadgen: --duration must be in (0, 3600], --warmup in [0, 600]\n");
        return -1;
    }
    if (o->missing_percent < 0 || o->missing_percent > 100) {
        fprintf(stderr, "loadgen: --missing-percent must be 0..100\n");
        return -1;
    }
    if (o->connections < 1) o->connections = 1;
    if (o->connections > o->window) o->connections = o->window;
    if (o->seed == 0) o->seed = 1;
    return 0;
}

/* ---------- pre-built requests ---------- */

struct request {
    unsigned char *bytes; /* envelope + message; the request id (envelope offset 8) is patched per send */
    size_t len;
    int missing;
};

static struct request *existing;
static size_t n_existing;
static struct request *missing;
static size_t n_missing;
static size_t max_request_len;
static uint32_t missing_threshold; /* out of 1 000 000 */
static uint64_t rng_state;

static int build_request(struct request *r, const char *handle, size_t hlen, int is_missing, uint32_t expiration) {
    uint32_t body_len = 4 + (uint32_t)hlen + 4 + 4;
    uint32_t message_len = HEADER_LEN + body_len + 4;
    size_t total = ENVELOPE_LEN + message_len;
    unsigned char *p = calloc(1, total);
    if (!p) return -1;
    p[0] = 2; p[1] = 11; p[2] = 2; p[3] = 11; /* version 2.11, suggested 2.11 */
    put_u32(p + 16, message_len);
    unsigned char *h = p + ENVELOPE_LEN;
    put_u32(h + 0, OP_RESOLUTION);
    put_u32(h + 8, 0x19000000u); /* REC | CA | PO, as Java clients send */
    h[12] = 0xff; h[13] = 0xff; /* site info serial unknown */
    put_u32(h + 16, expiration);
    put_u32(h + 20, body_len);
    unsigned char *b = h + HEADER_LEN;
    put_u32(b, (uint32_t)hlen);
    memcpy(b + 4, handle, hlen);
    /* empty index list, empty type list and the zero credential length are already zero */
    r->bytes = p;
    r->len = total;
    r->missing = is_missing;
    if (total > max_request_len) max_request_len = total;
    return 0;
}

static int load_requests(const struct options *o) {
    FILE *f = fopen(o->handles, "r");
    if (!f) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", o->handles, strerror(errno));
        return -1;
    }
    uint32_t expiration = (uint32_t)(time(NULL) + 43200);
    size_t cap = 1024;
    existing = malloc(cap * sizeof *existing);
    char line[4096];
    char prefix[MAX_HANDLE_LEN] = "";
    while (existing && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        if (len == 0 || line[0] == '#') continue;
        if (len > MAX_HANDLE_LEN) {
            fprintf(stderr, "loadgen: handle longer than %d bytes: %.40s...\n", MAX_HANDLE_LEN, line);
            fclose(f);
            return -1;
        }
        if (n_existing == cap) {
            cap *= 2;
            struct request *grown = realloc(existing, cap * sizeof *existing);
            if (!grown) break;
            existing = grown;
        }
        if (build_request(&existing[n_existing], line, len, 0, expiration) < 0) break;
        if (n_existing == 0) {
            const char *slash = strchr(line, '/');
            size_t plen = slash ? (size_t)(slash - line) : len;
            memcpy(prefix, line, plen);
            prefix[plen] = 0;
        }
        n_existing++;
    }
    fclose(f);
    if (!existing || n_existing == 0) {
        fprintf(stderr, "loadgen: no handles in %s\n", o->handles);
        return -1;
    }
    /* Missing names live under the first handle's prefix, so the server is responsible for them
     * and must answer RC 100 (not a referral). */
    missing = malloc(MISSING_NAMES * sizeof *missing);
    if (!missing) return -1;
    for (size_t i = 0; i < MISSING_NAMES; i++) {
        char name[MAX_HANDLE_LEN + 64];
        int len = snprintf(name, sizeof name, "%s/bench-missing-%zu", prefix, i);
        if (build_request(&missing[i], name, (size_t)len, 1, expiration) < 0) return -1;
    }
    n_missing = MISSING_NAMES;
    missing_threshold = (uint32_t)(o->missing_percent * 10000.0 + 0.5);
    rng_state = o->seed * 0x9E3779B97F4A7C15ULL;
    return 0;
}

static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static const struct request *pick_request(void) {
    uint64_t r = rng_next();
    if (missing_threshold && (uint32_t)(r % 1000000) < missing_threshold)
        return &missing[(r >> 32) % n_missing];
    return &existing[(r >> 32) % n_existing];
}

/* ---------- in-flight slots and counters ---------- */

struct slot {
    uint32_t id; /* 0 = free */
    int64_t sent_ns;
    int counted; /* sent inside the measured interval */
    int missing;
    int conn;
};

static struct slot slots[MAX_WINDOW];
static uint32_t slot_mask;
static int slot_bits;
static uint32_t id_counter;

static struct {
    uint64_t sent, answered, ok, not_found, errors, lost, late, closed, connect_errors, send_errors;
    uint64_t reconnects;
} st;

static int64_t measure_start, send_end;

/* Unexpected response codes, for diagnosis: the first few distinct codes and their counts. */
#define MAX_ERROR_CODES 8
static uint32_t error_codes[MAX_ERROR_CODES];
static uint64_t error_code_counts[MAX_ERROR_CODES];
static int n_error_codes;

static void count_error_code(uint32_t rc) {
    for (int i = 0; i < n_error_codes; i++) {
        if (error_codes[i] == rc) {
            error_code_counts[i]++;
            return;
        }
    }
    if (n_error_codes < MAX_ERROR_CODES) {
        error_codes[n_error_codes] = rc;
        error_code_counts[n_error_codes++] = 1;
    }
}

/* Request ids carry the slot number in their low bits and a counter above, so an answer finds its
 * slot in O(1) and a late answer to a request given up on never matches the slot's new request. */
static uint32_t next_id(int slot_index) {
    for (;;) {
        id_counter++;
        uint32_t id = ((id_counter << slot_bits) | (uint32_t)slot_index) & 0x7fffffffu;
        if (id != 0) return id;
    }
}

static uint32_t claim_slot(int index, int conn, const struct request *r, int64_t now) {
    struct slot *s = &slots[index];
    s->id = next_id(index);
    s->sent_ns = now;
    s->counted = now >= measure_start && now < send_end;
    s->missing = r->missing;
    s->conn = conn;
    if (s->counted) st.sent++;
    return s->id;
}

static void release_slot_lost(struct slot *s) {
    if (s->counted) st.lost++;
    s->id = 0;
}

/* Checks one answer (envelope + message, at least the header). Returns the slot index it
 * completed, or -1 when it matched no request in flight. */
static int handle_answer(const unsigned char *msg, size_t len, int64_t now) {
    if (len < ENVELOPE_LEN + 12) {
        st.errors++; /* not attributable to a request */
        return -1;
    }
    uint32_t id = get_u32(msg + 8);
    int index = (int)(id & slot_mask);
    struct slot *s = &slots[index];
    if (id == 0 || s->id != id) {
        st.late++;
        return -1;
    }
    if (s->counted) {
        st.answered++;
        uint32_t opcode = get_u32(msg + ENVELOPE_LEN);
        uint32_t rc = get_u32(msg + ENVELOPE_LEN + 4);
        uint32_t expected = s->missing ? RC_HANDLE_NOT_FOUND : RC_SUCCESS;
        if (len < ENVELOPE_LEN + HEADER_LEN || opcode != OP_RESOLUTION || rc != expected) {
            st.errors++;
            count_error_code(rc);
        } else if (s->missing) st.not_found++;
        else st.ok++;
        hist_record(now - s->sent_ns);
    }
    s->id = 0;
    return index;
}

/* ---------- address ---------- */

static int resolve_address(const struct options *o, struct sockaddr_storage *addr, socklen_t *addrlen) {
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = strcmp(o->mode, "udp") ? SOCK_STREAM : SOCK_DGRAM;
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "loadgen: cannot resolve %s: %s\n", o->host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---------- UDP ---------- */

static void scan_timeouts(int64_t now, int *free_stack, int *n_free) {
    for (uint32_t i = 0; i <= slot_mask; i++) {
        struct slot *s = &slots[i];
        if (s->id && now - s->sent_ns > LOST_AFTER_NS) {
            release_slot_lost(s);
            free_stack[(*n_free)++] = (int)i;
        }
    }
}

static int run_udp(const struct options *o, const struct sockaddr_storage *addr, socklen_t addrlen) {
    int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)addr, addrlen) < 0) {
        fprintf(stderr, "loadgen: udp socket: %s\n", strerror(errno));
        return -1;
    }
    int bufsize = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);

    static int free_stack[MAX_WINDOW];
    int n_free = 0;
    for (int i = o->window - 1; i >= 0; i--) free_stack[n_free++] = i;

    static unsigned char sendbufs[UDP_BATCH][UDP_MAX_DATAGRAM];
    static unsigned char recvbufs[UDP_BATCH][2048];
    struct mmsghdr smsgs[UDP_BATCH], rmsgs[UDP_BATCH];
    struct iovec siov[UDP_BATCH], riov[UDP_BATCH];
    int batch_slot[UDP_BATCH];
    memset(rmsgs, 0, sizeof rmsgs);
    for (int i = 0; i < UDP_BATCH; i++) {
        riov[i].iov_base = recvbufs[i];
        riov[i].iov_len = sizeof recvbufs[i];
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    int64_t drain_end = send_end + LOST_AFTER_NS;
    int64_t next_scan = now_ns() + TIMEOUT_SCAN_NS;
    int want_out = 0;

    for (;;) {
        int64_t now = now_ns();
        int sending = now < send_end;
        if (now >= drain_end || (!sending && n_free == o->window)) break;

        if (sending && n_free > 0) {
            int n = 0;
            while (n_free > 0 && n < UDP_BATCH) {
                int index = free_stack[--n_free];
                const struct request *r = pick_request();
                memcpy(sendbufs[n], r->bytes, r->len);
                put_u32(sendbufs[n] + 8, claim_slot(index, 0, r, now));
                siov[n].iov_base = sendbufs[n];
                siov[n].iov_len = r->len;
                memset(&smsgs[n], 0, sizeof smsgs[n]);
                smsgs[n].msg_hdr.msg_iov = &siov[n];
                smsgs[n].msg_hdr.msg_iovlen = 1;
                batch_slot[n] = index;
                n++;
            }
            int done = sendmmsg(fd, smsgs, (unsigned)n, 0);
            int err = done < 0 ? errno : EAGAIN;
            if (done < 0) done = 0;
            want_out = done < n;
            for (int i = done; i < n; i++) {
                /* not sent: give the slot back and do not count the request */
                struct slot *s = &slots[batch_slot[i]];
                if (s->counted) st.sent--;
                if (err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS) st.send_errors++;
                s->id = 0;
                free_stack[n_free++] = batch_slot[i];
            }
        }

        for (int rounds = 0; rounds < 64; rounds++) {
            int got = recvmmsg(fd, rmsgs, UDP_BATCH, MSG_DONTWAIT, NULL);
            if (got <= 0) {
                if (got < 0 && errno == ECONNREFUSED) st.connect_errors++;
                break;
            }
            int64_t t = now_ns();
            for (int i = 0; i < got; i++) {
                size_t len = rmsgs[i].msg_len;
                if (len >= ENVELOPE_LEN && get_u32(recvbufs[i] + 12) != 0) continue; /* later packet */
                int index = handle_answer(recvbufs[i], len, t);
                if (index >= 0) free_stack[n_free++] = index;
            }
            if (got < UDP_BATCH) break;
        }

        now = now_ns();
        if (now >= next_scan) {
            scan_timeouts(now, free_stack, &n_free);
            next_scan = now + TIMEOUT_SCAN_NS;
        }
        if (n_free > 0 && now < send_end && !want_out) continue;
        struct pollfd p = {fd, (short)(POLLIN | (want_out ? POLLOUT : 0)), 0};
        poll(&p, 1, 5);
        want_out = 0;
    }
    for (uint32_t i = 0; i <= slot_mask; i++)
        if (slots[i].id) release_slot_lost(&slots[i]);
    close(fd);
    return 0;
}

/* ---------- TCP ---------- */

static int tcp_connect_blocking(const struct sockaddr_storage *addr, socklen_t addrlen) {
    int fd = socket(addr->ss_family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, addrlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one whole message; returns 1, 0 on EOF before any byte, -1 on error or timeout. */
static int read_message(int fd, unsigned char *buf, size_t cap) {
    size_t have = 0, need = ENVELOPE_LEN;
    while (have < need) {
        ssize_t n = read(fd, buf + have, need - have);
        if (n == 0) return have == 0 ? 0 : -1;
        if (n < 0) return errno == ECONNRESET && have == 0 ? 0 : -1;
        have += (size_t)n;
        if (have == ENVELOPE_LEN && need == ENVELOPE_LEN) {
            uint32_t len = get_u32(buf + 16);
            if (len > MAX_MESSAGE_LEN || ENVELOPE_LEN + len > cap) return -1;
            need = ENVELOPE_LEN + len;
        }
    }
    return 1;
}

/* Probe (not counted): does the server answer a second request on the same connection? */
static int probe_persistent(const struct sockaddr_storage *addr, socklen_t addrlen) {
    static unsigned char buf[ENVELOPE_LEN + MAX_MESSAGE_LEN];
    int fd = tcp_connect_blocking(addr, addrlen);
    if (fd < 0) return -1;
    int persistent = -1;
    unsigned char req[ENVELOPE_LEN + HEADER_LEN + 4 + MAX_HANDLE_LEN + 12];
    memcpy(req, existing[0].bytes, existing[0].len);
    put_u32(req + 8, 0x7ffffff0u);
    if (write(fd, req, existing[0].len) == (ssize_t)existing[0].len && read_message(fd, buf, sizeof buf) == 1) {
        struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
        int ready = poll(&p, 1, 300);
        unsigned char peek;
        if (ready > 0 && recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
            persistent = 0; /* closed after the answer */
        } else {
            put_u32(req + 8, 0x7ffffff1u);
            if (write(fd, req, existing[0].len) == (ssize_t)existing[0].len) {
                int r = read_message(fd, buf, sizeof buf);
                persistent = r == 1 ? 1 : 0;
            } else {
                persistent = 0;
            }
        }
    }
    close(fd);
    return persistent;
}

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_OPEN, CONN_DRAINING };

struct conn {
    int fd;
    enum conn_state state;
    int first_slot, n_slots, in_flight;
    int64_t since_ns; /* when the connection was opened or last finished a request */
    uint32_t events;  /* what epoll currently watches for */
    unsigned char *out;
    size_t out_len, out_off;
    unsigned char *in;
    size_t in_len;
};

static struct conn *conns;
static int n_conns;
static int epfd;
static int reconnect_mode;

static void conn_watch(struct conn *c, int idx, uint32_t events) {
    if (c->events == events) return;
    c->events = events;
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)idx};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CONN_IDLE;
    c->out_len = c->out_off = c->in_len = 0;
}

/* Connection lost with requests unanswered: they are lost (nothing is retransmitted). */
static void conn_fail(struct conn *c) {
    for (int i = 0; i < c->n_slots; i++) {
        struct slot *s = &slots[c->first_slot + i];
        if (s->id) {
            release_slot_lost(s);
            st.closed++;
        }
    }
    c->in_flight = 0;
    conn_close(c);
}

static int conn_open(struct conn *c, int idx, const struct sockaddr_storage *addr, socklen_t addrlen) {
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (const struct sockaddr *)addr, addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        st.connect_errors++;
        return -1;
    }
    c->fd = fd;
    c->since_ns = now_ns();
    c->state = rc == 0 ? CONN_OPEN : CONN_CONNECTING;
    c->out_len = c->out_off = c->in_len = 0;
    c->events = EPOLLIN | EPOLLOUT;
    struct epoll_event ev = {.events = c->events, .data.u32 = (uint32_t)idx};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

/* Queues requests into every free slot of the connection (when sending) and writes what it can. */
static void conn_fill_and_flush(struct conn *c, int idx, int64_t now) {
    if (c->state != CONN_OPEN) return;
    if (now < send_end) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        for (int i = 0; i < c->n_slots && c->in_flight < c->n_slots; i++) {
            int index = c->first_slot + i;
            if (slots[index].id) continue;
            const struct request *r = pick_request();
            memcpy(c->out + c->out_len, r->bytes, r->len);
            put_u32(c->out + c->out_len + 8, claim_slot(index, idx, r, now));
            c->out_len += r->len;
            c->in_flight++;
        }
    }
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            st.send_errors++;
            conn_fail(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    conn_watch(c, idx, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
}

static void conn_read(struct conn *c, int64_t *now) {
    for (;;) {
        size_t cap = ENVELOPE_LEN + MAX_MESSAGE_LEN;
        ssize_t n = read(c->fd, c->in + c->in_len, cap - c->in_len);
        if (n == 0) {
            if (c->state == CONN_DRAINING) conn_close(c); /* the expected close in reconnect mode */
            else conn_fail(c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (c->state == CONN_DRAINING) conn_close(c);
            else conn_fail(c);
            return;
        }
        c->in_len += (size_t)n;
        *now = now_ns();
        size_t off = 0;
        while (c->in_len - off >= ENVELOPE_LEN) {
            uint32_t len = get_u32(c->in + off + 16);
            if (len > MAX_MESSAGE_LEN) {
                st.errors++;
                conn_fail(c);
                return;
            }
            if (c->in_len - off < ENVELOPE_LEN + len) break;
            int index = handle_answer(c->in + off, ENVELOPE_LEN + len, *now);
            if (index >= 0) c->in_flight--;
            off += ENVELOPE_LEN + len;
        }
        if (off > 0) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }
        if (reconnect_mode && c->in_flight == 0 && c->state == CONN_OPEN) {
            c->state = CONN_DRAINING;
            c->since_ns = *now;
        }
    }
}

static int run_tcp(const struct options *o, const struct sockaddr_storage *addr, socklen_t addrlen,
                   int persistent) {
    reconnect_mode = !persistent;
    n_conns = reconnect_mode ? o->window : o->connections;
    conns = calloc((size_t)n_conns, sizeof *conns);
    epfd = epoll_create1(0);
    if (!conns || epfd < 0) return -1;
    int per = o->window / n_conns, extra = o->window % n_conns, next = 0;
    for (int i = 0; i < n_conns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->first_slot = next;
        c->n_slots = per + (i < extra ? 1 : 0);
        next += c->n_slots;
        c->out = malloc((size_t)c->n_slots * max_request_len);
        c->in = malloc(ENVELOPE_LEN + MAX_MESSAGE_LEN);
        if (!c->out || !c->in) return -1;
    }
    struct epoll_event events[256];
    int64_t drain_end = send_end + LOST_AFTER_NS;
    int64_t next_scan = now_ns() + TIMEOUT_SCAN_NS;
    int64_t next_connect_try = 0;

    for (;;) {
        int64_t now = now_ns();
        int sending = now < send_end;
        int busy = 0;
        for (int i = 0; i < n_conns; i++) busy += conns[i].in_flight;
        if (now >= drain_end || (!sending && busy == 0)) break;

        if (sending && now >= next_connect_try) {
            for (int i = 0; i < n_conns; i++) {
                struct conn *c = &conns[i];
                if (c->state != CONN_IDLE) continue;
                if (conn_open(c, i, addr, addrlen) < 0) {
                    next_connect_try = now + 10000000LL; /* back off 10 ms after a refused connect */
                    break;
                }
                conn_fill_and_flush(c, i, now);
            }
        }

        int n = epoll_wait(epfd, events, 256, 5);
        now = now_ns();
        for (int e = 0; e < n; e++) {
            int idx = (int)events[e].data.u32;
            struct conn *c = &conns[idx];
            if (c->fd < 0) continue;
            if (c->state == CONN_CONNECTING) {
                int err = 0;
                socklen_t elen = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
                if (err) {
                    st.connect_errors++;
                    conn_close(c);
                    next_connect_try = now + 10000000LL;
                    continue;
                }
                c->state = CONN_OPEN;
                conn_fill_and_flush(c, idx, now);
                continue;
            }
            if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c, &now);
            if (c->fd >= 0 && c->state == CONN_OPEN) conn_fill_and_flush(c, idx, now);
            if (reconnect_mode && c->state == CONN_IDLE) {
                st.reconnects++;
                if (now < send_end && conn_open(c, idx, addr, addrlen) == 0) conn_fill_and_flush(c, idx, now);
            }
        }

        if (now >= next_scan) {
            for (int i = 0; i < n_conns; i++) {
                struct conn *c = &conns[i];
                for (int k = 0; k < c->n_slots; k++) {
                    struct slot *s = &slots[c->first_slot + k];
                    if (s->id && now - s->sent_ns > LOST_AFTER_NS) {
                        release_slot_lost(s);
                        c->in_flight--;
                    }
                }
                /* a reconnect-mode connection stuck for 1 s (no connect, no answer, no close) is abandoned */
                if (reconnect_mode && c->in_flight == 0 && c->state != CONN_IDLE && now - c->since_ns > LOST_AFTER_NS)
                    conn_close(c);
                else if (!reconnect_mode && c->state == CONN_OPEN) conn_fill_and_flush(c, i, now);
            }
            next_scan = now + TIMEOUT_SCAN_NS;
        }
    }
    for (int i = 0; i < n_conns; i++) {
        for (int k = 0; k < conns[i].n_slots; k++) {
            struct slot *s = &slots[conns[i].first_slot + k];
            if (s->id) release_slot_lost(s);
        }
        conn_close(&conns[i]);
    }
    close(epfd);
    return 0;
}

/* ---------- main ---------- */

int main(int argc, char **argv) {
    struct options o;
    if (parse_options(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    if (load_requests(&o) < 0) return 2;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    if (resolve_address(&o, &addr, &addrlen) < 0) return 2;

    slot_bits = 0;
    while ((1 << slot_bits) < o.window) slot_bits++;
    slot_mask = (1u << slot_bits) - 1;

    int is_udp = !strcmp(o.mode, "udp");
    int persistent = 1;
    if (!is_udp) {
        persistent = probe_persistent(&addr, addrlen);
        if (persistent < 0) {
            fprintf(stderr, "loadgen: tcp probe failed: no answer from %s:%d\n", o.host, o.port);
            return 1;
        }
    }
    int64_t start = now_ns();
    measure_start = start + (int64_t)(o.warmup * 1e9);
    send_end = measure_start + (int64_t)(o.duration * 1e9);
    int rc = is_udp ? run_udp(&o, &addr, addrlen) : run_tcp(&o, &addr, addrlen, persistent);
    if (rc < 0) return 1;

    double rps = (double)st.answered / o.duration;
    char codes[MAX_ERROR_CODES * 32 + 4] = "{";
    for (int i = 0; i < n_error_codes; i++) {
        size_t used = strlen(codes);
        snprintf(codes + used, sizeof codes - used, "%s\"%u\":%llu", i ? "," : "", error_codes[i],
                 (unsigned long long)error_code_counts[i]);
    }
    strcat(codes, "}");
    printf("{\"generator\":\"c\",\"mode\":\"%s\",\"tcp_mode\":%s,\"host\":\"%s\",\"port\":%d,"
           "\"window\":%d,\"connections\":%d,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
           "\"missing_percent\":%.3f,\"handles\":%zu,"
           "\"sent\":%llu,\"answered\":%llu,\"ok\":%llu,\"not_found\":%llu,\"errors\":%llu,"
           "\"lost\":%llu,\"late\":%llu,\"closed\":%llu,\"connect_errors\":%llu,\"send_errors\":%llu,"
           "\"reconnects\":%llu,\"rps\":%.1f,\"p50_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu,"
           "\"mean_us\":%.1f,\"error_codes\":%s}\n",
           o.mode, is_udp ? "null" : (persistent ? "\"pipelined\"" : "\"reconnect\""), o.host, o.port,
           o.window, is_udp ? 1 : (persistent ? o.connections : o.window), o.duration, o.warmup,
           o.missing_percent, n_existing,
           (unsigned long long)st.sent, (unsigned long long)st.answered, (unsigned long long)st.ok,
           (unsigned long long)st.not_found, (unsigned long long)st.errors, (unsigned long long)st.lost,
           (unsigned long long)st.late, (unsigned long long)st.closed, (unsigned long long)st.connect_errors,
           (unsigned long long)st.send_errors, (unsigned long long)st.reconnects, rps,
           (unsigned long long)hist_percentile(0.50), (unsigned long long)hist_percentile(0.99),
           (unsigned long long)hist_max_us, hist_count ? hist_sum_us / (double)hist_count : 0.0, codes);
    return 0;
}
