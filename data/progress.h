// progress.h: progress lines for long lgdata jobs on stderr (done / total, rate, ETA); silent when quiet.
#pragma once
#include <stdint.h>

typedef struct {
    const char *label;   // "tokenize", "pack", ...
    const char *unit;    // "B" prints as bytes (KiB, MiB...), anything else as a plain count ("tokens")
    double total;        // 0 = unknown (no percentage, no ETA)
    double t0, t_last;
    int quiet, tty, printed;
} lg_progress;

void lg_progress_start(lg_progress *p, const char *label, const char *unit, double total, int quiet);
// Report `done` units so far; prints at most every 0.5 s (every 5 s when stderr is not a terminal).
void lg_progress_update(lg_progress *p, double done);
// Final line with the total time and the mean rate.
void lg_progress_finish(lg_progress *p, double done);
