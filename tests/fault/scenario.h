/* The scenario the fault walk runs again and again (scenario.c).  Green
 * threads only record what happened here; the test asserts on it on the
 * main stack once the loop has returned. */
#ifndef SL_FAULT_SCENARIO_H
#define SL_FAULT_SCENARIO_H

#include <stdint.h>

#define SC_MAX_LOG 64
#define SC_MAX_OWNED 16
#define SC_CLIENTS 2
#define SC_BYSTANDER_MIN 3 /* exchanges the bystander completes at least */

/* One operation of the scenario and its result (0 or the error). */
typedef struct sc_rec {
    int64_t who; /* the green thread that made it */
    const char *op;
    int rc;
} sc_rec;

typedef struct sc_run {
    sc_rec log[SC_MAX_LOG];
    int nlog;
    int64_t owned[SC_MAX_OWNED]; /* the scenario's green threads that log */
    int nowned;
    int serving;                 /* net_serve succeeded */
    int clients;                 /* clients spawned */
    int clients_ok;              /* exchanges completed, bytes verified */
    int served;                  /* the same, seen by the handlers */
    int director_done;           /* the director has finished */
    int by_exchanges, by_errors; /* the bystander's */
    int loop_rc;                 /* gt_start's result */
    int cleanup_rc;              /* net_cleanup's afterwards */
} sc_run;

/* Runs the scenario once with call `nth` of `site` failing with `err`
 * (nth 0: no fault), within budget_ms, and frees the loop afterwards. */
void sc_run_once(sc_run *r, int site, long nth, int err, int64_t budget_ms);

#endif
