/* The fork generation: an atfork handler's counter, or getpid() without one. */
#include "core/forks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* Forks this process's line went through: a child counts one more than its parent had. */
static atomic_ulong forks_seen;
static atomic_bool unwatched; /* the handler could not be registered */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void forked_child(void) { atomic_fetch_add(&forks_seen, 1); }
static void watch(void) {
  if (pthread_atfork(NULL, NULL, forked_child)) atomic_store(&unwatched, true);
}

unsigned long hg_forks_generation(void) {
  pthread_once(&once, watch);
  if (atomic_load(&unwatched)) return (unsigned long)getpid();
  return atomic_load(&forks_seen);
}
