/* Reading a run's log as it grows (long polls of GET /v1/runs/{id}/events), Ctrl-C while
 * following, and the exit code a followed run gives the CLI. */
#pragma once

#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli/client.h"
#include "core/err.h"

/* Exit codes of `hangar run --follow` besides the run's own exit code. */
#define HG_FOLLOW_EXIT_CANCELLED 130   /* the run was cancelled */
#define HG_FOLLOW_EXIT_INTERRUPTED 130 /* Ctrl-C stopped the following; the run goes on */

/* How long one long poll asks the hub to wait, in seconds. */
#define HG_FOLLOW_WAIT_S 30

typedef struct hg_follow {
  hg_client *client;
  const char *run_id;
  int follow;              /* 0: print what is there and return; 1: until the run ends */
  int cancel_on_interrupt; /* Ctrl-C cancels the run and keeps following to its end */
  FILE *out, *err;         /* where stdout lines go, and stderr and system lines */
} hg_follow;

/* The exit code for a run that ended with status and exit_code (a JSON number or null):
 * succeeded 0; failed with an exit code of 1..255 that code, else 1; cancelled
 * HG_FOLLOW_EXIT_CANCELLED; anything else (not ended) 1. */
int hg_follow_exit_code(const char *status, const cJSON *exit_code);

/* Writes the log events of one GET .../events answer: a stdout line to f->out, stderr and
 * system lines to f->err (a system line prefixed "[hangar] "), a line ending unless the
 * event is partial. Output events are not printed: their lines are already in the log.
 * Sets *last_seq to the highest seq seen. */
void hg_follow_print_events(const hg_follow *f, const cJSON *answer, long long *last_seq);

/* Installs the SIGINT/SIGTERM handler that stops a transfer of f->client, so that Ctrl-C
 * is noticed during a long poll. */
void hg_follow_catch_interrupts(hg_client *c);

/* Prints the run's log from the event after *last_seq (-1: from the start), and leaves the
 * last seq printed there; with f->follow, until the run ended and every event was read. Transient failures (no answer, 502/503/504) are retried with a back-off for a
 * while. HG_ECANCELED when Ctrl-C stopped it. */
int hg_follow_logs(const hg_follow *f, long long *last_seq, hg_err *err);

/* `hangar run --follow`: the log until the run ended, then its outputs (pretty JSON on
 * f->out) and one status line on f->err. *exit_code is the code the CLI exits with. On
 * Ctrl-C: with cancel_on_interrupt, cancels the run and follows on (a second Ctrl-C stops at
 * once); without, prints how to cancel and sets HG_FOLLOW_EXIT_INTERRUPTED. */
int hg_follow_run(const hg_follow *f, int *exit_code, hg_err *err);
