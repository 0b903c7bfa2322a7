// lgtrain: the trainer's command line.
//   lgtrain --config X.ini [--set section.key=value ...] [--resume DIR] [--print-config] [--plan]
// Under mpirun/srun every rank runs this same command (trainer/dist.h).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dist.h"
#include "plan.h"
#include "train.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lgtrain --config FILE.ini [--set section.key=value ...] [--resume DIR] [--print-config | --plan | --eval]\n"
            "       mpirun -np N lgtrain ...   (data parallel: one rank per GPU, or CPU ranks)\n"
            "  --config FILE       run configuration (see configs/README.md for every key)\n"
            "  --set s.k=v         override one key (repeatable), e.g. --set optim.lr=1e-4\n"
            "  --resume DIR        start from this checkpoint (a step-NNNNNN directory); without it a run resumes\n"
            "                      from the newest usable checkpoint in checkpoint.dir (checkpoint.resume = auto);\n"
            "                      --resume none starts over\n"
            "  --print-config      print the fully resolved configuration and exit\n"
            "  --plan [--world N]  print memory per rank and FLOPs per step for N ranks (default 1 or the\n"
            "                      mpirun world); exit 1 if it does not fit memory.device_gib\n"
            "  --eval              validation loss of the starting model (run.init_from) on data.val, no training\n"
            "  -h, --help          this text\n");
}

int main(int argc, char **argv) {
    lg_set_progname("lgtrain");
    lg_dist *d = lg_dist_init(&argc, &argv);  // before anything can fail: a failing rank must abort the job
    const char *cfg_path = NULL;
    char *resume_set = NULL;
    int print = 0, plan = 0, plan_world = 0, eval = 0, n_set = 0;
    char **sets = lg_calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg_path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9)) cfg_path = argv[i] + 9;
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n_set++] = argv[++i];
        else if (!strncmp(argv[i], "--set=", 6)) sets[n_set++] = argv[i] + 6;
        else if (!strcmp(argv[i], "--resume") && i + 1 < argc) {
            size_t n = strlen(argv[i + 1]) + 32;
            resume_set = lg_malloc(n);
            snprintf(resume_set, n, "checkpoint.resume=%s", argv[++i]);
            sets[n_set++] = resume_set;
        }
        else if (!strcmp(argv[i], "--print-config")) print = 1;
        else if (!strcmp(argv[i], "--plan")) plan = 1;
        else if (!strcmp(argv[i], "--eval")) eval = 1;
        else if (!strcmp(argv[i], "--world") && i + 1 < argc) plan_world = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); lg_dist_finalize(d); return 0; }
        else { usage(stderr); lg_die("unknown argument '%s'", argv[i]); }
    }
    if (!cfg_path) { usage(stderr); lg_die("--config is required"); }
    lg_config c;
    lg_config_load(&c, cfg_path, n_set, sets);
    free(sets);  // the config holds copies
    free(resume_set);
    if (print) {
        if (d->rank == 0) lg_config_print(&c, stdout);
        lg_dist_finalize(d);
        return 0;
    }
    if (plan) {
        if (plan_world <= 0) {
            const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
            plan_world = d->world > 1 ? d->world : ws ? atoi(ws) : 1;
        }
        lg_plan p;
        lg_plan_resolve(&c, plan_world, c.device);
        lg_plan_compute(&c, plan_world, c.device, &p);
        int prc = d->rank == 0 ? lg_plan_print(&c, &p, c.device, stdout) : 0;
        lg_dist_finalize(d);
        return prc;
    }
    if (c.threads > 0) omp_set_num_threads(c.threads);
    int rc = eval ? lg_train_eval_only(&c, d) : lg_train(&c, d);
    lg_dist_finalize(d);
    return rc;
}
