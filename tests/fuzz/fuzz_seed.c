/*
 * The hash seed that counter.c defines in the server (not linked into the
 * fuzz targets: they exercise parse.c, config.c and idem.c, which hash).
 */
#include "lc/hash.h"

uint64_t lc_hash_seed = 0x9e3779b97f4a7c15ull;
