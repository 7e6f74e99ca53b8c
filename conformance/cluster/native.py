"""A native ``/agnhost`` for ``sh -c`` batches: the same ``connect`` as ``agnhost_cli``, in C.

Why: a batch starts one ``/agnhost`` per probe; a Python start costs 15-30 ms of CPU, a C one
well under 1 ms, which decides how fast scenarios run on the embedded cluster. It is compiled
once per cluster when a C compiler exists; otherwise pods get the Python program. The tests run
the same cases against both, so their output cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *USAGE =
    "Usage:\n"
    "  agnhost connect [host:port] [flags]\n"
    "\n"
    "Flags:\n"
    "  -h, --help              help for connect\n"
    "      --protocol string   The protocol to use to perform the connection, can be tcp, udp or sctp (default \"tcp\")\n"
    "      --timeout duration  Maximum time before returning an error\n"
    "      --udp-data string   The UDP payload send to the server (default \"hostname\")\n";

static char errbuf[512];

static const char *errtext(int e) {
    snprintf(errbuf, sizeof errbuf, "%s", strerror(e));
    errbuf[0] = (char)tolower((unsigned char)errbuf[0]);
    return errbuf;
}

static int usage_error(const char *msg) {
    fprintf(stderr, "Error: %s\n%s", msg, USAGE);
    return 1;
}

/* Go time.Duration text to seconds in *out; returns 0 when valid, -1 when not. */
static int parse_duration(const char *text, double *out) {
    *out = 0;
    if (!strcmp(text, "0") || !strcmp(text, "+0") || !strcmp(text, "-0")) return 0;
    const char *p = text;
    double sign = 1;
    while (*p == '+' || *p == '-') { if (*p == '-') sign = -1; p++; }
    if (!*p) return -1;
    double total = 0;
    while (*p) {
        const char *start = p;
        int dots = 0;
        while (isdigit((unsigned char)*p) || *p == '.') { if (*p == '.') dots++; p++; }
        size_t n = (size_t)(p - start);
        if (n == 0 || dots > 1 || (n == 1 && *start == '.')) return -1;
        char num[64];
        if (n >= sizeof num) return -1;
        memcpy(num, start, n);
        num[n] = 0;
        double v = strtod(num, NULL), unit;
        if (!strncmp(p, "ns", 2)) { unit = 1e-9; p += 2; }
        else if (!strncmp(p, "us", 2)) { unit = 1e-6; p += 2; }
        else if (!strncmp(p, "\xc2\xb5s", 3)) { unit = 1e-6; p += 3; }
        else if (!strncmp(p, "ms", 2)) { unit = 1e-3; p += 2; }
        else if (*p == 's') { unit = 1; p++; }
        else if (*p == 'm') { unit = 60; p++; }
        else if (*p == 'h') { unit = 3600; p++; }
        else return -1;
        total += v * unit;
    }
    *out = sign * total;
    return 0;
}

struct dest { int family; struct sockaddr_storage sa; socklen_t len; char text[128]; };

/* Split host:port like Go's net.SplitHostPort; 0 ok, else message in errbuf. */
static int split(const char *dest, char *host, size_t hl, char *port, size_t pl) {
    const char *colon;
    if (dest[0] == '[') {
        const char *end = strchr(dest, ']');
        if (!end) { snprintf(errbuf, sizeof errbuf, "address %s: missing ']' in address", dest); return -1; }
        if (end[1] != ':') { snprintf(errbuf, sizeof errbuf, "address %s: missing port in address", dest); return -1; }
        snprintf(host, hl, "%.*s", (int)(end - dest - 1), dest + 1);
        snprintf(port, pl, "%s", end + 2);
        return 0;
    }
    colon = strrchr(dest, ':');
    if (!colon) { snprintf(errbuf, sizeof errbuf, "address %s: missing port in address", dest); return -1; }
    if (memchr(dest, ':', (size_t)(colon - dest))) {
        snprintf(errbuf, sizeof errbuf, "address %s: too many colons in address", dest);
        return -1;
    }
    snprintf(host, hl, "%.*s", (int)(colon - dest), dest);
    snprintf(port, pl, "%s", colon + 1);
    return 0;
}

/* Resolve without DNS: IP literals and localhost. 0 ok; 1 split error; 2 DNS error. */
static int resolve(const char *dest, const char *net, struct dest *out) {
    char host[256], port[64];
    if (split(dest, host, sizeof host, port, sizeof port)) return 1;
    int digits = port[0] != 0;
    for (const char *c = port; *c; c++) if (!isdigit((unsigned char)*c)) digits = 0;
    if (!digits) { snprintf(errbuf, sizeof errbuf, "lookup %s/%s: unknown port", net, port); return 2; }
    long pn = strlen(port) > 6 ? 70000 : strtol(port, NULL, 10);
    if (pn > 65535) { snprintf(errbuf, sizeof errbuf, "address %s: invalid port", port); return 2; }
    if (!host[0] || !strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
    char ip[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        out->family = AF_INET; v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)pn);
        out->len = sizeof *v4;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "%s:%ld", ip, pn);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        out->family = AF_INET6; v6->sin6_family = AF_INET6; v6->sin6_port = htons((uint16_t)pn);
        out->len = sizeof *v6;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "[%s]:%ld", ip, pn);
        return 0;
    }
    snprintf(errbuf, sizeof errbuf, "lookup %s: no such host", host);
    return 2;
}

/* connect with a timeout (0 = none): 0 ok, else errno (ETIMEDOUT on timeout). */
static int dial(int fd, struct dest *d, double timeout) {
    if (timeout <= 0) return connect(fd, (struct sockaddr *)&d->sa, d->len) ? errno : 0;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, (struct sockaddr *)&d->sa, d->len), err = 0;
    if (rc && errno != EINPROGRESS) return errno;
    if (rc) {
        struct pollfd p = {fd, POLLOUT, 0};
        int n = poll(&p, 1, (int)(timeout * 1000 + 0.5));
        if (n == 0) return ETIMEDOUT;
        socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    }
    fcntl(fd, F_SETFL, fl);
    return err;
}

static void sockname(int fd, char *buf, size_t len) {
    struct sockaddr_storage sa; socklen_t l = sizeof sa; char ip[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&sa, &l);
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%d", ip, ntohs(s->sin6_port));
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%d", ip, ntohs(s->sin_port));
    }
}

static int do_tcp(const char *dest, double timeout) {
    struct dest d;
    int r = resolve(dest, "tcp", &d);
    if (r == 1) { fprintf(stderr, "UNKNOWN: %s\n", errbuf); return 1; }
    if (r == 2) { fprintf(stderr, "DNS: %s\n", errbuf); return 1; }
    int fd = socket(d.family, SOCK_STREAM, 0);
    int e = dial(fd, &d, timeout);
    close(fd);
    if (!e) return 0;
    if (e == ETIMEDOUT) fprintf(stderr, "TIMEOUT\n");
    else if (e == ECONNREFUSED) fprintf(stderr, "REFUSED\n");
    else fprintf(stderr, "OTHER: dial tcp %s: connect: %s\n", d.text, errtext(e));
    return 1;
}

static int do_udp(const char *dest, double timeout, const char *data) {
    struct dest d;
    if (resolve(dest, "udp", &d)) { fprintf(stderr, "DNS: %s\n", errbuf); return 1; }
    int fd = socket(d.family, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&d.sa, d.len)) {
        fprintf(stderr, "OTHER: dial udp %s: connect: %s\n", d.text, errtext(errno));
        return 1;
    }
    char local[160], pair[320], msg[4096], buf[1024];
    sockname(fd, local, sizeof local);
    snprintf(pair, sizeof pair, "%s->%s", local, d.text);
    int n = snprintf(msg, sizeof msg, "%s\n", data);
    if (send(fd, msg, (size_t)n, 0) < 0) {
        int e = errno;
        fprintf(stderr, "%s: write udp %s: write: %s\n", e == ECONNREFUSED ? "REFUSED" : "UNKNOWN", pair, errtext(e));
        return 1;
    }
    if (timeout > 0) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(timeout * 1000 + 0.5)) == 0) {
            fprintf(stderr, "TIMEOUT: read udp %s: i/o timeout\n", pair);
            return 1;
        }
    }
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got < 0) {
        int e = errno;
        fprintf(stderr, "%s: read udp %s: read: %s\n", e == ECONNREFUSED ? "REFUSED" : "UNKNOWN", pair, errtext(e));
        return 1;
    }
    if (got == 0) {
        fprintf(stderr, "OTHER: No data received from the server. Cannot guarantee the server received the request.\n");
        return 1;
    }
    return 0;
}

static int do_sctp(const char *dest, double timeout) {
    struct dest d;
    if (resolve(dest, "sctp", &d)) { fprintf(stderr, "DNS: %s\n", errbuf); return 1; }
    int fd = socket(d.family, SOCK_STREAM, 132);
    if (fd < 0) { fprintf(stderr, "OTHER: %s\n", errtext(errno)); return 1; }
    int e = dial(fd, &d, timeout);
    close(fd);
    if (!e) return 0;
    if (e == ETIMEDOUT) fprintf(stderr, "TIMEOUT\n");
    else fprintf(stderr, "OTHER: %s\n", errtext(e));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "Error: a subcommand is required (this emulation supports: connect)\n"); return 1; }
    if (strcmp(argv[1], "connect")) {
        fprintf(stderr, "Error: unknown command \"%s\" for \"agnhost\" in this emulation\n", argv[1]);
        return 1;
    }
    const char *protocol = "tcp", *timeout_text = NULL, *data = "hostname", *pos[2];
    int npos = 0;
    char msg[600];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { for (i++; i < argc; i++) { if (npos < 2) pos[npos] = argv[i]; npos++; } break; }
        if (!strncmp(a, "--", 2)) {
            const char *eq = strchr(a, '=');
            size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            const char *value = eq ? eq + 1 : NULL;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)nl, a + 2);
            if (strcmp(name, "protocol") && strcmp(name, "timeout") && strcmp(name, "udp-data") && strcmp(name, "help")) {
                snprintf(msg, sizeof msg, "unknown flag: --%s", name);
                return usage_error(msg);
            }
            if (!strcmp(name, "help")) { fputs(USAGE, stdout); return 0; }
            if (!value) {
                if (i + 1 >= argc) { snprintf(msg, sizeof msg, "flag needs an argument: --%s", name); return usage_error(msg); }
                value = argv[++i];
            }
            if (!strcmp(name, "protocol")) protocol = value;
            else if (!strcmp(name, "timeout")) timeout_text = value;
            else data = value;
        } else if (a[0] == '-' && a[1]) {
            snprintf(msg, sizeof msg, "unknown shorthand flag: '%c' in %s", a[1], a);
            return usage_error(msg);
        } else {
            if (npos < 2) pos[npos] = a;
            npos++;
        }
    }
    if (npos != 1) { snprintf(msg, sizeof msg, "accepts 1 arg(s), received %d", npos); return usage_error(msg); }
    double timeout = 0;
    if (timeout_text && parse_duration(timeout_text, &timeout)) {
        snprintf(msg, sizeof msg, "invalid argument \"%s\" for \"--timeout\" flag: time: invalid duration \"%s\"", timeout_text, timeout_text);
        return usage_error(msg);
    }
    if (!strcmp(protocol, "") || !strcmp(protocol, "tcp")) return do_tcp(pos[0], timeout);
    if (!strcmp(protocol, "udp")) return do_udp(pos[0], timeout, data);
    if (!strcmp(protocol, "sctp")) return do_sctp(pos[0], timeout);
    fprintf(stderr, "Unsupported protocol\n%s", protocol);
    return 1;
}
"""


def cached(cache_dir: str) -> str | None:
    """The compiled program from ``cache_dir`` (keyed by the source's hash), building it once.

    Concurrent clusters may build at the same time; each writes a private file and renames it
    into place, so readers never see a partial binary.
    """
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"agnhost-{digest}")
    if os.access(path, os.X_OK):
        return path
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError:
        return None
    tmp = f"{path}.{os.getpid()}.tmp"
    if build(tmp) is None:
        return None
    os.replace(tmp, path)
    return path


def build(out_path: str) -> str | None:
    """Compile the native program to ``out_path``; None when no C compiler can build it."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        subprocess.run(
            [compiler, "-O2", "-o", out_path, "-x", "c", "-"],
            input=SOURCE,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    os.chmod(out_path, 0o755)
    return out_path
