/* A WASI module in C, built with clang for wasm32-wasi during the test run (tests/regress.sh).
 * It uses what WASI grants (stdout, stderr, clocks, random) and tries what it denies (files). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Prints a greeting; returns the number of characters printed. */
__attribute__((export_name("greet"))) int greet(int n) {
    int printed = printf("hello from C, n = %d\n", n);
    fprintf(stderr, "C writes to stderr\n");
    fflush(stdout);
    return printed;
}

/* Seconds since the epoch from the realtime clock. */
__attribute__((export_name("now_seconds"))) long long now_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    return (long long)ts.tv_sec;
}

/* 1 if two random 64-bit draws differ (they always should). */
__attribute__((export_name("random_differs"))) int random_differs(void) {
    unsigned long long a = 0, b = 0;
    arc4random_buf(&a, sizeof a);
    arc4random_buf(&b, sizeof b);
    return a != b;
}

/* Tries to open a host file: returns the fd (>= 0) on success, -errno on failure. */
__attribute__((export_name("open_passwd"))) int open_passwd(void) {
    int fd = open("/etc/passwd", O_RDONLY);
    return fd >= 0 ? fd : -errno;
}

/* Counts this instance's calls of it: 1 in a fresh instance. */
static int calls;
__attribute__((export_name("count_calls"))) int count_calls(void) {
    return ++calls;
}

/* Exits the "process" with the given code. */
__attribute__((export_name("quit"))) void quit(int code) {
    exit(code);
}
