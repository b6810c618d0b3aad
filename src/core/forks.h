/* Telling a forked child from its parent cheaply: state drawn from a random source (a pool
 * of bytes, a seed stream) and copied into a child by fork must be dropped there, or the child
 * repeats what its parent hands out next. */
#pragma once

/* A value that differs in every process forked (by fork(), not vfork + exec) since it was
 * last read in the parent. Counted by an atfork handler registered at the first call, so it
 * costs no system call; if the handler cannot be registered, it is getpid(). */
unsigned long hg_forks_generation(void);
