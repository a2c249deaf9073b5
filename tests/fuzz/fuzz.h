/* The entry point every fuzz target defines: libFuzzer calls it with each
 * input, and so does replay.c on each file of a corpus.  A target reports
 * a failure by aborting. */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
