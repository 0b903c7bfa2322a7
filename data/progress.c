// progress.c: see progress.h.
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "../trainer/util.h"

void lg_progress_start(lg_progress *p, const char *label, const char *unit, double total, int quiet) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->t0 = p->t_last = lg_now_seconds();
    p->quiet = quiet;
    p->tty = isatty(2);
    p->printed = 0;
}

static void fmt_amount(const lg_progress *p, double v, char *buf, size_t n) {
    if (p->unit[0] == 'B' && p->unit[1] == 0) lg_format_bytes(v, buf, n);
    else if (v >= 1e9) snprintf(buf, n, "%.2fG %s", v / 1e9, p->unit);
    else if (v >= 1e6) snprintf(buf, n, "%.2fM %s", v / 1e6, p->unit);
    else snprintf(buf, n, "%.0f %s", v, p->unit);
}

static void print_line(lg_progress *p, double done, int final) {
    double now = lg_now_seconds(), el = now - p->t0;
    double rate = el > 0 ? done / el : 0;
    char a[32], b[32], r[32], eta[32];
    fmt_amount(p, done, a, sizeof a);
    fmt_amount(p, rate, r, sizeof r);
    if (final) {
        lg_format_duration(el, eta, sizeof eta);
        fprintf(stderr, "%s%s: %s in %s (%s/s)\n", p->tty ? "\r" : "", p->label, a, eta, r);
    } else if (p->total > 0) {
        fmt_amount(p, p->total, b, sizeof b);
        lg_format_duration(rate > 0 ? (p->total - done) / rate : -1, eta, sizeof eta);
        fprintf(stderr, "%s%s: %s / %s (%.1f%%), %s/s, ETA %s%s", p->tty ? "\r" : "", p->label, a, b,
                100.0 * done / p->total, r, eta, p->tty ? "   " : "\n");
    } else {
        fprintf(stderr, "%s%s: %s, %s/s%s", p->tty ? "\r" : "", p->label, a, r, p->tty ? "   " : "\n");
    }
    fflush(stderr);
}

void lg_progress_update(lg_progress *p, double done) {
    if (p->quiet) return;
    double now = lg_now_seconds();
    if (now - p->t_last < (p->tty ? 0.5 : 5.0)) return;
    p->t_last = now;
    p->printed = 1;
    print_line(p, done, 0);
}

void lg_progress_finish(lg_progress *p, double done) {
    if (p->quiet) return;
    print_line(p, done, 1);
}
