// export_gguf: import a HF directory through a config and write it as GGUF (what lgtrain's export does),
// for tests/py/test_gguf.py.  export_gguf <config.ini> <tokenizer.model> <out.gguf> <dtype> [--set s.k=v ...]
#include <stdlib.h>
#include <string.h>

#include "checkpoints/gguf_export.h"
#include "checkpoints/hf_import.h"
#include "trainer/config.h"
#include "trainer/params.h"
#include "trainer/util.h"

int main(int argc, char **argv) {
    lg_set_progname("export_gguf");
    if (argc < 5) lg_die("usage: export_gguf <config.ini> <tokenizer.model> <out.gguf> <dtype> [--set s.k=v ...]");
    char **sets = lg_calloc((size_t)argc, sizeof(char *));
    int n = 0;
    for (int i = 5; i < argc; i++)
        if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n++] = argv[++i];
    lg_config c;
    lg_config_load(&c, argv[1], n, sets);
    lg_param_table t;
    lg_params_build(&t, &c.model);
    float *master = lg_calloc((size_t)t.total, sizeof(float));
    if (!strcmp(c.init_from, "random")) lg_params_init_random(&t, master, &c.model, c.seed);
    else lg_hf_import(c.init_from, &t, master);
    lg_gguf_export(argv[3], &c, &t, master, argv[2], argv[4]);
    printf("export_gguf: wrote %s\n", argv[3]);
    free(master);
    free(sets);
    lg_params_free(&t);
    return 0;
}
